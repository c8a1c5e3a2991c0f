"""The train notebook's start: from its kernel's start to its first cell (the imports) done, the kit against a baseline.

    python benchmarks/bench_notebook_start.py [--baseline-commit e5aeb8b | --baseline DIR] [--repeats 7] [--json PATH]

A kernel starts as the pipeline starts each notebook's (utils/run/kernel_manager.py's manager, on Unix sockets, with
utils/run/notebook_step.py's kernel arguments, in the kit's directory), waits until it is ready, then runs the first
code cell of ``notebooks/02_train.ipynb``, its imports; the time is taken at that cell's execute reply. The baseline
is the same, its kernel started in another version of the kit and running that version's own train notebook's first
cell (its ``utils/`` imported from there, with this kit's environment): ``--baseline``, a checkout, or else a
temporary git worktree of ``--baseline-commit``, by default the last commit whose ``utils/`` was one flat package.
Kit and baseline take turns, the order swapped each round (a busy machine's drift falls on both alike), after one
warm-up each that is not counted (it fills the file cache); figures are medians of ``--repeats``.

The kernel's start (before its first cell) is the same program for both; the imports are what the kit controls: the
train notebook's imports cell imports what training uses in the notebook's process and nothing of the evaluation
(no utils.eval, seaborn, scipy or statsmodels; tests/test_notebooks.py). The machine's load average is recorded
before and after (``context``): on a machine shared with other work, the ratio is the figure to read, the seconds
less so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results import Results, add_json_argument  # noqa: E402
from utils.run.notebook_step import KERNEL_ARGUMENTS  # noqa: E402

KIT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = Path("notebooks") / "02_train.ipynb"
BASELINE_COMMIT = "e5aeb8b"  # the last commit whose utils/ was one flat package
# No slower than the baseline, within the run-to-run spread of a 2-core machine (about 5%). Not faster: the first
# cell imports torch, timm (with torchvision and torch._dynamo, which Adam imports anyway), kornia and pandas, about
# 90% of it, and the notebook trains with every one of them in its own process.
TARGET_RATIO = 1.05
KERNEL_TIMEOUT_S = 300


@dataclass(frozen=True)
class Start:
    """One kernel's start, in seconds from the call that starts it: ready (its kernel_info answered) and its first
    cell done (the execute reply)."""

    ready: float
    first_cell: float

    @property
    def imports(self) -> float:
        return self.first_cell - self.ready


def first_code_cell(kit: Path) -> str:
    """The source of the first code cell of ``kit``'s train notebook."""
    notebook = json.loads((kit / NOTEBOOK).read_text())
    return "".join(next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")["source"])


async def start_kernel_and_run(kit: Path, source: str) -> Start:
    """A kernel started in ``kit`` as the pipeline starts one, ``source`` run in it; then the kernel shut down."""
    from utils.run.kernel_manager import UnixSocketKernelManager  # imports jupyter_client

    manager = UnixSocketKernelManager(kernel_name="python3")
    started = time.perf_counter()
    await manager.start_kernel(cwd=str(kit), extra_arguments=KERNEL_ARGUMENTS)
    client = manager.client()
    try:
        client.start_channels()
        await client.wait_for_ready(timeout=KERNEL_TIMEOUT_S)
        ready = time.perf_counter()
        message = client.execute(source, store_history=False)
        while True:
            reply = await client.get_shell_msg(timeout=KERNEL_TIMEOUT_S)
            if reply["parent_header"].get("msg_id") == message:
                break
        done = time.perf_counter()
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)  # as the pipeline: every cell has run
    content = reply["content"]
    if content["status"] != "ok":
        raise RuntimeError(f"{kit / NOTEBOOK}: its first cell failed: {content.get('ename')}: {content.get('evalue')}")
    return Start(ready - started, done - started)


def measure(kit: Path) -> Start:
    return asyncio.run(start_kernel_and_run(kit, first_code_cell(kit)))


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def commit_of(kit: Path) -> str:
    done = subprocess.run(["git", "-C", str(kit), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def take_turns(kit: Path, baseline: Path, repeats: int, warm_up: bool) -> tuple[list[Start], list[Start]]:
    """``repeats`` starts of each, alternating, the order swapped each round; one uncounted start of each first."""
    if warm_up:
        measure(kit)
        measure(baseline)
    starts: dict[str, list[Start]] = {"kit": [], "baseline": []}
    folders = {"kit": kit, "baseline": baseline}
    for round_ in range(repeats):
        for label in ("kit", "baseline") if round_ % 2 == 0 else ("baseline", "kit"):
            start = measure(folders[label])
            starts[label].append(start)
            print(f"  {label}: ready {start.ready:.2f} s, first cell done {start.first_cell:.2f} s", flush=True)
    return starts["kit"], starts["baseline"]


def report(results: Results, kit: list[Start], baseline: list[Start]) -> float:
    """The medians of both, their parts, and the ratio against its target; the ratio."""

    def median(starts: list[Start], part: str) -> float:
        return statistics.median(getattr(start, part) for start in starts)

    for label, starts in (("kit", kit), ("baseline", baseline)):
        results.add(f"{label}: kernel start to its first cell done", median(starts, "first_cell"), "s")
        results.add(f"{label}: the kernel ready", median(starts, "ready"), "s")
        results.add(f"{label}: the first cell (the imports)", median(starts, "imports"), "s")
    ratio = median(kit, "first_cell") / median(baseline, "first_cell")
    target = f"<= {TARGET_RATIO:g}x"
    results.add("kit / baseline: kernel start to its first cell done", ratio, "x", target, ratio <= TARGET_RATIO)
    results.add("kit / baseline: the first cell", median(kit, "imports") / median(baseline, "imports"), "x")
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout of the kit")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT, help="without --baseline: a worktree of it")
    parser.add_argument("--repeats", type=int, default=7, help="counted starts of each, after a warm-up")
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false", help="count every start")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    if args.baseline is None:
        with tempfile.TemporaryDirectory() as folder:
            checkout = Path(folder) / "baseline"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(checkout), args.baseline_commit],
                cwd=KIT_ROOT,
                check=True,
                capture_output=True,
            )
            try:
                return measure_against(parser, args, checkout)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(checkout)], cwd=KIT_ROOT, check=False)
    return measure_against(parser, args, args.baseline)


def measure_against(parser: argparse.ArgumentParser, args: argparse.Namespace, checkout: Path) -> int:
    baseline = checkout.resolve()
    if not (baseline / NOTEBOOK).is_file() or not (baseline / "utils").is_dir():
        parser.error(f"--baseline {checkout}: not a checkout of the kit (no {NOTEBOOK} and utils/ in it)")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: must be at least 1")
    results = Results("bench_notebook_start", args.json)
    results.describe(
        notebook=str(NOTEBOOK),
        baseline=f"the kit at commit {commit_of(baseline)}",
        repeats=args.repeats,
        warm_up=args.warm_up,
        bytecode_cache="not written (PYTHONDONTWRITEBYTECODE)"
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else "written",
        load_average_before=load_average(),
    )
    kit, before = take_turns(KIT_ROOT, baseline, args.repeats, args.warm_up)
    results.describe(
        load_average_after=load_average(),
        kit_runs_s=" ".join(f"{start.first_cell:.2f}" for start in kit),
        baseline_runs_s=" ".join(f"{start.first_cell:.2f}" for start in before),
    )
    report(results, kit, before)
    results.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
