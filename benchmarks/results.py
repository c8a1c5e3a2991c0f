"""What every benchmark reports: one row per figure, printed the moment it is measured.

Each benchmark builds a :class:`Results`, calls :meth:`Results.add` for every figure as soon as
it has it (so a slow benchmark shows its progress, and a killed one keeps what it printed), and
:meth:`Results.write` at the end. With ``--json PATH`` the figures also go to a JSON file, which
``benchmarks/gpu_check.py`` gathers into one markdown table.

JSON layout: ``{"benchmark": str, "context": {str: str}, "figures": [Figure as dict, ...]}``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One measured figure; ``target`` (e.g. ">= 3x") and ``met`` only where a target applies."""

    name: str
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None
    note: str = ""

    def line(self) -> str:
        verdict = "" if self.met is None else ("  [target met]" if self.met else "  [target NOT met]")
        target = f"  (target {self.target})" if self.target else ""
        note = f"  {self.note}" if self.note else ""
        return f"{self.name:56s} {self.value:12.4g} {self.unit}{target}{verdict}{note}"


@dataclass
class Results:
    """Figures of one benchmark run, printed as they come and written to ``json_path`` if given."""

    benchmark: str
    json_path: str | None = None
    context: dict[str, str] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)

    def describe(self, **context: Any) -> None:
        """Settings and machine (device, torch version, sizes): printed once, kept in the JSON."""
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

    def write(self) -> None:
        if not self.json_path:
            return
        path = Path(self.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        payload = {"benchmark": self.benchmark, "context": self.context, "figures": [asdict(f) for f in self.figures]}
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, path)


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures to this JSON file")


def read_results(path: str | Path) -> Results:
    payload = json.loads(Path(path).read_text())
    figures = [Figure(**f) for f in payload["figures"]]
    return Results(payload["benchmark"], None, payload.get("context", {}), figures)
