"""Child processes that die: a train notebook's kernel or its papermill process, killed with SIGKILL (the
decoding workers' deaths are in test_data.py)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import TINY, time_limit
from utils import pipeline
from utils.core import config
from utils.run import scheduler
from utils.run.notebook_step import StageFailed


def notebook_process(model: str) -> psutil.Process | None:
    """The papermill process of ``model``'s train notebook, a child of this process."""
    for process in psutil.Process().children():
        try:
            if "--one-step" in process.cmdline() and f'"domain": "{model}"' in " ".join(process.cmdline()):
                return process
        except psutil.Error:  # ended meanwhile
            pass
    return None


@pytest.mark.slow
def test_a_killed_train_notebook_is_reported_within_seconds_naming_its_model(
    prepared_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cartoon's kernel and movie's papermill process are killed once both notebooks run their first cell."""
    run_dir = tmp_path / "run"
    shutil.copytree(prepared_run / "data", run_dir / "data")
    overrides = {
        k: str(v) for k, v in {**TINY, "device": "cpu", "models": "cartoon,movie", "train_concurrency": 2}.items()
    }
    steps = [s for s in pipeline.plan_steps("demo", run_dir, overrides) if s.stage.startswith("train_")]
    killed_at: dict[str, float] = {}
    noticed_at: dict[str, float] = {}
    kernels: list[psutil.Process] = []
    failure = scheduler.TrainProcess.failure

    def noticed(self: scheduler.TrainProcess) -> str:
        noticed_at[self.launch.model] = time.monotonic()
        return failure(self)

    def kill_both() -> None:
        logs = [run_dir / "logs" / f"train_{model}_seed0.log" for model in ("cartoon", "movie")]
        deadline = time.monotonic() + 60
        while not all(log.is_file() and "Executing Cell 1" in log.read_text() for log in logs):
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        for model in ("cartoon", "movie"):
            papermill = notebook_process(model)
            kernel = next(p for p in papermill.children() if "ipykernel" in " ".join(p.cmdline()))
            kernels.append(kernel)
            (kernel if model == "cartoon" else papermill).kill()
            killed_at[model] = time.monotonic()

    monkeypatch.setattr(scheduler.TrainProcess, "failure", noticed)
    killer = threading.Thread(target=kill_both, daemon=True)
    killer.start()
    with time_limit(120), pytest.raises(StageFailed) as err:
        scheduler.run_train_steps(steps, run_dir, config.resolve_params("demo", overrides))
    killer.join()
    message = str(err.value)
    assert "2 of 2 models failed" in message
    assert "model cartoon_seed0: notebook 02_train.ipynb (02_train_cartoon_seed0.ipynb): its kernel died" in message
    assert "model movie_seed0: the process running notebook 02_train.ipynb was killed by signal 9 (SIGKILL)" in message
    assert set(killed_at) == set(noticed_at) == {"cartoon", "movie"}
    for model in killed_at:
        assert noticed_at[model] - killed_at[model] < 10, model
    # movie's kernel, orphaned, ends by itself (ipykernel watches its parent): no training goes on unseen
    still_running = psutil.wait_procs(kernels, timeout=10)[1]
    assert all(p.status() == psutil.STATUS_ZOMBIE for p in still_running), still_running
