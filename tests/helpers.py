"""Helpers the tests share."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from utils.core import config
from utils.data import shard_journal
from utils.data.shards import MANIFEST_COLUMNS

KIT_ROOT = config.KIT_ROOT
SAME_THREADS = {"OMP_NUM_THREADS": "1"}  # a child's torch threads: the test process's (tests/conftest.py)


def run_python(
    *args: str, env: dict[str, str] | None = None, cwd: Path = KIT_ROOT, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python ARGS`` with this interpreter (``-m module``, ``-c code`` or a script), from the kit's root unless
    ``cwd``, in this process's environment unless ``env``; its output captured as text."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def run_with_data(run_dir: Path, prepared_run: Path) -> Path:
    """``run_dir`` (made) whose data stage is ``prepared_run``'s: a link to its data, read only."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "data").symlink_to(prepared_run / "data")
    return run_dir


def resumable_copy(trained: Path, prepared_run: Path, run_dir: Path) -> Path:
    """``trained``'s models (hard links: every write replaces a file, none changes one) over the prepared data."""
    run_with_data(run_dir, prepared_run)
    shutil.copytree(trained / "models", run_dir / "models", copy_function=os.link)
    return run_dir


def nth_record(n: int, counted: Callable[[shard_journal.ShardJournal, dict], bool] = lambda journal, entry: True):  # noqa: ANN201
    """For :func:`interrupted_journal`: true at the ``n``-th record that ``counted`` counts."""
    calls = 0

    def stop(journal: shard_journal.ShardJournal, entry: dict) -> bool:
        nonlocal calls
        calls += bool(counted(journal, entry))
        return calls == n

    return stop


@contextmanager
def interrupted_journal(monkeypatch: Any, stop: Callable[[shard_journal.ShardJournal, dict], bool]) -> Iterator[None]:
    """Meanwhile, a prepare's journal takes Ctrl-C (KeyboardInterrupt) at the first record for which
    ``stop(journal, entry)`` holds, before writing it; every other record is written as usual."""
    original = shard_journal.ShardJournal.record

    def record(self: shard_journal.ShardJournal, entry: dict, rgb: Any = None) -> Any:
        if stop(self, entry):
            raise KeyboardInterrupt
        return original(self, entry, rgb)

    monkeypatch.setattr(shard_journal.ShardJournal, "record", record)
    try:
        yield
    finally:
        monkeypatch.setattr(shard_journal.ShardJournal, "record", original)


class AcceleratorTensor(torch.Tensor):
    """A tensor as a checkpoint loaded onto a GPU holds it: ``.numpy()`` raises until ``.cpu()``."""

    def numpy(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError(
            "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory first."
        )

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        result = super().__torch_function__(func, types, args, kwargs or {})
        if func in (torch.Tensor.cpu, torch.Tensor.to) and isinstance(result, torch.Tensor):
            return result.as_subclass(torch.Tensor)  # on the host now: a plain tensor
        return result


def on_accelerator(value: Any) -> Any:
    """Every tensor in a (nested) checkpoint, as if loaded with ``map_location`` a GPU."""
    if isinstance(value, torch.Tensor):
        return value.as_subclass(AcceleratorTensor)
    if isinstance(value, dict):
        return {k: on_accelerator(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_accelerator(v) for v in value)
    return value


def write_manifest(run_dir: Path, **columns: Any) -> None:
    """``run_dir/data/manifest.csv`` with the given columns; the other manifest columns get stand-in values."""
    frame = pd.DataFrame(columns)
    for column in MANIFEST_COLUMNS:
        if column not in frame:
            frame[column] = frame["group"] if column == "folder_group" else f"stand-in {column}"
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    frame[MANIFEST_COLUMNS].to_csv(run_dir / "data" / "manifest.csv", index=False)


NOBODY_UID = 65534


@contextmanager
def write_protected(directory: Path) -> Iterator[None]:
    """``directory`` (mode 0o555) cannot be written by this process meanwhile, even as root, who ignores mode bits:
    then the effective user is nobody's (every folder above ``directory`` must let others through, see
    :func:`open_folder`)."""
    mode = directory.stat().st_mode
    directory.chmod(0o555)
    as_root = os.geteuid() == 0
    try:
        if as_root:
            os.seteuid(NOBODY_UID)
        yield
    finally:
        if as_root:
            os.seteuid(0)
        directory.chmod(mode)


@contextmanager
def open_folder() -> Iterator[Path]:
    """A fresh folder any user can read and pass through (pytest's tmp_path is its owner's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="kit-open-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def assert_report_answers_first(report_md: Path, max_kb: int) -> None:
    """report.md in the order of a results page, short, its first figure early, its comparisons few."""
    text = report_md.read_text()
    lines = text.splitlines()
    assert len(text.encode()) <= max_kb * 1000, f"report.md is {len(text.encode())} bytes"
    answer = [i for i, line in enumerate(lines) if line.startswith("> **")]
    assert len(answer) <= 3 and answer[0] < lines.index("## The paper's claims")  # the answer box comes first
    marks = ["## The paper's claims", "![cross_domain_ciede2000]", "## CIEDE2000", "## SSIM", "## Findings",
             "## The data and the training", "## Other figures"]  # fmt: skip
    at = [next(i for i, line in enumerate(lines) if line.startswith(mark)) for mark in marks]
    assert at == sorted(at), dict(zip(marks, at))
    assert next(i for i, line in enumerate(lines) if line.startswith("![")) < 60  # a figure within 60 lines
    deciding = text.split("### The comparisons that decide something")[1].split("###")[0]
    assert len([line for line in deciding.splitlines() if line.startswith("| ")]) - 1 <= 40  # less its header
    shown = set(re.findall(r"!\[[^]]*\]\(figures/([^)]+)\)", text))
    assert shown and all((report_md.parent / "figures" / name).is_file() for name in shown)
