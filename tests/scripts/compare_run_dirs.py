"""Two run directories compared file for file: the same files, equal numbers; only timings, paths and the
commit may differ.

    python tests/scripts/compare_run_dirs.py BEFORE AFTER

What is compared, by kind of file:
- ``.npy``, ``.png``, ``.jpg`` and any other file not named below: byte for byte;
- ``.csv``: equal tables (``pandas.testing.assert_frame_equal``, exact) but for the timing columns;
- ``.json``: equal, but for the keys that hold a time, a path, a commit or a machine (``VARYING_KEYS``), at any depth;
- ``.pt`` (checkpoints): every tensor equal, every other value equal but for those keys;
- ``.md``: equal lines, once each run directory's own path is replaced by ``RUN_DIR``;
- ``.ipynb`` (rendered notebooks): each code cell's results and displays equal (text, tables and images), with the
  same path rule; what a cell printed (progress bars, timings, warnings naming the environment) is not compared;
- ``logs/``, ``*.lock`` and the writer's lock: not compared (what a process printed, and when).

Prints one line per difference and exits 1 when there is any, else 0.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch

TIMING_COLUMNS = {"seconds", "images_per_s", "elapsed_s", "wall_s", "started", "finished"}
VARYING_KEYS = re.compile(
    r"(second|_s$|time|date|started|finished|deadline|elapsed|duration|commit|path|dir$|host|machine|cpu|"
    r"versions|pid|estimate|threads|startup|kernel)",
    re.IGNORECASE,
)
SKIPPED = re.compile(r"(^logs/|\.lock$)")


def without_varying(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_varying(v) for k, v in value.items() if not VARYING_KEYS.search(str(k))}
    if isinstance(value, list | tuple):
        return [without_varying(v) for v in value]
    return value


def same_tensors(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        a, b = without_varying(a), without_varying(b)
        return a.keys() == b.keys() and all(same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_tensors(x, y) for x, y in zip(a, b))
    return a == b


def text_of(path: Path, run_dir: Path) -> str:
    """The file's text with the run directory's absolute path as ``RUN_DIR``."""
    return path.read_text().replace(str(run_dir.resolve()), "RUN_DIR")


def notebook_outputs(path: Path, run_dir: Path) -> list[Any]:
    cells = json.loads(text_of(path, run_dir))["cells"]
    return [
        [
            {k: v for k, v in output.items() if k not in ("execution_count", "metadata")}
            for output in cell["outputs"]
            if output["output_type"] != "stream"
        ]
        for cell in cells
        if cell["cell_type"] == "code"
    ]


def difference(before: Path, after: Path, before_dir: Path, after_dir: Path) -> str | None:
    """None when the two files agree, else what differs."""
    suffix = before.suffix
    if suffix == ".csv":
        a, b = pd.read_csv(before), pd.read_csv(after)
        a, b = (t.drop(columns=[c for c in t.columns if c in TIMING_COLUMNS]) for t in (a, b))
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        except AssertionError as error:
            return str(error).splitlines()[0]
        return None
    if suffix == ".json":
        a, b = (without_varying(json.loads(text_of(p, d))) for p, d in ((before, before_dir), (after, after_dir)))
        return None if a == b else "values differ"
    if suffix == ".pt":
        a, b = (torch.load(p, map_location="cpu", weights_only=True) for p in (before, after))
        return None if same_tensors(a, b) else "tensors or values differ"
    if suffix == ".md":
        a, b = text_of(before, before_dir), text_of(after, after_dir)
        return None if a == b else f"text differs: {len(a)} and {len(b)} characters"
    if suffix == ".ipynb":
        a, b = notebook_outputs(before, before_dir), notebook_outputs(after, after_dir)
        differing = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return None if a == b else f"outputs differ in code cells {differing or 'count'}"
    return None if before.read_bytes() == after.read_bytes() else "bytes differ"


def compare(before_dir: Path, after_dir: Path) -> list[str]:
    def files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}

    ours, theirs = files(before_dir), files(after_dir)
    lines = [f"only in {before_dir}: {name}" for name in sorted(ours - theirs) if not SKIPPED.search(name)]
    lines += [f"only in {after_dir}: {name}" for name in sorted(theirs - ours) if not SKIPPED.search(name)]
    for name in sorted(ours & theirs):
        if SKIPPED.search(name):
            continue
        found = difference(before_dir / name, after_dir / name, before_dir, after_dir)
        if found:
            lines.append(f"{name}: {found}")
    return lines


def main(argv: list[str]) -> int:
    before_dir, after_dir = Path(argv[0]), Path(argv[1])
    lines = compare(before_dir, after_dir)
    print("\n".join(lines) if lines else f"{before_dir} and {after_dir} agree, file for file")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
