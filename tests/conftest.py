from __future__ import annotations

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
