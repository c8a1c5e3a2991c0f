"""What one writer per run directory costs a run: the lock, the join of the pipeline's notebooks, the atomic writes.

    python benchmarks/bench_run_dir.py --run-dir runs/demo [--repeats 200] [--json PATH]

On a finished run directory (``make demo`` leaves ``runs/demo``; it is only read, and its lock taken and given back),
each a median of ``--repeats``, the kit's figure beside a baseline from the same run and their ratio:

- the pipeline's hold (``run_dir.hold_run_dir``, then released: the lock, the holder's record, the sweep for
  temporary files) against a bare ``flock`` of a file;
- a notebook kernel joining the pipeline's hold (in a child process, as a kernel does it: the refused ``flock``,
  the holder's record, its ancestry), and its binding to its parent's death, against a bare refused ``flock``;
- ``run_dir.write_text_atomic`` of ``run.json`` (a unique temporary file, its mode, the rename) against the
  fixed ``run.json.tmp`` and rename it replaced.

Then what these add to a whole run like the one given: one hold, a join and a binding per notebook (its stages in
``run.json``), a fresh interpreter's import of ``utils.core.run_dir`` per process, and the atomic write's extra cost
for each of its files and three ``run.json`` records per stage; target under 1 s.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics as stats
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import timed  # noqa: E402
from benchmarks.results import Results, add_json_argument  # noqa: E402
from utils.core import run_dir as run_directory  # noqa: E402

KIT_ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.0

# A kernel of the pipeline: imports utils.core.run_dir, binds to its parent, joins the hold; all timed (median, seconds).
KERNEL_JOIN = """
import fcntl, json, os, statistics, sys, time
import dataclasses, datetime, importlib.metadata, math, pathlib, platform, signal, subprocess  # utils.core.config's own
started = time.perf_counter()
from utils.core import processes, run_dir
imported = time.perf_counter() - started
started = time.perf_counter()
processes.die_with_parent()
bound = time.perf_counter() - started
joins, refusals = [], []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    assert not run_dir.hold_run_dir(sys.argv[1], "a notebook").primary
    joins.append(time.perf_counter() - started)
    started = time.perf_counter()
    handle = os.open(os.path.join(sys.argv[1], run_dir.LOCK_NAME), os.O_RDWR)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass
    os.close(handle)
    refusals.append(time.perf_counter() - started)
print(json.dumps({"import": imported, "bind": bound, "join": statistics.median(joins),
                  "refused": statistics.median(refusals)}))
"""


def paired_medians(kit: Callable[[], None], baseline: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Median seconds of each, the two taking turns: a busy machine's drift falls on both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for action, spent in zip((kit, baseline), times):
            spent.append(timed(action)[0])
    return stats.median(times[0]), stats.median(times[1])


def bare_flock(path: Path) -> None:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)


def fixed_name_write(path: Path, text: str) -> None:
    """The write every writer used before: one fixed temporary name, then the rename."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def measure_hold(results: Results, run: Path, repeats: int) -> float:
    def hold() -> None:
        run_directory.hold_run_dir(run, "the pipeline").release()

    scratch = run / "bench_run_dir.lock"
    try:
        kit, baseline = paired_medians(hold, lambda: bare_flock(scratch), repeats)
    finally:
        scratch.unlink(missing_ok=True)
    results.add("the pipeline's hold, then release", kit * 1e3, "ms")
    results.add("baseline: a bare flock of a file", baseline * 1e3, "ms")
    results.add("hold / bare flock", kit / baseline, "x")
    return kit


def measure_join(results: Results, run: Path, repeats: int) -> dict[str, float]:
    """In a child, as a kernel started by the pipeline joins it (median over 5 children for the import)."""
    children = []
    with run_directory.hold_run_dir(run, "the pipeline"):
        for _ in range(5):
            done = subprocess.run([sys.executable, "-c", textwrap.dedent(KERNEL_JOIN), str(run), str(repeats)],
                                  cwd=KIT_ROOT, capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
            children.append(json.loads(done.stdout))
    figures = {name: stats.median(child[name] for child in children) for name in children[0]}
    results.add("a kernel joins the pipeline's hold", figures["join"] * 1e3, "ms")
    results.add("baseline: a bare flock, refused", figures["refused"] * 1e3, "ms")
    results.add("join / refused flock", figures["join"] / figures["refused"], "x")
    results.add("a kernel binds to its parent's death", figures["bind"] * 1e3, "ms")
    results.add("import utils.core.run_dir beside utils.core.config's imports", figures["import"] * 1e3, "ms")
    return figures


def measure_write(results: Results, run: Path, repeats: int) -> float:
    text = json.dumps(run_directory.read_run_record(run), indent=2) + "\n"  # as the stages write it
    scratch = run / "bench_run_dir"
    scratch.mkdir(exist_ok=True)
    try:
        kit, baseline = paired_medians(lambda: run_directory.write_text_atomic(scratch / "run.json", text),
                                       lambda: fixed_name_write(scratch / "run.json", text), repeats)  # fmt: skip
    finally:
        for path in scratch.iterdir():
            path.unlink()
        scratch.rmdir()
    results.add(f"atomic write of run.json ({len(text) / 1024:.0f} KiB)", kit * 1e3, "ms")
    results.add("baseline: fixed run.json.tmp, then rename", baseline * 1e3, "ms")
    results.add("atomic write / fixed-name write", kit / baseline, "x")
    return kit - baseline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=KIT_ROOT / "runs" / "demo", help="a finished run (make demo)")
    parser.add_argument("--repeats", type=int, default=200)
    add_json_argument(parser)
    args = parser.parse_args(argv)
    run = args.run_dir.resolve()
    if not (run / "run.json").is_file():
        parser.error(f"--run-dir {run}: no run.json; run `make demo` first, or name a finished run directory")
    stages = run_directory.read_run_record(run).get("stages", {})
    files = sum(1 for path in run.rglob("*") if path.is_file())
    results = Results("bench_run_dir", args.json)
    results.describe(run_dir=args.run_dir, notebooks=len(stages), files=files, repeats=args.repeats)
    hold = measure_hold(results, run, args.repeats)
    kernel = measure_join(results, run, args.repeats)
    extra_write = measure_write(results, run, args.repeats)
    processes = 1 + len(stages) + sum(name.startswith("train_") for name in stages)  # + a papermill process each
    added = (hold + len(stages) * (kernel["join"] + kernel["bind"]) + processes * kernel["import"]
             + max(0.0, extra_write) * (files + 3 * len(stages)))  # fmt: skip
    results.add("added to a run like this one", added, "s", f"< {TARGET_S:g} s", added < TARGET_S)
    results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
