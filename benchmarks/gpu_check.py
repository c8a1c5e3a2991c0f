"""One GPU check: bench_train, bench_metrics, the demo pipeline and bench_data, in one markdown table.

    python benchmarks/gpu_check.py [--quick] [--out runs/gpu_check.md] [--json PATH] [--budget-s 480]
                                   [--cpu-demo-s S] [--work-dir DIR]

Every part runs as its own subprocess with its own timeout, inside one overall budget. The parts'
shares of the budget add up to 1; a part's timeout is its share of what is left (what an earlier
part did not use goes to the later ones), less the later parts' minimums and a margin for ending
it, and at least its own minimum; a part whose minimum no longer fits is not started, and the
table says so. A benchmark writes its figures with ``--json`` after every figure, and the table
(``--out``) and the gathered JSON (``--json``, default: beside the table) are written after every
part, so a part that times out, a SIGTERM or a Ctrl-C keeps what was measured. On a GPU, in this
order (the most valuable first):

- bench_train at 256 px: eager at batch 16 (the paper's) and 64, the reference loop, compiled at 16;
- bench_metrics on the GPU (eager and compiled, vs scikit-image on one CPU thread);
- the demo pipeline on CUDA in fp16 + GradScaler (the T4 path) through bench_demo, then in the
  default precision (``precision=auto``), each timed as a whole and per stage, against the CPU
  baseline: bench_demo's result file from the 2-core CPU machine (benchmarks/measured/bench_demo_cpu.json);
- bench_data.

``--quick`` (5 minutes; 300 s unless ``--budget-s``): bench_train at batch 16 only, bench_metrics
and the fp16 demo. Without a GPU it says so, runs the CPU parts in reduced form (a smoke check of
the same code, not figures to quote) and lists the GPU parts as not run. The exit code is 0 when
every part that applies here ran to its end, 1 otherwise, 128 + N when stopped by signal N; unmet
targets do not change it (the table shows them).

The parts, their shares of the budget (full / ``--quick``) and their minimums:

    part                              share        minimum
    bench_train                       45% / 50%    90 s / 60 s
    bench_metrics, GPU                15% / 20%    45 s / 40 s
    demo pipeline, fp16 + GradScaler  15% / 30%    60 s
    demo pipeline, precision auto     13% / -      60 s   (precision=auto: bf16 from Ampere on)
    bench_data                        12% / -      30 s

The budget. A part's timeout is its share of the time still left, capped so that the later parts' minimums still
fit, plus ``KILL_MARGIN_S`` for ending it (SIGTERM, ``children.STOP_GRACE_S`` of grace, SIGKILL); it is never under
the part's minimum. A benchmark's own ``--time-limit`` leaves ``OWN_LIMIT_MARGIN_S`` of its part's timeout for its
imports and last rows. The table and its JSON are rewritten before and after every part (the part in progress
shows as ``running``, the later ones as ``pending``); on SIGTERM or Ctrl-C the running part and its process group
are ended, it reads ``stopped by SIGTERM after N s`` with the figures it had, the rest ``not run``, and the check
exits with 143 (130 for Ctrl-C). Each part's own JSON goes to ``--work-dir`` (default: beside ``--out``,
``<its stem>_parts/``).

The table opens with the card, the torch and CUDA versions, the CPU, the budget used, whether every part ran and
how many targets are met (naming those that are not). Then one row per figure: part, figure, value, unit, target,
met; each part opens with how it ended (``ran``, failed, timed out or stopped, with its last lines of output, or
``not run: ...``). A figure that could not be measured shows ``-`` and why: out of memory (larger batches are then
not tried), ``--time-limit reached``, a loop whose process died (with its signal), ``peak unknown for <card>``, or
``no CPU baseline recorded``. The targets:

    the kit at least 3x the tutorial's loop at 256 px, batch 16     kit vs reference, batch 16 (bench_train)
    compiled, at least 10% of the card's dense fp16/bf16 peak       fraction of <card>'s dense ... peak (bench_train)
    prepare on 16 cores at least 6x one worker                      prepare speed-up, 16 workers vs 1 (bench_data)
    scoring on the GPU at least 200x scikit-image                   kit, compiled, GPU vs scikit-image (bench_metrics)
    the demo on the GPU faster than on the 2-core CPU               speed-up vs the CPU (demo)

The CPU baseline is the wall time in benchmarks/measured/bench_demo_cpu.json; ``--cpu-demo-s S`` overrides it.
The card's peak is ``bench_train.GPU_PEAK_FLOPS`` (NVIDIA's dense fp16/bf16 tensor figures, without sparsity),
looked up by the card's exact name (lower case, without "NVIDIA"/"Tesla"). With several GPUs the benchmarks use
the first and the demo trains one model per GPU; ``CUDA_VISIBLE_DEVICES=0`` gives one card's figures. The
committed result: ``python benchmarks/gpu_check.py --json benchmarks/measured/gpu_check_cuda.json``, then
``make docs``. A budget shorter than the default leaves rows out: the committed check's 390 s cut bench_train's
compiled rows (compiling both networks on a cold cache outlasted its time limit) and both demos before their
trainings ended.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import children  # noqa: E402
from benchmarks.bench_demo import WALL_TIME  # noqa: E402
from benchmarks.results import Figure, Results, measured_path, read_results  # noqa: E402
from utils.core.run_dir import write_text_atomic  # noqa: E402

KIT_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = KIT_ROOT / "benchmarks"
CPU_BASELINE = measured_path("bench_demo", "cpu")  # bench_demo on the 2-core CPU machine
FULL_BUDGET_S, QUICK_BUDGET_S = 480.0, 300.0
KILL_MARGIN_S = children.STOP_GRACE_S + 4  # a part past its timeout: SIGTERM, the grace, SIGKILL, its last output
OWN_LIMIT_MARGIN_S = 15.0  # a benchmark's own --time-limit leaves this much of its part's timeout
TAIL_LINES = 20  # of a part's output, shown when it did not finish

GPU_ONLY_PARTS = (
    "bench_train, compiled",
    "demo pipeline, fp16 + GradScaler",
    "demo pipeline, precision auto",
)  # not run on a CPU

PROBE = f"""
import json, sys
sys.path.insert(0, {str(KIT_ROOT)!r})
from benchmarks.results import describe_machine
print(json.dumps(describe_machine()))
"""


@dataclass(frozen=True)
class Part:
    """One subprocess of the check. ``command`` gets the part's timeout in seconds (a benchmark may
    bound itself by it); ``extra`` adds figures of the check's own to the part's (its JSON's)."""

    name: str
    command: Callable[[float], list[str]]
    share: float  # of the budget; the shares of a check's parts add up to 1
    min_s: float  # started only with this much left
    json_path: Path | None = None
    extra: Callable[[list[Figure]], list[Figure]] | None = None
    not_run: str = ""  # why this part does not apply on this machine ("no GPU")


@dataclass
class Outcome:
    part: Part
    status: str  # "ok", "failed (exit 2)", "timed out after 96 s", "stopped by SIGTERM after 12 s", "not run: ..."
    seconds: float = 0.0
    output: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    context: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    stopped: children.Stopped | None = None

    @property
    def ran(self) -> bool:
        return self.status == "ok"

    @property
    def applies(self) -> bool:
        return not self.part.not_run


@dataclass
class Budget:
    seconds: float
    started: float = field(default_factory=time.monotonic)

    def used(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.seconds - self.used()


def probe_machine() -> dict:
    """benchmarks.results.describe_machine(), from a child process: this one holds no CUDA context."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise SystemExit(f"gpu_check: cannot import torch with {sys.executable}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def part_timeout(part: Part, later: list[Part], budget: Budget) -> float:
    """Its share of what is left (shared with the later parts that apply), less the minimums of the later
    parts that still fit after its own minimum, and less the margin for ending it; at least its minimum."""
    later = [other for other in later if not other.not_run]
    shares = part.share + sum(other.share for other in later)
    proportional = budget.left() * part.share / shares if shares > 0 else budget.left()
    spare, reserve = budget.left() - part.min_s - KILL_MARGIN_S, 0.0
    for other in later:
        if reserve + other.min_s <= spare:
            reserve += other.min_s
    return max(part.min_s, min(proportional, budget.left() - reserve - KILL_MARGIN_S))


def run_part(part: Part, later: list[Part], budget: Budget) -> Outcome:
    if part.not_run:
        return Outcome(part, f"not run: {part.not_run}")
    if budget.left() < part.min_s:
        return Outcome(part, f"not run: {budget.left():.0f} s of the budget left, it needs at least {part.min_s:.0f} s")
    timeout_s = part_timeout(part, later, budget)
    command = part.command(timeout_s)
    if part.json_path is not None:
        part.json_path.unlink(missing_ok=True)  # a figure from an earlier check is not this one's
    print(f"== {part.name} (timeout {timeout_s:.0f} s): {' '.join(command)}", flush=True)
    try:
        finished = children.run_command(command, timeout_s, lambda line: print(f"   {line}", flush=True))
    except OSError as err:  # the interpreter or script is missing: a row, like any other failure
        return Outcome(part, f"failed to start: {err}", command=command)
    if finished.stopped is not None:
        status = f"stopped by {finished.stopped} after {finished.seconds:.0f} s"
    elif finished.code is None:
        status = f"timed out after {timeout_s:.0f} s"
    else:
        status = "ok" if finished.code == 0 else f"failed (exit {finished.code})"
    outcome = Outcome(part, status, finished.seconds, finished.lines, command=command, stopped=finished.stopped)
    if part.json_path is not None and part.json_path.exists():  # partial after a timeout: still worth showing
        try:
            results = read_results(part.json_path)
            outcome.figures, outcome.context = results.figures, results.context
        except (ValueError, KeyError, TypeError) as err:
            outcome.status = (
                f"{status}, but its --json {part.json_path.name} is unreadable ({type(err).__name__}: {err})"
            )
    if part.extra is not None:
        outcome.figures = outcome.figures + part.extra(outcome.figures)
    print(f"== {part.name}: {outcome.status} in {finished.seconds:.0f} s", flush=True)
    return outcome


# --- the parts ----------------------------------------------------------------------------------


def cpu_baseline(path: Path) -> tuple[float, str] | str:
    """(the demo's wall time on the CPU, where it was measured) from bench_demo's result file, or why not."""
    shown = path.relative_to(KIT_ROOT) if path.is_relative_to(KIT_ROOT) else path
    if not path.is_file():
        return f"no CPU baseline recorded ({shown} is missing)"
    results = read_results(path)
    other = [
        p for p in results.context.get("overrides", "none").split() if p.split("=")[0] not in ("device", "precision")
    ]
    if other and other != ["none"]:
        return f"the CPU baseline in {shown} ran with -p {' -p '.join(other)}: not the demo's parameters"
    wall = next((f.value for f in results.figures if f.name == WALL_TIME and f.measured), None)
    if wall is None:
        return f"the CPU baseline in {shown} has no wall time (its run did not finish)"
    return wall, f"{shown.name}, {results.machine.get('cpu_count', '?')} cores"


def demo_speedup(baseline: Path, cpu_demo_s: float | None) -> Callable[[list[Figure]], list[Figure]]:
    """The demo's speed-up on the GPU vs the CPU baseline (``cpu_demo_s`` when given, else ``baseline``)."""

    def figures(measured: list[Figure]) -> list[Figure]:
        found = (cpu_demo_s, "--cpu-demo-s") if cpu_demo_s else cpu_baseline(baseline)
        wall = next((f.value for f in measured if f.name == WALL_TIME and f.measured), None)
        if isinstance(found, str):
            return [Figure("speed-up vs the CPU", math.nan, "x", "> 1x", None, found)]
        cpu_s, source = found
        name = f"speed-up vs the CPU ({cpu_s:.0f} s, {source})"
        if wall is None:
            return [Figure(name, math.nan, "x", "> 1x", None, "the demo's wall time was not measured")]
        return [Figure(name, cpu_s / wall, "x", "> 1x", cpu_s / wall > 1)]

    return figures


def bench_command(script: str, *args: str) -> list[str]:
    return [sys.executable, str(BENCHMARKS / script), *args]


def own_limit(timeout_s: float) -> str:
    return f"{max(timeout_s - OWN_LIMIT_MARGIN_S, 1):.0f}"


def gpu_parts(work: Path, cpu_demo_s: float | None, quick: bool) -> list[Part]:
    """bench_train first (eager at 16 and 64, then compiled at 16), then bench_metrics, the demo, bench_data;
    ``quick``: batch 16 only, and no second demo or bench_data."""
    train_json, metrics_json, data_json = (
        work / f"{name}.json" for name in ("bench_train", "bench_metrics", "bench_data")
    )
    batches, window_s = ("16", "1") if quick else ("16,64", "2")

    def demo(precision: str) -> Callable[[float], list[str]]:
        return lambda t: bench_command("bench_demo.py", "-p", "device=cuda", "-p", f"precision={precision}",
                                       "--time-limit", own_limit(t), "--json", str(work / f"bench_demo_{precision}.json"))  # fmt: skip

    speedup = demo_speedup(CPU_BASELINE, cpu_demo_s)
    parts = [
        Part("bench_train", lambda t: bench_command("bench_train.py", "--size", "256", "--batch-sizes", batches,
                                                   "--compile", "--compile-batch-sizes", "16", "--window-s", window_s,
                                                   "--time-limit", own_limit(t), "--json", str(train_json)),
             0.5 if quick else 0.45, 60 if quick else 90, train_json),
        Part("bench_metrics, GPU", lambda t: bench_command("bench_metrics.py", "--devices", "cuda",
                                                          "--time-limit", own_limit(t), "--json", str(metrics_json)),
             0.2 if quick else 0.15, 40 if quick else 45, metrics_json),
        Part("demo pipeline, fp16 + GradScaler", demo("fp16"), 0.3 if quick else 0.15, 60,
             work / "bench_demo_fp16.json", speedup),
    ]  # fmt: skip
    if quick:
        return parts
    return parts + [
        Part("demo pipeline, precision auto", demo("auto"), 0.13, 60, work / "bench_demo_auto.json", speedup),
        Part("bench_data", lambda t: bench_command("bench_data.py", "--time-limit", own_limit(t),
                                                  "--json", str(data_json)),
             0.12, 30, data_json),
    ]  # fmt: skip


def cpu_parts(work: Path, quick: bool = False) -> list[Part]:
    """The CPU parts in reduced form (a smoke check of the same code, not figures to quote); the
    GPU-only parts, listed as not run."""
    train_json, metrics_json, data_json = (
        work / f"{name}.json" for name in ("bench_train", "bench_metrics", "bench_data")
    )
    reduced = [
        Part("bench_train, eager (reduced)", lambda _: bench_command("bench_train.py", "--size", "32",
                                                                    "--batch-sizes", "4", "--shard-images", "8",
                                                                    "--window-s", "0", "--warmup", "1",
                                                                    "--repeats", "1", "--workers", "0",
                                                                    "--json", str(train_json)),
             0.4, 30, train_json),
        Part("bench_metrics (reduced)", lambda _: bench_command("bench_metrics.py", "--images", "8", "--size", "64",
                                                               "--repeats", "1", "--no-compile", "--devices", "cpu",
                                                               "--json", str(metrics_json)),
             0.3, 20, metrics_json),
        Part("bench_data (reduced)", lambda _: bench_command("bench_data.py", "--images", "16", "--size", "64",
                                                            "--repeats", "1", "--json", str(data_json)),
             0.3, 20, data_json),
    ]  # fmt: skip
    gpu_only = GPU_ONLY_PARTS[:2] if quick else GPU_ONLY_PARTS
    return reduced + [Part(name, lambda _: [], 0.0, 0.0, not_run="no GPU") for name in gpu_only]


# --- the table and the gathered JSON ----------------------------------------------------------


def format_value(value: float) -> str:
    if value != value:
        return "-"
    if value == 0 or 0.01 <= abs(value) < 100:
        return f"{value:.3g}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2e}"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def table_row(*cells: str) -> str:
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def outcome_rows(outcome: Outcome) -> list[str]:
    name = outcome.part.name
    if outcome.ran:
        rows = [table_row(name, "ran", f"{outcome.seconds:.0f}", "s", "", "")]
    elif outcome.command:  # started, then failed, timed out or stopped
        last = "\n".join(line.strip() for line in outcome.output[-3:]) or "(no output)"
        rows = [table_row(name, f"**{outcome.status}**: {last}", f"{outcome.seconds:.0f}", "s", "", "")]
    else:
        rows = [table_row(name, outcome.status, "", "", "", "")]
    for figure in outcome.figures:
        met = "" if figure.met is None else ("yes" if figure.met else "**no**")
        label = figure.name + (f" ({figure.note})" if figure.note else "")
        rows.append(table_row(name, label, format_value(figure.value), figure.unit, figure.target or "", met))
    if skipped := outcome.context.get("skipped"):
        rows.append(table_row(name, f"skipped rows: {skipped}", "", "", "", ""))
    return rows


@dataclass
class Check:
    """The parts, what each did so far, and where the table and the gathered JSON go."""

    parts: list[Part]
    machine: dict
    budget: Budget
    out: Path
    json_path: Path
    quick: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    results: Results = field(init=False)

    def __post_init__(self) -> None:
        self.results = Results("gpu_check", str(self.json_path), machine=self.machine)

    def every_part_ran(self) -> bool:
        return len(self.outcomes) == len(self.parts) and all(o.ran for o in self.outcomes if o.applies)

    def header(self) -> list[str]:
        gpus, m = self.machine["gpus"], self.machine
        card = f"{gpus[0]}" + (f" (x{len(gpus)} visible)" if len(gpus) > 1 else "") if gpus else "no GPU: CPU only"
        targets = [f for o in self.outcomes for f in o.figures if f.met is not None]
        not_met = [f.name for f in targets if not f.met]
        state = "yes" if self.every_part_ran() else "**no**"
        if len(self.outcomes) < len(self.parts):
            state += f" (still running: {len(self.outcomes)} of {len(self.parts)} parts done)"
        return [
            "# GPU check" + (" (--quick)" if self.quick else ""),
            "",
            f"- card: **{card}**",
            f"- torch {m['torch']} (CUDA {m['cuda'] or 'none'}), Python {m['python']}, {m['cpu']}, {m['cpu_count']} CPU cores",
            f"- {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; budget {self.budget.seconds:.0f} s, used {self.budget.used():.0f} s",
            f"- every part ran: {state}; targets met: {len(targets) - len(not_met)} of {len(targets)}"
            + (f" (not met: {'; '.join(not_met)})" if not_met else ""),
        ]

    def table(self) -> str:
        lines = self.header() + [
            "",
            "| part | figure | value | unit | target | met |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for outcome in self.outcomes:
            lines += outcome_rows(outcome)
        for part in self.parts[len(self.outcomes) :]:
            lines.append(
                table_row(part.name, "running" if part is self.parts[len(self.outcomes)] else "pending", "", "", "", "")
            )
        started = [o for o in self.outcomes if o.command]
        if started:
            lines += ["", "## Commands", ""] + [f"- {o.part.name}: `{' '.join(o.command)}`" for o in started]
        for outcome in (o for o in started if not o.ran):
            lines += ["", f"## {outcome.part.name}: {outcome.status}, last {TAIL_LINES} lines", "", "```"]
            lines += outcome.output[-TAIL_LINES:] + ["```"]
        return "\n".join(lines) + "\n"

    def payload(self) -> dict:
        """The shared result layout: every part's figures (named ``<part>: <figure>``), and each part's own."""
        self.results.context = {"budget_s": f"{self.budget.seconds:g}", "used_s": f"{self.budget.used():.0f}",
                                "quick": str(self.quick), "every_part_ran": str(self.every_part_ran())}  # fmt: skip
        self.results.figures = [replace(f, name=f"{o.part.name}: {f.name}") for o in self.outcomes for f in o.figures]
        parts = [{"part": o.part.name, "status": o.status, "seconds": round(o.seconds, 1), "command": " ".join(o.command),
                  "context": o.context} for o in self.outcomes]  # fmt: skip
        return {**self.results.payload(), "parts": parts}

    def write(self) -> str:
        table = self.table()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out, table)
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.json_path, json.dumps(self.payload(), indent=2, allow_nan=False) + "\n")
        return table


def run_check(parts: list[Part], machine: dict, budget: Budget, out: Path, json_path: Path | None = None,
              quick: bool = False) -> int:  # fmt: skip
    """Run the parts in order, writing the table to ``out`` (and the gathered JSON beside it) before and
    after each; SIGTERM or Ctrl-C ends the running part and keeps what was measured. Returns the exit code."""
    check = Check(parts, machine, budget, out, json_path or out.with_suffix(".json"), quick)
    code = None
    with children.stopping_on(signal.SIGTERM, signal.SIGINT):
        try:
            for i, part in enumerate(parts):
                check.write()
                check.outcomes.append(run_part(part, parts[i + 1 :], budget))
                if check.outcomes[-1].stopped is not None:
                    raise check.outcomes[-1].stopped
            check.write()
        except children.Stopped as stop:
            print(f"gpu_check: stopped by {stop}; writing what was measured", flush=True)
            check.outcomes += [
                Outcome(p, f"not run: the check was stopped by {stop}") for p in parts[len(check.outcomes) :]
            ]
            code = stop.exit_code
        table = check.write()
    print(f"\n{table}\n(written to {out} and {check.json_path})", flush=True)
    return code if code is not None else 0 if check.every_part_ran() else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bench_train at batch 16, bench_metrics, the fp16 demo")
    parser.add_argument("--out", type=Path, default=KIT_ROOT / "runs" / "gpu_check.md", help="the markdown table")
    parser.add_argument("--json", type=Path, default=None, help="the gathered JSON (default: beside --out, .json)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help=f"every part together, seconds (default {FULL_BUDGET_S:.0f}, --quick {QUICK_BUDGET_S:.0f})")  # fmt: skip
    parser.add_argument("--cpu-demo-s", type=float, default=None,
                        help=f"the demo's time on the CPU, s (default: the wall time in {CPU_BASELINE.relative_to(KIT_ROOT)})")  # fmt: skip
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="the parts' JSON files (default: beside --out, <its stem>_parts/)"
    )
    args = parser.parse_args(argv)
    args.budget_s = args.budget_s or (QUICK_BUDGET_S if args.quick else FULL_BUDGET_S)
    if args.budget_s <= 0 or (args.cpu_demo_s is not None and args.cpu_demo_s <= 0):
        parser.error("--budget-s and --cpu-demo-s must be positive")
    args.work_dir = (args.work_dir or args.out.with_name(f"{args.out.stem}_parts")).resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget_s)
    machine = probe_machine()
    if not machine["gpus"]:
        print("no GPU: CUDA is not available here; running the CPU parts in reduced form, the GPU parts are not run")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    gpu = bool(machine["gpus"])
    parts = gpu_parts(args.work_dir, args.cpu_demo_s, args.quick) if gpu else cpu_parts(args.work_dir, args.quick)
    return run_check(parts, machine, budget, args.out, args.json, args.quick)


if __name__ == "__main__":
    sys.exit(main())
