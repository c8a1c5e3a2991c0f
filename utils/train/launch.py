"""torchrun for a training on several GPUs: its command (``-m utils.train``, every parameter passed on), and the
launch, bound to this process's life, with its output streamed here as it comes."""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from pathlib import Path

from utils.core.config import KIT_ROOT
from utils.core.parameters import RunParams
from utils.core.processes import bound_to_parent, child_environment


def param_arguments(params: RunParams) -> list[str]:
    """``-p name=value`` for every parameter: the CLI rebuilds exactly ``params``."""
    args = []
    for name, value in params.to_dict().items():
        text = (
            ",".join(map(str, value))
            if isinstance(value, list)
            else json.dumps(value)
            if isinstance(value, dict)
            else str(value)
        )
        args += ["-p", f"{name}={text}"]
    return args


def torchrun_command(
    params: RunParams, run_dir: str | Path, domain: str, seed_index: int, n_processes: int
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n_processes}",
        "-m",
        "utils.train",
        "--run-dir",
        str(Path(run_dir).resolve()),
        "--domain",
        domain,
        "--seed-index",
        str(seed_index),
        *param_arguments(params),
    ]


def run_torchrun(params: RunParams, run_dir: str | Path, domain: str, seed_index: int, n_processes: int) -> None:
    """torchrun with ``n_processes`` ranks, bound to this process's life, its output streamed here as it comes."""
    command = bound_to_parent(torchrun_command(params, run_dir, domain, seed_index, n_processes))
    print(f"training {domain} on {n_processes} GPUs: torchrun --nproc_per_node={n_processes} -m utils.train ...")
    env = {**child_environment(), "PYTHONUNBUFFERED": "1"}  # the ranks write under this process's hold
    proc = subprocess.Popen(command, cwd=KIT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may end mid-character
    try:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 4096):
            sys.stdout.write(decoder.decode(chunk))
            sys.stdout.flush()
        proc.wait()
    except BaseException:  # an interrupted notebook stops the training processes too
        proc.terminate()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    if proc.returncode:
        raise RuntimeError(
            f"torchrun training of model {domain} failed (exit code {proc.returncode}); see the output above"
        )
