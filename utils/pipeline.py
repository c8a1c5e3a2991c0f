"""Run the stage notebooks with papermill, into one run directory.

    python -m utils.pipeline --profile demo --run-dir runs/demo [-p name=value ...]

Parameters are validated before any notebook starts. Rendered notebooks land in
``<run_dir>/notebooks/``; a failing cell stops the run and names the notebook, cell and error.

The train notebooks (one per model and training seed) run ``train_concurrency`` at a time, each in its own papermill
process with its share of the machine: its GPUs through ``CUDA_VISIBLE_DEVICES``, or on the CPU its
share of the cores through ``OMP_NUM_THREADS``. Each logs to ``<run_dir>/logs/train_<model>_seed<S>.log``;
a model that fails is named and the others train to the end, then the pipeline stops before
evaluate. Every notebook's start-up (process launch, kernel start, imports) goes to ``run.json``.

With ``time_limit_hours``, the pipeline records its deadline in ``run.json`` (``budget``) and the
trainings stop at a checkpoint when it passes; the run then ends cleanly as a partial run: no
evaluation, ``run.json``'s ``partial`` and a report.md that say how far each model got and how to continue.

The pipeline is its run directory's one writer (``utils/core/run_dir.py``): another pipeline or stage on it is refused at
once, naming this one, while the notebooks it starts write under its lock. Every process it starts dies with it,
even by SIGKILL (``utils/core/processes.py``); SIGTERM and SIGHUP stop it as Ctrl-C does, every notebook first, and it
exits with 128 + the signal's number. Run again, it goes on from what was written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from utils.core.config import (
    override_text,
    parse_overrides,
    resolve_params,
    settle_pretrained,
    trained_name,
    training_seeds,
)
from utils.core.domains import MIXED
from utils.core.errors import ParameterError, UnreadableFileError, error_line, run_command
from utils.core.parameters import RunParams
from utils.core.processes import Stopped, die_with_parent, stopping_on
from utils.core.profiles import PROFILE_USES, PROFILES
from utils.core.run_dir import WRITER_ENV, RunDirBusy, RunDirWriter, hold_run_dir, locked_run_record
from utils.nets.environment import check_device, check_profile_device
from utils.run.notebook_step import FAILURE_MARK, StageFailed, Step, describe_startup, now, record_timing, run_step
from utils.run.scheduler import ModelProgress, run_train_steps

PARAMETER_TABLE = "docs/running.md#parameters"


def plan_steps(profile: str, run_dir: str | Path, overrides: dict[str, Any]) -> list[Step]:
    """Validate everything, then list the notebooks to run: prepare, one train per model and training seed,
    evaluate, figures, colorize (sample images)."""
    params = resolve_params(profile, overrides)
    check_device(params)
    check_profile_device(profile, params, run_dir, overrides)
    common = {"profile": profile, "run_dir": str(Path(run_dir).resolve()), "overrides": dict(overrides)}
    steps = [Step("01_prepare_data.ipynb", "01_prepare_data.ipynb", common, "prepare")]
    for index, seed in enumerate(training_seeds(params)):
        for m in params.models:
            name = trained_name(m, seed)
            parameters = {**common, "domain": m, "seed_index": index}
            steps.append(Step("02_train.ipynb", f"02_train_{name}.ipynb", parameters, f"train_{name}"))
    steps += [
        Step("03_evaluate.ipynb", "03_evaluate.ipynb", common, "evaluate"),
        Step("04_figures.ipynb", "04_figures.ipynb", common, "figures"),
        # the mixed model colorizes the sample images (else the last model trained)
        Step(
            "05_colorize.ipynb",
            "05_colorize.ipynb",
            {**common, "model": MIXED if MIXED in params.models else params.models[-1]},
            "colorize",
        ),
    ]
    return steps


# --- the time budget -------------------------------------------------------------------------------


def record_budget(run_dir: Path, hours: float) -> None:
    """run.json's ``budget``, where each train process reads the deadline (none without a time limit)."""
    started = now()
    with locked_run_record(run_dir) as record:
        record.pop("budget", None)
        if hours:
            deadline = started + dt.timedelta(hours=hours)
            record["budget"] = {
                "time_limit_hours": hours,
                "started": started.isoformat(timespec="seconds"),
                "deadline": deadline.isoformat(timespec="seconds"),
            }


def close_budget(run_dir: Path) -> None:
    """The pipeline has ended: a train notebook run alone later counts from its own start, not to this deadline."""
    with locked_run_record(run_dir) as record:
        if record.get("budget"):
            record["budget"]["finished"] = now().isoformat(timespec="seconds")


