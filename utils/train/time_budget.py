"""The time budget: when training must stop, at a checkpoint, so a Kaggle session ends with its output saved."""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from utils.core.parameters import RunParams
from utils.core.run_dir import read_run_record

# Test-only: with a time budget on, it counts as spent once this many epochs have finished in this process
# (tests/test_budget.py, and the Kaggle test's "version 1 runs out after epoch 1"). Never set in real runs.
TEST_BUDGET_EPOCHS_ENV = "KIT_TEST_BUDGET_EPOCHS"


@dataclass(frozen=True)
class TimeBudget:
    """When training must stop, at a checkpoint: ``time_limit_hours`` from the pipeline's start (run.json's
    ``budget``, which the pipeline records while it runs), or from this process's start when trained alone."""

    hours: float  # 0: no limit
    deadline: float  # a time.time() value; inf without a limit
    epochs_allowed: int | None = None  # the test seam (TEST_BUDGET_EPOCHS_ENV)

    @classmethod
    def for_run(cls, params: RunParams, run_dir: Path) -> TimeBudget:
        if not params.time_limit_hours:
            return cls(0.0, math.inf)
        budget = read_run_record(run_dir).get("budget")
        if budget and not budget.get("finished"):  # a pipeline is running this training
            deadline = dt.datetime.fromisoformat(budget["deadline"]).timestamp()
        else:
            deadline = cls.now() + params.time_limit_hours * 3600
        seam = os.environ.get(TEST_BUDGET_EPOCHS_ENV)
        return cls(params.time_limit_hours, deadline, int(seam) if seam else None)

    @staticmethod
    def now() -> float:
        return time.time()  # wall time: the deadline is a moment, shared by processes through run.json

    def spent(self, epochs_done: int) -> bool:
        """``epochs_done``: the epochs finished in this process (the test seam counts them)."""
        if self.epochs_allowed is not None and epochs_done >= self.epochs_allowed:
            return True
        return self.now() >= self.deadline

    def describe(self) -> str:
        return f"the time budget of {self.hours:g} h ran out"
