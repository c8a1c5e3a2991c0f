from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from utils import config, data

# Small enough for a 2-core CPU, large enough for BatchNorm and a validation slice.
TINY = {
    "image_size": 32,
    "train_per_domain": 24,
    "test_per_domain": 8,
    "epochs": 1,
    "batch_size": 4,
    "eval_batch_size": 8,
    "n_examples": 2,
}


@pytest.fixture(scope="session")
def tiny_params() -> config.RunParams:
    return config.resolve_params("demo", TINY)


@pytest.fixture(scope="session")
def prepared_run(tmp_path_factory: pytest.TempPathFactory, tiny_params: config.RunParams) -> Path:
    """A run directory whose data stage is done (demo source, tiny sizes). Do not modify."""
    run_dir = tmp_path_factory.mktemp("prepared") / "run"
    data.prepare_data(tiny_params, run_dir)
    return run_dir


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail the test after ``seconds``, so a hang fails it instead of stopping the suite (SIGALRM: the main
    thread only). pytest's failure is a BaseException: no handler in the code under test takes it for its own."""

    def expire(signum: int, frame: object) -> None:
        pytest.fail(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
