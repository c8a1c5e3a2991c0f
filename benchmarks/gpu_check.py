"""One GPU check: the demo pipeline, bench_train, bench_metrics and bench_data, in one markdown table.

    python benchmarks/gpu_check.py [--out runs/gpu_check.md] [--budget-s 480] [--cpu-demo-s 135] [--work-dir DIR]

Every part runs as its own subprocess with its own timeout, inside one overall budget: a part gets
at most its share of the budget, and at least its minimum; a part whose minimum no longer fits is
not started, and the table says so. A benchmark writes its figures with ``--json`` after every
figure, so one that times out keeps what it measured. On a GPU, in this order:

- bench_metrics on the GPU (eager and compiled, vs scikit-image on one CPU thread);
- bench_data;
- the demo pipeline on CUDA in fp16 + GradScaler (the T4 path), then in the default precision
  (``precision=auto``), each into a fresh run directory, timed as a whole and per stage, against
  the 2-core CPU's time (``--cpu-demo-s``);
- bench_train with ``--compile``: eager at batch 16 (the paper's) and larger ones, then compiled
  at 16 and the best eager batch.

Without a GPU it says so, runs the CPU parts in reduced form (a smoke check of the same code, not
figures to quote) and lists the GPU parts as not run. The exit code is 0 when every part that
applies here ran to its end, 1 otherwise; unmet targets do not change it (the table shows them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results import Figure, read_results  # noqa: E402

KIT_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = KIT_ROOT / "benchmarks"
DEMO_CPU_2CORE_S = 135.0  # README, "What `make demo` does": the demo pipeline on the 2-core CPU machine
TRAIN_BATCHES = "16,32,64,128"  # the paper's batch, and larger ones to find the best
TAIL_LINES = 20  # of a part's output, shown when it did not finish
STAGE_DONE = re.compile(r"^\[\d+/\d+\] (\S+) done in (\d+(?:\.\d+)?) s\b")  # utils.pipeline's line per stage

GPU_ONLY_PARTS = (
    "bench_train, compiled",
    "demo pipeline, fp16 + GradScaler",
    "demo pipeline, precision auto",
)  # not run on a CPU

PROBE = """
import json, os, platform, torch
cuda = torch.cuda.is_available()
print(json.dumps({"gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
                  "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                  "cpus": os.cpu_count()}))
"""


@dataclass(frozen=True)
class Part:
    """One subprocess of the check. ``command`` gets the part's timeout in seconds (a benchmark may
    bound itself by it); ``figures`` turns its output lines into figures (default: its JSON)."""

    name: str
    command: Callable[[float], list[str]]
    share: float  # of the budget, at most
    min_s: float  # started only with this much left
    json_path: Path | None = None
    figures: Callable[[list[str], float], list[Figure]] | None = None
    not_run: str = ""  # why this part does not apply on this machine ("no GPU")


@dataclass
class Outcome:
    part: Part
    status: str  # "ok", "failed (exit 2)", "timed out after 96 s", "not run: ..."
    seconds: float = 0.0
    output: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    context: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)

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
    """GPU names, torch and CUDA versions, from a child process: this one holds no CUDA context."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"gpu_check: cannot import torch with {sys.executable}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def end_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the part's process group (the benchmark and its own workers), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def run_subprocess(command: list[str], timeout_s: float, prefix: str) -> tuple[int | None, list[str], float]:
    """Run ``command`` from the kit's root, echoing its output as it comes; on timeout, end its
    process group (its own children too). Returns (exit code or None on timeout, output lines, seconds)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=KIT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    lines: list[str] = []

    def echo() -> None:
        assert process.stdout is not None
        for raw in process.stdout:  # a progress bar redraws with \r: keep its last state only
            lines.append(raw.decode(errors="replace").rstrip("\r\n").split("\r")[-1])
            print(f"{prefix}{lines[-1]}", flush=True)

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        code: int | None = process.wait(timeout=max(timeout_s, 0.1))
    except subprocess.TimeoutExpired:
        code = None
        end_process_group(process)
    except BaseException:  # Ctrl-C: the part runs in its own session, so it would not see the signal
        end_process_group(process)
        raise
    reader.join(timeout=10)
    return code, lines, time.monotonic() - started


def part_timeout(part: Part, later: list[Part], budget: Budget) -> float:
    """Its share of the budget, less the minimums of the later parts that can still fit after its own
    minimum (earlier parts come first), but never under its own minimum."""
    spare, reserve = budget.left() - part.min_s, 0.0
    for other in later:
        if not other.not_run and reserve + other.min_s <= spare:
            reserve += other.min_s
    return min(part.share * budget.seconds, budget.left(), max(part.min_s, budget.left() - reserve))


def run_part(part: Part, later: list[Part], budget: Budget) -> Outcome:
    if part.not_run:
        return Outcome(part, f"not run: {part.not_run}")
    if budget.left() < part.min_s:
        return Outcome(part, f"not run: {budget.left():.0f} s of the budget left, it needs at least {part.min_s:.0f} s")
    timeout_s = part_timeout(part, later, budget)
    command = part.command(timeout_s)
    print(f"== {part.name} (timeout {timeout_s:.0f} s): {' '.join(command)}", flush=True)
    try:
        code, lines, seconds = run_subprocess(command, timeout_s, "   ")
    except OSError as err:  # the interpreter or script is missing: a row, like any other failure
        return Outcome(part, f"failed to start: {err}", command=command)
    status = "ok" if code == 0 else f"timed out after {timeout_s:.0f} s" if code is None else f"failed (exit {code})"
    outcome = Outcome(part, status, seconds, lines, command=command)
    if part.figures is not None:
        outcome.figures = part.figures(lines, seconds if outcome.ran else float("nan"))
    elif part.json_path is not None and part.json_path.exists():  # partial after a timeout: still worth showing
        try:
            results = read_results(part.json_path)
            outcome.figures, outcome.context = results.figures, results.context
        except (ValueError, KeyError, TypeError) as err:
            outcome.status = (
                f"{status}, but its --json {part.json_path.name} is unreadable ({type(err).__name__}: {err})"
            )
    print(f"== {part.name}: {outcome.status} in {seconds:.0f} s", flush=True)
    return outcome


def demo_figures(cpu_demo_s: float) -> Callable[[list[str], float], list[Figure]]:
    """The pipeline's stage times from its output, its wall time and the verdict against the 2-core CPU."""

    def figures(lines: list[str], wall_s: float) -> list[Figure]:
        stages = [m.groups() for m in map(STAGE_DONE.match, lines) if m]
        found = [Figure(f"stage {label}", float(seconds), "s") for label, seconds in stages]
        if wall_s == wall_s:  # NaN when the run did not finish: no verdict on a partial run
            found.append(Figure("wall time (papermill, every notebook)", wall_s, "s"))
            found.append(
                Figure(f"speed-up vs the 2-core CPU ({cpu_demo_s:g} s)", cpu_demo_s / wall_s, "x", "> 1x",
                       wall_s < cpu_demo_s)
            )  # fmt: skip
        return found

    return figures


def bench_command(script: str, *args: str) -> list[str]:
    return [sys.executable, str(BENCHMARKS / script), *args]


def gpu_parts(work: Path, cpu_demo_s: float) -> list[Part]:
    metrics_json, data_json, train_json = (
        work / "bench_metrics.json",
        work / "bench_data.json",
        work / "bench_train.json",
    )

    def demo(precision: str) -> Callable[[float], list[str]]:
        run_dir = work / f"demo_{precision}"
        return lambda _: [sys.executable, "-m", "utils.pipeline", "--profile", "demo", "--run-dir", str(run_dir),
                          "--no-progress", "-p", "device=cuda", "-p", f"precision={precision}"]  # fmt: skip

    # A benchmark's own --time-limit leaves 15 s of the part's timeout for imports and its last row.
    # bench_train comes last: it writes its eager figures first, so a compilation cut short loses only
    # the compiled ones; its 2 s windows (median of 3) keep five batch-size rows inside its share.
    return [
        Part("bench_metrics", lambda t: bench_command("bench_metrics.py", "--devices", "cuda",
                                                     "--time-limit", f"{t - 15:.0f}", "--json", str(metrics_json)),
             0.21, 60, metrics_json),
        Part("bench_data", lambda t: bench_command("bench_data.py", "--time-limit", f"{t - 15:.0f}",
                                                  "--json", str(data_json)),
             0.2, 30, data_json),
        Part("demo pipeline, fp16 + GradScaler", demo("fp16"), 0.35, 60, figures=demo_figures(cpu_demo_s)),
        Part("demo pipeline, precision auto", demo("auto"), 0.35, 60, figures=demo_figures(cpu_demo_s)),
        Part("bench_train, eager and compiled", lambda _: bench_command("bench_train.py", "--size", "256",
                                                                       "--batch-sizes", TRAIN_BATCHES, "--compile",
                                                                       "--window-s", "2", "--json", str(train_json)),
             0.5, 90, train_json),
    ]  # fmt: skip


def cpu_parts(work: Path) -> list[Part]:
    """The CPU parts in reduced form (a smoke check of the same code, not figures to quote); the
    GPU-only parts, listed as not run."""
    metrics_json, data_json, train_json = (
        work / "bench_metrics.json",
        work / "bench_data.json",
        work / "bench_train.json",
    )
    reduced = [
        Part("bench_metrics (reduced)", lambda _: bench_command("bench_metrics.py", "--images", "8", "--size", "64",
                                                               "--repeats", "1", "--no-compile", "--devices", "cpu",
                                                               "--json", str(metrics_json)),
             0.3, 20, metrics_json),
        Part("bench_data (reduced)", lambda _: bench_command("bench_data.py", "--images", "16", "--size", "64",
                                                            "--repeats", "1", "--json", str(data_json)),
             0.3, 20, data_json),
        Part("bench_train, eager (reduced)", lambda _: bench_command("bench_train.py", "--size", "64",
                                                                    "--batch-sizes", "4", "--window-s", "0",
                                                                    "--warmup", "1", "--repeats", "1", "--workers", "0",
                                                                    "--json", str(train_json)),
             0.4, 30, train_json),
    ]  # fmt: skip
    return reduced + [Part(name, lambda _: [], 0.0, 0.0, not_run="no GPU") for name in GPU_ONLY_PARTS]


# --- the table ----------------------------------------------------------------------------------


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
    elif outcome.command:  # started, then failed or timed out
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


def render_table(machine: dict, outcomes: list[Outcome], budget: Budget) -> str:
    gpus = machine["gpus"]
    card = f"{gpus[0]}" + (f" (x{len(gpus)} visible)" if len(gpus) > 1 else "") if gpus else "no GPU: CPU only"
    targets = [f for o in outcomes for f in o.figures if f.met is not None]
    not_met = [f.name for f in targets if not f.met]
    every_part_ran = all(o.ran for o in outcomes if o.applies)
    lines = [
        "# GPU check",
        "",
        f"- card: **{card}**",
        f"- torch {machine['torch']} (CUDA {machine['cuda'] or 'none'}), Python {machine['python']}, "
        f"{machine['cpus']} CPU cores",
        f"- {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; budget {budget.seconds:.0f} s, used {budget.used():.0f} s",
        f"- every part ran: {'yes' if every_part_ran else '**no**'}; targets met: {len(targets) - len(not_met)} of "
        f"{len(targets)}" + (f" (not met: {'; '.join(not_met)})" if not_met else ""),
        "",
        "| part | figure | value | unit | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for outcome in outcomes:
        lines += outcome_rows(outcome)
    ran = [o for o in outcomes if o.command]
    if ran:
        lines += ["", "## Commands", ""] + [f"- {o.part.name}: `{' '.join(o.command)}`" for o in ran]
    unfinished = [o for o in ran if not o.ran]
    for outcome in unfinished:
        lines += ["", f"## {outcome.part.name}: {outcome.status}, last {TAIL_LINES} lines", "", "```"]
        lines += outcome.output[-TAIL_LINES:] + ["```"]
    return "\n".join(lines) + "\n"


def run_check(parts: list[Part], machine: dict, budget: Budget, out: Path) -> int:
    """Run the parts in order, write the table to ``out`` and stdout; 0 when every part that applies ran."""
    outcomes = [run_part(part, parts[i + 1 :], budget) for i, part in enumerate(parts)]
    table = render_table(machine, outcomes, budget)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(f"\n{table}\n(written to {out})", flush=True)
    return 0 if all(o.ran for o in outcomes if o.applies) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=KIT_ROOT / "runs" / "gpu_check.md", help="the markdown table")
    parser.add_argument("--budget-s", type=float, default=480.0, help="every part together, seconds")
    parser.add_argument(
        "--cpu-demo-s", type=float, default=DEMO_CPU_2CORE_S, help="the demo pipeline's time on the 2-core CPU, s"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="JSON files and demo runs (default: temporary)")
    args = parser.parse_args(argv)
    if args.budget_s <= 0 or args.cpu_demo_s <= 0:
        parser.error("--budget-s and --cpu-demo-s must be positive")
    if args.work_dir is not None and args.work_dir.exists() and any(args.work_dir.iterdir()):
        parser.error(f"--work-dir {args.work_dir} is not empty: the demo runs need fresh run directories")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget_s)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a running part is ended too (run_subprocess)
    machine = probe_machine()
    if not machine["gpus"]:
        print("no GPU: CUDA is not available here; running the CPU parts in reduced form, the GPU parts are not run")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        parts = gpu_parts(work.resolve(), args.cpu_demo_s) if machine["gpus"] else cpu_parts(work.resolve())
        return run_check(parts, machine, budget, args.out)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
