"""What every benchmark reports: one row per figure, printed the moment it is measured.

Each benchmark builds a :class:`Results`, calls :meth:`Results.add` for every figure as soon as
it has it (so a slow benchmark shows its progress, and a killed one keeps what it printed), and
:meth:`Results.write` at the end. With ``--json PATH`` the figures also go to a JSON file, which
``benchmarks/gpu_check.py`` gathers into one markdown table. A figure that could not be measured
(out of memory, a time limit, a GPU missing from a table) is a row too, without a value.

JSON layout (``null`` for a figure without a value)::

    {"benchmark": str, "context": {str: str}, "figures": [Figure as dict, ...],
     "machine": describe_machine(), "date": ISO 8601 UTC, "commit": "<short sha>[+dirty]",
     "command": "python benchmarks/<script>.py ..."}

A result file that is committed lives in ``benchmarks/measured/<benchmark>_<device kind>.json``
(:func:`measured_path`): ``--json benchmarks/measured/bench_train_cuda.json`` records one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from utils.core.run_dir import write_text_atomic
from utils.nets.environment import cpu_model

KIT_ROOT = Path(__file__).resolve().parent.parent
MEASURED = KIT_ROOT / "benchmarks" / "measured"  # committed result files, rendered into the docs


@dataclass(frozen=True)
class Figure:
    """One measured figure; ``target`` (e.g. ">= 3x") and ``met`` only where a target applies. A NaN
    ``value`` is a row that could not be measured, ``note`` says why."""

    name: str
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None
    note: str = ""

    @property
    def measured(self) -> bool:
        return not math.isnan(self.value)

    def line(self) -> str:
        verdict = "" if self.met is None else ("  [target met]" if self.met else "  [target NOT met]")
        target = f"  (target {self.target})" if self.target else ""
        note = f"  {self.note}" if self.note else ""
        value = f"{self.value:12.4g}" if self.measured else f"{'not measured':>12s}"
        return f"{self.name:56s} {value} {self.unit}{target}{verdict}{note}"


@dataclass
class Results:
    """Figures of one benchmark run, printed as they come and written to ``json_path`` if given."""

    benchmark: str
    json_path: str | None = None
    context: dict[str, str] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    date: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    command: str = field(default_factory=lambda: command_line(sys.argv))
    machine: dict[str, Any] = field(default_factory=dict)  # filled at the first write
    commit: str = ""  # filled at the first write

    def describe(self, **context: Any) -> None:
        """Settings of the run (device used, sizes, timing): printed once, kept in the JSON."""
        self.context.update({k: str(v) for k, v in context.items()})
        print("; ".join(f"{k}: {v}" for k, v in context.items()), flush=True)

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        target: str | None = None,
        met: bool | None = None,
        note: str = "",
    ) -> float:
        figure = Figure(name, float(value), unit, target, met, note)
        self.figures.append(figure)
        print(figure.line(), flush=True)
        if self.json_path:  # after every figure: a benchmark stopped by a timeout keeps what it measured
            self.write()
        return figure.value

    def not_measured(self, name: str, unit: str, why: str, target: str | None = None) -> None:
        """A row without a value: the figure the run could not measure, and why."""
        self.add(name, math.nan, unit, target, None, why)

    def payload(self) -> dict[str, Any]:
        self.machine = self.machine or describe_machine()
        self.commit = self.commit or git_state()  # also when the machine was given (gpu_check's probe)
        return {
            "benchmark": self.benchmark,
            "context": self.context,
            "figures": [{**asdict(f), "value": f.value if f.measured else None} for f in self.figures],
            "machine": self.machine,
            "date": self.date,
            "commit": self.commit,
            "command": self.command,
        }

    def write(self) -> None:
        if not self.json_path:
            return
        path = Path(self.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(self.payload(), indent=2, allow_nan=False) + "\n")


def describe_machine() -> dict[str, Any]:
    """The machine a figure was measured on: CPU model and count, GPU names ([] without CUDA), versions."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_state() -> str:
    """``<short sha>``, with ``+dirty`` when tracked files differ from it (result files do not count)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=KIT_ROOT, capture_output=True, text=True, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        head = git("rev-parse", "--short", "HEAD")
        changes = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/measured")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (head + ("+dirty" if changes else "")) if head else "unknown"


def command_line(argv: list[str]) -> str:
    """``python <argv>``, paths inside the kit written relative to its root."""
    prefix = f"{KIT_ROOT}{os.sep}"
    return shlex.join(["python", *(arg.replace(prefix, "") for arg in argv)])


def measured_path(benchmark: str, device_kind: str) -> Path:
    """Where a committed result file lives: ``benchmarks/measured/<benchmark>_<device kind>.json``."""
    return MEASURED / f"{benchmark}_{device_kind}.json"


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", default=None, metavar="PATH", help="also write the figures to this JSON file (a result file: "
        "benchmarks/measured/<benchmark>_<cpu|cuda>.json)"
    )  # fmt: skip


def read_results(path: str | Path) -> Results:
    payload = json.loads(Path(path).read_text())
    figures = [Figure(**{**f, "value": math.nan if f["value"] is None else f["value"]}) for f in payload["figures"]]
    return Results(
        payload["benchmark"],
        None,
        payload.get("context", {}),
        figures,
        date=payload.get("date", ""),
        command=payload.get("command", ""),
        machine=payload.get("machine", {}),
        commit=payload.get("commit", ""),
    )
