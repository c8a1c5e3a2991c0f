"""The demo pipeline's time: ``make demo``'s pipeline into a fresh run directory, as a whole and per stage.

    python benchmarks/bench_demo.py [-p NAME=VALUE ...] [--run-dir DIR] [--time-limit S] [--json PATH]

Runs ``python -m utils.pipeline --profile demo --run-dir <fresh> --no-progress`` with the ``-p``
overrides given (e.g. ``-p device=cuda -p precision=fp16``) and echoes its output. Each stage's
time is recorded the moment the pipeline prints its ``[i/n] <stage> done in N s`` line, and the
wall time (papermill and every notebook's start-up included) once it has ended. The run directory
is a new temporary one, removed at the end, unless ``--run-dir`` names one (new or empty: it is kept).
On one GPU the three trainings run one after another (``train_concurrency`` auto: one per GPU), and each
notebook's start-up (importing torch, timm and kornia) is a large share of a stage this small.

The GPU check compares its demo runs with this benchmark's result file from the 2-core CPU machine:

    python benchmarks/bench_demo.py --json benchmarks/measured/bench_demo_cpu.json

``--time-limit``, SIGTERM and Ctrl-C stop the pipeline as Ctrl-C does (it stops its notebooks); the stages
finished by then keep their rows, and the wall time's row says why it has no value. Exit code: the
pipeline's (0 when it ran to its end), 124 after ``--time-limit``, 128 + N after signal N.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import children  # noqa: E402
from benchmarks.results import Results, add_json_argument  # noqa: E402
from utils.core.processes import exit_code_meaning  # noqa: E402

STAGE_DONE = re.compile(r"^\[\d+/\d+\] (\S+) done in (\d+(?:\.\d+)?) s\b")  # utils.pipeline's line per stage
WALL_TIME = "wall time (papermill, every notebook)"
PIPELINE_STOP_GRACE_S = 10.0  # after Ctrl-C, for the pipeline to stop its notebooks; then SIGKILL


def pipeline_command(run_dir: Path, overrides: list[str]) -> list[str]:
    """``make demo``'s pipeline into ``run_dir``, one ``-p NAME=VALUE`` per override, without progress bars."""
    command = [sys.executable, "-m", "utils.pipeline", "--profile", "demo", "--run-dir", str(run_dir), "--no-progress"]
    return command + [arg for pair in overrides for arg in ("-p", pair)]


def stage_figure(results: Results, line: str) -> None:
    """Echo a line of the pipeline's output; a stage's ``done in`` line is also a figure."""
    print(f"   {line}", flush=True)
    if match := STAGE_DONE.match(line):
        results.add(f"stage {match[1]}", float(match[2]), "s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter override for the pipeline, e.g. -p device=cuda (repeatable)")  # fmt: skip
    parser.add_argument("--run-dir", type=Path, default=None, help="kept (default: a temporary one, removed)")
    parser.add_argument("--time-limit", type=float, default=math.inf, help="seconds; then the pipeline is stopped")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    for pair in args.param:
        if "=" not in pair:
            parser.error(f"-p {pair}: expected NAME=VALUE")
    if args.run_dir is not None and args.run_dir.exists() and any(args.run_dir.iterdir()):
        parser.error(f"--run-dir {args.run_dir} is not empty: the demo needs a fresh run directory")
    if args.time_limit <= 0:
        parser.error("--time-limit must be positive")
    return args


def run_demo(results: Results, run_dir: Path, args: argparse.Namespace) -> int:
    """The pipeline, its rows as they come; returns the exit code (see the module's docstring)."""
    command = pipeline_command(run_dir, args.param)
    print(f"$ {' '.join(command)}", flush=True)
    finished = children.run_command(
        command, args.time_limit, lambda line: stage_figure(results, line), signal.SIGINT, PIPELINE_STOP_GRACE_S
    )
    if finished.code == 0:
        results.add(WALL_TIME, finished.seconds, "s")
        return 0
    last = finished.lines[-1].strip() if finished.lines else "(no output)"
    if finished.stopped is not None:
        why, code = f"stopped by {finished.stopped} after {finished.seconds:.0f} s", finished.stopped.exit_code
    elif finished.code is None:
        why, code = f"--time-limit {args.time_limit:g} s reached", 124
    else:
        why, code = f"the pipeline {exit_code_meaning(finished.code)}: {last}", finished.code
    results.not_measured(WALL_TIME, "s", why)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = Results("bench_demo", args.json)
    results.describe(profile="demo", overrides=" ".join(args.param) or "none")
    scratch = None if args.run_dir else Path(tempfile.mkdtemp(prefix="bench_demo_"))
    try:
        with children.stopping_on(signal.SIGTERM, signal.SIGINT):  # caught, so the pipeline gets Ctrl-C's default
            return run_demo(results, args.run_dir or scratch / "run", args)
    finally:
        results.write()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
