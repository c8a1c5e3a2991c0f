"""The kernel manager every notebook's kernel starts with: its kernel listens on Unix-domain sockets, not TCP ports.

Over TCP, jupyter_client picks free ports, releases them, and the kernel binds them a second later: any process
on the machine may take one in between, and the kernel dies with ``Address already in use`` (likelier the more
notebooks start at once). A Unix socket has a name of its own, so nothing can take it: each kernel's five
sockets are ``<temp dir>/kit-kernel-<random>-<1..5>``, removed by jupyter_client when the kernel is shut down.
Where zmq has no Unix sockets (Windows) the kernel falls back to TCP.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid

import zmq
from jupyter_client import AsyncKernelManager  # nbclient's own default manager class
from traitlets import default

# Windows' libzmq may list ipc, but ipykernel and jupyter_client use it only on POSIX
KERNEL_TRANSPORT = "ipc" if sys.platform != "win32" and zmq.has("ipc") else "tcp"
SOCKET_PREFIX = "kit-kernel-"
# a Unix socket's path holds at most 107 bytes on Linux, 103 on macOS: a deep TMPDIR falls back to /tmp
MAX_SOCKET_PATH_CHARS = 100


def socket_base_path() -> str:
    """A fresh path that a kernel's socket names start with (``-1`` to ``-5`` follow), unique to one kernel."""
    name = SOCKET_PREFIX + uuid.uuid4().hex[:16]
    temp_dir = tempfile.gettempdir()
    if len(os.path.join(temp_dir, name)) + len("-99999") > MAX_SOCKET_PATH_CHARS:
        temp_dir = "/tmp"
    return os.path.join(temp_dir, name)


class UnixSocketKernelManager(AsyncKernelManager):
    """nbclient's kernel manager, its kernel on Unix sockets of its own (module docstring): passed to papermill as
    ``kernel_manager_class``."""

    @default("transport")
    def _transport_default(self) -> str:
        return KERNEL_TRANSPORT

    def _ip_default(self) -> str:
        # for ipc, jupyter_client's "ip" is the sockets' path prefix; its own default is shared by every kernel
        # started from the same directory
        return socket_base_path() if self.transport == "ipc" else super()._ip_default()
