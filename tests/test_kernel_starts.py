"""Kernels that start at once: each on Unix sockets of its own, so none can lose its TCP ports to another process
in the second between jupyter_client's choice of free ports and the kernel's bind (utils/run/kernel_manager.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.helpers import KIT_ROOT
from utils.run.kernel_manager import KERNEL_TRANSPORT
from utils.run.notebook_step import Step, run_step

KERNELS_AT_ONCE = 12
MAX_UNIX_SOCKET_PATH = 107  # Linux's sun_path, less its closing NUL
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
# the kernel's own transport and socket path prefix, from the IPKernelApp that runs it
WHERE_AM_I = "from ipykernel.kernelapp import IPKernelApp\napp = IPKernelApp.instance()\nprint(app.transport, app.ip)"
# one notebook through the kit's one kernel start, in a process of its own (as a train notebook runs); run_step
# reads notebooks/<name>, and an absolute name stands for itself
RUN_ONE = (
    "import sys; from pathlib import Path; from utils.run.notebook_step import Step, run_step; "
    "run_step(Step(sys.argv[1], sys.argv[2], {}, 'kernel_start'), Path(sys.argv[3]), progress=False)"
)


def kernel_managers_of_run_step(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, count: int) -> list[Any]:
    """``count`` kernel managers of the class run_step hands papermill (papermill itself not run)."""
    import papermill

    passed: dict[str, Any] = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda *args, **kwargs: passed.update(kwargs))
    run_step(Step("01_prepare_data.ipynb", "prepare.ipynb", {}, "prepare"), tmp_path, progress=False)
    assert "kernel_manager_class" in passed, "run_step leaves the kernel manager to nbclient's default: TCP ports"
    return [passed["kernel_manager_class"](kernel_name="python3") for _ in range(count)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Unix sockets as Linux names them")
def test_run_step_puts_each_kernel_on_short_unix_sockets_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sockets = []
    for manager in kernel_managers_of_run_step(monkeypatch, tmp_path, count=3):
        manager.write_connection_file()  # what the kernel reads and binds; no kernel started
        try:
            info = json.loads(Path(manager.connection_file).read_text())
        finally:
            manager.cleanup_connection_file()
        assert info["transport"] == "ipc", "the kernel would listen on TCP ports, which another process can take"
        sockets += [f"{info['ip']}-{info[name]}" for name in PORT_NAMES]
    assert len(set(sockets)) == len(sockets), f"kernels share a socket: {sockets}"
    assert max(map(len, sockets)) <= MAX_UNIX_SOCKET_PATH, f"a socket path too long for Linux: {sockets}"
    assert all(Path(socket).parent == Path(tempfile.gettempdir()) for socket in sockets)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """The kernels' temp dir: short (Unix socket paths), and empty again once they are done."""
    made = Path(tempfile.mkdtemp(prefix="kit-test-"))
    yield made
    shutil.rmtree(made, ignore_errors=True)


@pytest.mark.slow
def test_many_notebooks_start_at_once_without_a_failure(tmp_path: Path, socket_dir: Path) -> None:
    notebook = tmp_path / "where_am_i.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(WHERE_AM_I)]), str(notebook))
    env = {**os.environ, "TMPDIR": str(socket_dir)}
    command = [sys.executable, "-c", RUN_ONE, str(notebook)]
    starts = [
        subprocess.Popen([*command, f"kernel{i}.ipynb", str(tmp_path)], cwd=KIT_ROOT, env=env, stderr=subprocess.PIPE)
        for i in range(KERNELS_AT_ONCE)
    ]
    stderrs = [start.communicate(timeout=240)[1].decode() for start in starts]
    # the error lines only: the kernel's (a ZMQError on a TCP port race) and papermill's ("Kernel died ...")
    failed = [[line for line in stderr.splitlines() if "Error" in line] for start, stderr in zip(starts, stderrs)
              if start.returncode != 0]  # fmt: skip
    assert not failed, f"{len(failed)} of {KERNELS_AT_ONCE} notebooks failed: {failed}"
    printed = []
    for i in range(KERNELS_AT_ONCE):
        cell = nbformat.read(str(tmp_path / "notebooks" / f"kernel{i}.ipynb"), as_version=4).cells[0]
        printed.append(cell.outputs[0]["text"].split())
    expected = "ipc" if sys.platform.startswith("linux") else KERNEL_TRANSPORT
    assert all(transport == expected for transport, _ in printed), printed
    if expected == "ipc":
        assert len({ip for _, ip in printed}) == KERNELS_AT_ONCE, f"kernels share their sockets: {printed}"
        assert all(Path(ip).parent == socket_dir for _, ip in printed), printed
    assert not list(socket_dir.iterdir()), "a kernel's sockets or connection file outlived it"