def record_partial(run_dir: Path, params: RunParams, trains: list[Step], continue_how: str) -> dict[str, Any] | None:
    """run.json's ``partial``: why training stopped short, each model's epochs, how to continue; None when
    every model has all its epochs."""
    progress = {step.trained_name: ModelProgress.of(step, run_dir, params) for step in trains}
    done = {name: len(p.epochs()) for name, p in progress.items()}
    partial = None
    if any(done[name] < p.epochs_planned for name, p in progress.items()):
        partial = {
            "reason": f"time budget of {params.time_limit_hours:g} h ran out",
            "models": {name: f"{done[name]} of {p.epochs_planned} epochs" for name, p in progress.items()},
            "continue": continue_how,
        }
    with locked_run_record(run_dir) as record:
        record["partial"] = partial
    return partial


def pipeline_command(profile: str, run_dir: str | Path, overrides: dict[str, Any]) -> str:
    """The command line that runs the pipeline with these parameters, as a user types it."""
    command = ["python", "-m", "utils.pipeline", "--profile", profile, "--run-dir", str(run_dir)]
    command += [arg for name, value in overrides.items() for arg in ("-p", f"{name}={override_text(value)}")]
    return shlex.join(command)


def how_to_continue(profile: str, run_dir: Path, overrides: dict[str, Any]) -> str:
    return (
        f"locally, run the same command on the same run directory: `{pipeline_command(profile, run_dir, overrides)}` "
        "(each model resumes from its checkpoint_last.pt); on Kaggle: `python -m utils.kaggle push --continue`"
    )


# --- the whole pipeline --------------------------------------------------------------------------


def run_pipeline(
    profile: str,
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    plan_only: bool = False,
) -> list[Path]:
    """Run every stage, as the run directory's one writer; returns the rendered notebooks' paths. ``plan_only``:
    prepare, print the plan, and stop before training.

    Raises RunDirBusy when another process writes ``run_dir``. SIGTERM and SIGHUP stop it as Ctrl-C does, raising
    :class:`~utils.core.processes.Stopped`: every notebook it started stops first."""
    asked = dict(overrides or {})  # as the user gave them: what the plan describes and a continuation repeats
    overrides = settle_pretrained(profile, run_dir, asked)  # what every stage of the run reads
    steps = plan_steps(profile, run_dir, overrides)  # raises before any work
    with hold_run_dir(run_dir, "the pipeline") as writer, stopping_on(signal.SIGTERM, signal.SIGHUP):
        try:
            return run_steps(profile, writer.run_dir, overrides, steps, progress, plan_only, asked)
        except BaseException:  # Ctrl-C, a signal, a failure: no process of the run outlives it
            end_run_processes(writer)
            raise


def plan_training(profile: str, run_dir: Path, asked: dict[str, Any], params: RunParams, trains: list[Step]) -> str:
    """The plan, once the data is prepared: every model's data, the checks that need it, the time left (``asked``:
    the overrides as the user gave them, for which encoder weights were asked)."""
    from utils.run.plan import describe_encoder, format_plan, make_plan, plan_record

    run_plan = make_plan(run_dir, params, trains)
    with locked_run_record(run_dir) as record:
        record["plan"] = plan_record(run_plan)
    return format_plan(run_plan, describe_encoder(profile, asked, params))


def run_steps(
    profile: str,
    run_dir: Path,
    overrides: dict[str, Any],
    steps: list[Step],
    progress: bool,
    plan_only: bool = False,
    asked: dict[str, Any] | None = None,
) -> list[Path]:
    """``steps`` in order, training planned first; ``asked``: the overrides as the user gave them (``overrides``
    with ``pretrained=cached`` settled), which the plan describes and a continuation repeats."""
    asked = overrides if asked is None else asked
    params = resolve_params(profile, overrides)
    labels = {step.rendered: f"[{i}/{len(steps)}] {step.label}" for i, step in enumerate(steps, 1)}
    trains = [step for step in steps if step.notebook == "02_train.ipynb"]
    started = time.perf_counter()
    record_budget(run_dir, params.time_limit_hours)
    try:
        for step in steps:
            if step is trains[0]:
                print(plan_training(profile, run_dir, asked, params, trains), flush=True)  # refuses before any
                if plan_only:
                    print(
                        f"--plan: nothing trained; the same command without --plan runs it (in {run_dir}, whose "
                        "prepared data it reuses)"
                    )
                    return [run_dir / "notebooks" / steps[0].rendered]
                run_train_steps(trains, run_dir, params, labels)
                partial = record_partial(run_dir, params, trains, how_to_continue(profile, run_dir, asked))
                if partial:
                    end_partial(run_dir, partial, time.perf_counter() - started)
                    return [run_dir / "notebooks" / s.rendered for s in steps[: steps.index(trains[-1]) + 1]]
            if step in trains:
                continue
            label = labels[step.rendered]
            print(f"{label} ...", flush=True)
            t0, launched = time.perf_counter(), now()
            startup = record_timing(run_dir, step, run_step(step, run_dir, progress), launched)
            print(f"{label} done in {time.perf_counter() - t0:.0f} s{describe_startup(startup)}", flush=True)
    finally:
        close_budget(run_dir)
    print(f"pipeline finished in {time.perf_counter() - started:.0f} s; results in {run_dir}")
    return [run_dir / "notebooks" / step.rendered for step in steps]


