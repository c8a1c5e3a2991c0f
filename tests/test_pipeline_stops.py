"""The real pipeline, as a command, at tiny sizes: a second writer of its run directory is refused at once, and a
pipeline stopped by SIGTERM, SIGHUP or SIGKILL leaves no process of its run behind; a rerun resumes and finishes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import TINY, time_limit
from tests.helpers import KIT_ROOT, run_python
from utils.core import config
from utils.core.run_dir import WRITER_ENV

GONE_WITHIN_S = 10


def pipeline_command(run_dir: Path, **more: object) -> list[str]:
    """The prepared data's parameters (TINY), one model trained for two epochs: python's arguments."""
    overrides = {**TINY, "device": "cpu", "models": "cartoon", "epochs": 2, **more}
    command = ["-m", "utils.pipeline", "--profile", "demo", "--run-dir", str(run_dir), "--no-progress"]
    return command + [arg for name, value in overrides.items() for arg in ("-p", f"{name}={value}")]


def start(command: list[str], log: Path) -> subprocess.Popen:
    """In its own session, as a terminal starts it: a signal to its process group is a signal to the pipeline. With
    SIGINT ignored, as a script's `cmd &` or nohup starts it: its children inherit that, and must still stop."""
    return subprocess.Popen(command, cwd=KIT_ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip


def processes_of(run_dir: Path) -> list[psutil.Process]:
    """Every process that names the run directory on its command line, or carries its writer's identity (a kernel
    started for it)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and (
                str(run_dir) in " ".join(process.cmdline()) or str(run_dir) in process.environ().get(WRITER_ENV, "")
            ):
                found.append(process)
        except psutil.Error:  # ended meanwhile, or another user's
            pass
    return found


def wait_for(condition: Callable[[], bool], pipeline: subprocess.Popen, log: Path) -> None:
    while not condition():
        assert pipeline.poll() is None, f"the pipeline ended early:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def kernels_of(pipeline: subprocess.Popen) -> list[psutil.Process]:
    try:
        return [
            p for p in psutil.Process(pipeline.pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())
        ]
    except psutil.Error:
        return []


@pytest.fixture
def run_dir(tmp_path: Path, prepared_run: Path) -> Path:
    """A run directory holding prepared data (the prepare stage finds it done)."""
    shutil.copytree(prepared_run / "data", tmp_path / "run" / "data")
    return tmp_path / "run"


@pytest.mark.slow
def test_a_second_writer_of_a_run_directory_is_refused_at_once(run_dir: Path, tmp_path: Path) -> None:
    with time_limit(120):
        first = start([sys.executable, *pipeline_command(run_dir, lr=2e-4)], tmp_path / "first.log")
        try:
            wait_for(lambda: bool(kernels_of(first)), first, tmp_path / "first.log")  # working: its prepare kernel
            for second in (pipeline_command(run_dir, lr=1e-4), ["-m", "utils.train", "--run-dir", str(run_dir),
                           "--domain", "cartoon", "-p", "image_size=32", "-p", "device=cpu"]):  # fmt: skip
                refused = run_python(*second, timeout=60)
                message = refused.stderr
                assert refused.returncode != 0, refused.stdout[-2000:]
                assert f"run directory {run_dir} is being written by process {first.pid} (the pipeline)" in message
                assert "utils.pipeline" in message and "started 20" in message and "one writer at a time" in message
            assert first.poll() is None  # the first goes on
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        assert not psutil.wait_procs(processes_of(run_dir), timeout=GONE_WITHIN_S)[1]


@pytest.mark.slow
def test_a_stopped_pipeline_leaves_no_process_and_a_rerun_resumes_and_finishes(run_dir: Path, tmp_path: Path) -> None:
    """SIGHUP while its prepare kernel starts, SIGTERM while the model trains, SIGKILL once an epoch is saved; then
    the same command again."""
    log = tmp_path / "pipeline.log"
    checkpoint = config.model_dir(run_dir, "cartoon", 0) / "checkpoint_last.pt"
    train_log = run_dir / "logs" / "train_cartoon_seed0.log"
    stops = [
        (signal.SIGHUP, lambda pipeline: bool(kernels_of(pipeline))),
        (signal.SIGTERM, lambda pipeline: train_log.is_file() and "cartoon epoch 1/2" in train_log.read_text()),
        (signal.SIGKILL, lambda pipeline: checkpoint.is_file()),
    ]
    with time_limit(280):
        for signum, when in stops:
            pipeline = start([sys.executable, *pipeline_command(run_dir)], log)
            try:
                wait_for(lambda pipeline=pipeline, when=when: when(pipeline), pipeline, log)
                running = [*psutil.Process(pipeline.pid).children(recursive=True), *processes_of(run_dir)]
                running = [p for p in running if p.pid != pipeline.pid]
                assert kernels_of(pipeline), running  # the pipeline's kernel at work
                os.killpg(pipeline.pid, signum)
                stopped = time.monotonic()
                exit_code = pipeline.wait(GONE_WITHIN_S)
                left = psutil.wait_procs(running, timeout=GONE_WITHIN_S - (time.monotonic() - stopped))[1]
                left += processes_of(run_dir)
                assert not left, f"{signum.name}: {[' '.join(p.cmdline())[:120] for p in left]} still run"
                assert exit_code == (-signum if signum == signal.SIGKILL else 128 + signum), log.read_text()[-3000:]
            finally:
                if pipeline.poll() is None:
                    os.killpg(pipeline.pid, signal.SIGKILL)
                    pipeline.wait()
        rerun = run_python(*pipeline_command(run_dir), timeout=240)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"resumed cartoon from {checkpoint}: epoch 2" in train_log.read_text()
    assert (run_dir / "report.md").is_file() and not list(run_dir.rglob(".*.tmp"))