def end_run_processes(writer: RunDirWriter, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``, to every process this one started for the run and that is still
    there: the kernel of a stage run in-process, anything a stopped train notebook left."""
    import psutil

    left = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.environ().get(WRITER_ENV) == writer.identity:
                process.terminate()
                left.append(process)
        except psutil.Error:  # ended meanwhile, or not ours to read
            pass
    for process in psutil.wait_procs(left, timeout=grace_s)[1]:
        process.kill()


def end_partial(run_dir: Path, partial: dict[str, Any], seconds: float) -> None:
    """A run the time budget cut short ends cleanly (Kaggle keeps its output): its report says how far it got."""
    from utils.eval import report as report_text  # torch, through the metrics' registry: only here

    report = report_text.write_partial_report(run_dir, partial)
    reached = ", ".join(f"{name} {epochs}" for name, epochs in partial["models"].items())
    print(
        f"pipeline stopped after training, in {seconds:.0f} s: the {partial['reason']} ({reached}). Evaluate, "
        f"figures and colorize need finished models and did not run; {report} says how to continue."
    )


def run_one_step(step_json: str, run_dir: str) -> None:
    """A train process: one notebook, its outputs logged as they come (to the log the pipeline opened)."""
    import logging

    die_with_parent()  # and its kernel with it
    # the pipeline stops this process with SIGINT; one started in the background (`cmd &` in a script, nohup)
    # inherits SIGINT ignored, and would only be killed after the grace period
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # papermill logs each cell's outputs
    run_step(Step(**json.loads(step_json)), Path(run_dir), progress=False, log_output=True)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m utils.pipeline``."""
    profiles = "\n".join(f"  {name:<7}{use}" for name, use in PROFILE_USES.items())
    parser = argparse.ArgumentParser(
        prog="python -m utils.pipeline",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"profiles:\n{profiles}\n\nEvery parameter -p accepts, with its value in each profile: {PARAMETER_TABLE}",
    )
    parser.add_argument("--profile", default="demo", help=f"one of {', '.join(PROFILES)} (below)")
    parser.add_argument("--run-dir", default=None, help="default: runs/<profile>")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a profile parameter, e.g. -p epochs=5 (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (the per-epoch lines stay)")
    parser.add_argument(
        "--plan",
        action="store_true",
        help="prepare the data, print the plan (each model's data, the checks, the estimated time), and stop",
    )
    parser.add_argument("--one-step", default=None, help=argparse.SUPPRESS)  # a train process, started by the pipeline
    return parser


def work(args: argparse.Namespace) -> int:
    """``python -m utils.pipeline``'s work, once its arguments are parsed."""
    run_pipeline(args.profile, run_dir_of(args), parse_overrides(args.param), not args.no_progress, args.plan)
    return 0


def run_dir_of(args: argparse.Namespace) -> str:
    return args.run_dir or f"runs/{args.profile}"


def stopped(stop: Stopped) -> tuple[str, int]:
    """How a pipeline stopped by a signal ends: with 128 + the signal's number."""
    return (
        f"pipeline stopped by {stop}; every notebook it started has stopped. Run the same command again to go on: "
        "the prepared data and every saved epoch are kept",
        stop.exit_code,
    )


# a failed stage, another writer: `error: ...` and the exit code 1; a stop by a signal: in its own words
ENDINGS = {StageFailed: error_line(1), RunDirBusy: error_line(1), Stopped: stopped}
# a train process (--one-step): its failed notebook after the mark the pipeline looks for in its log
ONE_STEP_ENDINGS = {StageFailed: lambda err: (f"{FAILURE_MARK}{err}", 1)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.one_step:  # a train process: a failed notebook is told to the pipeline after its mark, anything else a bug
        return run_command(lambda: run_one_step(args.one_step, run_dir_of(args)), (), ONE_STEP_ENDINGS)
    return run_command(lambda: work(args), (ParameterError, UnreadableFileError), ENDINGS)


if __name__ == "__main__":
    sys.exit(main())
