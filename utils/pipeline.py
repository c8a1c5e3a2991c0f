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

The pipeline is its run directory's one writer (``utils/run_dir.py``): another pipeline or stage on it is refused at
once, naming this one, while the notebooks it starts write under its lock. Every process it starts dies with it,
even by SIGKILL (``utils/processes.py``); SIGTERM and SIGHUP stop it as Ctrl-C does, every notebook first, and it
exits with 128 + the signal's number. Run again, it goes on from what was written.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from utils.config import (
    RunParams,
    exit_code_meaning,
    model_dir,
    parse_overrides,
    record_stage_fields,
    resolve_params,
    trained_name,
    training_seed,
    training_seeds,
)
from utils.errors import ParameterError, UnreadableFileError, cli_error_line
from utils.processes import Stopped, child_environment, die_with_parent, stopping_on
from utils.run_dir import WRITER_ENV, RunDirBusy, RunDirWriter, hold_run_dir, locked_run_record

KIT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = KIT_ROOT / "notebooks"
POLL_S = 0.5  # how often a running train notebook's state is looked at
STOP_GRACE_S = 30.0  # after Ctrl-C: time for papermill to shut its kernel down before it is killed
FAILURE_MARK = "step failed: "  # what a train process prints before run_step's message
# ipykernel warns on every start that its local TCP sockets are unencrypted (seven lines per run); its
# log at ERROR drops that, while a failing cell still comes back as the cell's error, as before
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


@dataclass(frozen=True)
class Step:
    notebook: str  # file name in notebooks/
    rendered: str  # file name in <run_dir>/notebooks/
    parameters: dict[str, Any]
    stage: str  # its key in run.json's "stages": prepare, train_<model>_seed<S>, evaluate, figures, colorize

    @property
    def label(self) -> str:
        return self.rendered.removesuffix(".ipynb")

    @property
    def trained_name(self) -> str:
        """The model a train step makes: ``mixed_seed0``."""
        return self.stage.removeprefix("train_")


class StageFailed(RuntimeError):
    """A notebook cell raised; the message names notebook, cell and error."""


def plan_steps(profile: str, run_dir: str | Path, overrides: dict[str, Any]) -> list[Step]:
    """Validate everything, then list the notebooks to run: prepare, one train per model and training seed,
    evaluate, figures, colorize (sample images)."""
    params = resolve_params(profile, overrides)
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
        # the last model trained colorizes the sample images (mixed, in the paper's order)
        Step("05_colorize.ipynb", "05_colorize.ipynb", {**common, "model": params.models[-1]}, "colorize"),
    ]
    return steps


# --- one notebook ------------------------------------------------------------------------------


def run_step(step: Step, run_dir: Path, progress: bool = True, log_output: bool = False) -> Path:
    """Execute one notebook with papermill; raise StageFailed naming the failing cell."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    output = rendered_path(run_dir, step)
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / step.notebook),
            str(output),
            parameters=step.parameters,
            cwd=str(KIT_ROOT),
            progress_bar=progress,
            log_output=log_output,
            kernel_name="python3",
            # every cell has run and every output has arrived: a graceful shutdown would only wait
            # 1-3 s for the interpreter's teardown (docs/performance.md, "Start-up of each notebook")
            shutdown_kernel="immediate",
            extra_arguments=KERNEL_ARGUMENTS,  # to nbclient, which starts the kernel with them
        )
    except PapermillExecutionError as err:
        first_line = (err.source or "").strip().splitlines()[:1]
        raise StageFailed(
            f"notebook {step.notebook} ({step.rendered}) failed in cell {err.cell_index} "
            f"[{''.join(first_line)}]: {err.ename}: {err.evalue}\n"
            f"the rendered notebook, with the traceback, is at {output}"
        ) from None
    except DeadKernelError:  # nbclient notices within a second or two; the cells after it did not run
        raise StageFailed(
            f"notebook {step.notebook} ({step.rendered}): its kernel died while running it (killed by a signal: "
            f"the out-of-memory killer, or a crash in native code); the rendered notebook is at {output}"
        ) from None
    return output


def rendered_path(run_dir: Path, step: Step) -> Path:
    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / step.rendered


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --- start-up cost -------------------------------------------------------------------------------


def notebook_timing(rendered: Path, launched: dt.datetime) -> dict[str, Any]:
    """What a notebook spent before its first useful work, and after its last cell, from papermill's timestamps.

    ``startup``: ``launch_s`` from the pipeline's call to papermill's notebook start (a new process,
    for the train notebooks), ``kernel_s`` to the kernel's first cell, ``imports_s`` through the
    imports and parameters cells, ``total_s`` all of it (None when the notebook stopped before its
    first useful cell). ``shutdown_s``: from the last cell's end to the kernel's shutdown.
    """
    nb = json.loads(rendered.read_text())
    cells = nb["cells"]
    times = [cell.get("metadata", {}).get("papermill", {}) for cell in cells]
    tags = [cell.get("metadata", {}).get("tags", []) for cell in cells]
    first_work = 1 + max(i for i, t in enumerate(tags) if "parameters" in t or "injected-parameters" in t)
    stamps = [nb["metadata"]["papermill"].get("start_time"), times[0].get("start_time")]
    stamps += [times[first_work].get("start_time") if first_work < len(cells) else None]
    stamps += [times[-1].get("end_time"), nb["metadata"]["papermill"].get("end_time")]
    started, kernel_ready, working, last_cell_done, ended = (s and dt.datetime.fromisoformat(s) for s in stamps)
    timing: dict[str, Any] = {"startup": None, "shutdown_s": None}
    if started and kernel_ready and working:
        timing["startup"] = {
            "launch_s": round((started - launched).total_seconds(), 2),
            "kernel_s": round((kernel_ready - started).total_seconds(), 2),
            "imports_s": round((working - kernel_ready).total_seconds(), 2),
            "total_s": round((working - launched).total_seconds(), 2),
        }
    if last_cell_done and ended:
        timing["shutdown_s"] = round((ended - last_cell_done).total_seconds(), 2)
    return timing


def record_timing(run_dir: Path, step: Step, rendered: Path, launched: dt.datetime) -> dict[str, float] | None:
    """``stages.<stage>``: ``startup``, ``shutdown_s`` and ``seconds`` (the notebook's wall time, launch
    to end) in run.json, after the notebook has recorded its stage; returns the start-up."""
    timing = notebook_timing(rendered, launched)
    record_stage_fields(run_dir, step.stage, **timing, seconds=round((now() - launched).total_seconds(), 1))
    return timing["startup"]


def describe_startup(startup: dict[str, float] | None) -> str:
    if not startup:
        return ""
    return (f" (start-up {startup['total_s']:.1f} s: launch {startup['launch_s']:.1f}, "
            f"kernel {startup['kernel_s']:.1f}, imports {startup['imports_s']:.1f})")  # fmt: skip


# --- the train notebooks, several at once --------------------------------------------------------


@dataclass(frozen=True)
class TrainLaunch:
    """One train notebook and its share of the machine."""

    step: Step
    gpus: tuple[str, ...]  # its CUDA_VISIBLE_DEVICES entries; () on the CPU
    threads: int  # the CPU threads of its kernel (OMP_NUM_THREADS)

    @property
    def model(self) -> str:
        return self.step.parameters["domain"]

    @property
    def name(self) -> str:
        return self.step.trained_name

    def environment(self) -> dict[str, str]:
        env = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1"}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env

    def where(self) -> str:
        if not self.gpus:
            return f"CPU, {self.threads} thread{'s' if self.threads > 1 else ''}"
        if len(self.gpus) == 1:
            return f"GPU {self.gpus[0]}"
        return f"GPUs {','.join(self.gpus)} (DDP)"


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def visible_gpus(params: RunParams, run_dir: Path) -> list[str]:
    """The CUDA_VISIBLE_DEVICES entries training may use: the GPUs the prepare notebook's kernel saw, as
    run.json records them (so this process need not import torch, seconds on a small machine); none
    when ``device`` is cpu."""
    if params.device == "cpu":
        return []
    record = run_dir / "run.json"
    if not record.is_file():
        raise ParameterError(f"parameter 'run_dir' = '{run_dir}': {record} is missing; run the prepare stage first")
    count = len(json.loads(record.read_text())["devices"]["gpus"])
    listed = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def train_concurrency(params: RunParams, n_gpus: int, n_models: int) -> int:
    """Train notebooks at once: ``params.train_concurrency``, or auto: one per GPU, and on the CPU every
    model at once, sharing the cores (on 2 cores, three single-threaded trainings train as fast as one
    two-threaded one, overlap their start-ups, and do not collapse when other work loads the machine:
    docs/performance.md, "Several models at once"). Never more than there are models."""
    wanted = params.train_concurrency or n_gpus or n_models
    return max(1, min(wanted, n_models))


def train_rounds(
    steps: list[Step], concurrency: int, gpus: list[str], cores: int, gpus_per_model: int = 0
) -> list[list[TrainLaunch]]:
    """The train notebooks in rounds of ``concurrency``; each round shares the machine evenly.

    GPUs: a round of n notebooks on k GPUs gives each k // n of them (DDP when that is several;
    ``gpus_per_model``, the ``gpus`` parameter, caps it), or, with more notebooks than GPUs, one GPU
    each in turn. CPU threads: cores // n each (at least 1). The rounds run one after the other, so the
    last, smaller round gets the whole machine: 3 models on 2 GPUs train 2 at once on one GPU each,
    then the third on both.
    """
    rounds = []
    for start in range(0, len(steps), concurrency):
        members = steps[start : start + concurrency]
        n = len(members)
        if not gpus:
            shares: list[tuple[str, ...]] = [()] * n
        elif n <= len(gpus):
            per_model = len(gpus) // n
            per_model = min(per_model, gpus_per_model) if gpus_per_model else per_model
            shares = [tuple(gpus[i * per_model : (i + 1) * per_model]) for i in range(n)]
        else:
            shares = [(gpus[i % len(gpus)],) for i in range(n)]
        threads = max(1, cores // n)
        rounds.append([TrainLaunch(step, share, threads) for step, share in zip(members, shares)])
    return rounds


@dataclass(frozen=True)
class ModelProgress:
    """How far a train step's model has got: its history.csv (one row per finished epoch) and the epochs planned."""

    history_path: Path
    epochs_planned: int

    @classmethod
    def of(cls, step: Step, run_dir: Path, params: RunParams) -> ModelProgress:
        seed = training_seed(params, step.parameters["seed_index"])
        history_path = model_dir(run_dir, step.parameters["domain"], seed) / "history.csv"
        return cls(history_path, params.pretrain_epochs + params.epochs)

    def epochs(self) -> list[dict[str, str]]:
        if not self.history_path.is_file():
            return []
        with self.history_path.open(newline="") as f:  # written atomically by the trainer: never half a file
            return list(csv.DictReader(f))

    def epochs_left(self) -> int:
        return max(0, self.epochs_planned - len(self.epochs()))


def ended_how(exit_code: int) -> str:
    """``was killed by signal 9 (SIGKILL)`` for a negative exit code, else ``exited with code 1``."""
    meaning = exit_code_meaning(exit_code)
    return f"was {meaning}" if exit_code < 0 else meaning


class TrainProcess:
    """One train notebook in its own papermill process, logging to ``<run_dir>/logs/train_<model>.log``."""

    def __init__(self, launch: TrainLaunch, run_dir: Path, label: str, params: RunParams) -> None:
        self.launch, self.run_dir, self.label = launch, run_dir, label
        self.output = rendered_path(run_dir, launch.step)
        self.log_path = run_dir / "logs" / f"train_{launch.name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.progress = ModelProgress.of(launch.step, run_dir, params)
        self.epochs_seen = self.progress.epochs()
        self.launched = now()
        self.started = time.perf_counter()
        self.tree: list[Any] = []  # psutil.Process: the notebook's processes, listed when it is interrupted
        self.log: IO[bytes] = self.log_path.open("wb")
        step = json.dumps(dataclasses.asdict(launch.step), default=str)
        command = [sys.executable, "-m", "utils.pipeline", "--one-step", step, "--run-dir", str(run_dir)]
        # its own session: Ctrl-C reaches the pipeline alone, which then stops every notebook the same way
        self.process = subprocess.Popen(
            command,
            cwd=KIT_ROOT,
            env={**child_environment(), **launch.environment()},  # it dies with the pipeline, and writes under its lock
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def new_epochs(self) -> list[dict[str, str]]:
        """history.csv rows written since the last look."""
        rows = self.progress.epochs()
        fresh = rows[len(self.epochs_seen) :] if len(rows) > len(self.epochs_seen) else []
        self.epochs_seen = rows
        return fresh

    def failure(self) -> str:
        """Why the process failed, naming its model: run_step's message from the log, else the log's end."""
        log = self.log_path.read_text(errors="replace")
        if FAILURE_MARK in log:
            why = log.rsplit(FAILURE_MARK, 1)[1].strip()
        else:  # stopped before or outside the notebook's cells: killed, say (its kernel then exits by itself)
            tail = "\n    ".join(log.strip().splitlines()[-5:])
            why = f"the process running notebook {self.launch.step.notebook} {ended_how(self.process.returncode)}:\n    {tail}"
        return f"model {self.launch.name}: {why}\nits log: {self.log_path}"

    def interrupt(self) -> None:
        """Ctrl-C for papermill, which then shuts its kernel down (and what the kernel started)."""
        import psutil  # an ipykernel requirement

        try:
            self.tree = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            self.tree = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def wait_stopped(self) -> None:
        """After interrupt(): wait for papermill's clean-up, then kill whatever is left of the notebook."""
        import psutil

        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for leftover in psutil.wait_procs(self.tree, timeout=5)[1]:
            leftover.kill()
        self.log.close()


def mean_epoch_seconds(rows: list[dict[str, str]]) -> float | None:
    return sum(float(row["seconds"]) for row in rows) / len(rows) if rows else None


def seconds_left(seen: list[list[dict[str, str]]], planned: list[int], later_epochs: int) -> tuple[list[float], float]:
    """Time left, in seconds, for each model of the running round (its history rows ``seen``, its ``planned``
    epochs) and for the whole training.

    A model: its epochs left x its mean epoch time so far (before its first epoch, the round's). The
    training: the round's slowest model, plus ``later_epochs`` (the later rounds' slowest models' epochs
    left, summed) at the round's mean epoch time. That assumes a later round trains as fast as this one:
    the same data, the same share of the machine (a smaller last round gets more of it: the estimate errs long).
    """
    typical = mean_epoch_seconds([row for rows in seen for row in rows]) or 0.0
    models = [max(0, n - len(rows)) * (mean_epoch_seconds(rows) or typical) for rows, n in zip(seen, planned)]
    return models, max(models) + later_epochs * typical


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


def epoch_line(label: str, row: dict[str, str], planned: int, model_left_s: float, run_left_s: float) -> str:
    """``[2/7] 02_train_cartoon_seed0 epoch 1/2 done in 82 s: D 0.69, G_GAN 0.72, G_L1 11.3, val CIEDE2000
    22.88, 5.2 images/s; model ETA 1.4 min, run ETA 1.5 min`` (a pretraining epoch has G_L1 alone)."""
    losses = ["loss_G_L1"] if row["phase"] == "pretrain" else ["loss_D", "loss_G_GAN", "loss_G_L1"]
    figures = [f"{name.removeprefix('loss_')} {float(row[name]):.3g}" for name in losses]
    figures += [f"val CIEDE2000 {float(row['val_ciede2000']):.2f}", f"{float(row['images_per_s']):.1f} images/s"]
    return (f"{label} epoch {row['epoch']}/{planned} done in {float(row['seconds']):.0f} s: {', '.join(figures)}; "
            f"model ETA {duration(model_left_s)}, run ETA {duration(run_left_s)}")  # fmt: skip


def report_new_epochs(jobs: list[TrainProcess], later_epochs: int) -> None:
    """One line per epoch a model of the running round has finished, from its history.csv, with the time left
    (``later_epochs``: see :func:`seconds_left`)."""
    fresh = [(i, row) for i, job in enumerate(jobs) for row in job.new_epochs()]
    if not fresh:
        return
    planned = [job.progress.epochs_planned for job in jobs]
    models_left, run_left = seconds_left([job.epochs_seen for job in jobs], planned, later_epochs)
    for i, row in fresh:
        print(epoch_line(jobs[i].label, row, planned[i], models_left[i], run_left), flush=True)


def run_train_round(
    round_: list[TrainLaunch], run_dir: Path, labels: dict[str, str], params: RunParams, later_epochs: int = 0
) -> list[str]:
    """Start every notebook of the round and follow them to the end; returns the failures' messages.
    ``later_epochs``: the epochs the later rounds will take (for the time left)."""
    jobs: list[TrainProcess] = []
    failures = []
    try:
        for launch in round_:
            jobs.append(TrainProcess(launch, run_dir, labels[launch.step.rendered], params))
            print(f"{jobs[-1].label} started on {launch.where()}; log {jobs[-1].log_path}", flush=True)
        running = list(jobs)
        while running:
            time.sleep(POLL_S)
            ended = [job for job in running if job.process.poll() is not None]
            report_new_epochs(jobs, later_epochs)  # after the poll: an ended notebook's last epoch is reported
            for job in ended:
                running.remove(job)
                job.log.close()
                seconds = time.perf_counter() - job.started
                if job.process.returncode:
                    failures.append(job.failure())
                    print(f"{job.label} FAILED after {seconds:.0f} s", flush=True)
                else:
                    startup = record_timing(run_dir, job.launch.step, job.output, job.launched)
                    print(f"{job.label} done in {seconds:.0f} s{describe_startup(startup)}", flush=True)
    except BaseException:  # Ctrl-C, or any error here: no notebook outlives the pipeline
        for job in jobs:
            job.interrupt()
        for job in jobs:
            job.wait_stopped()
        raise
    return failures


def run_train_steps(steps: list[Step], run_dir: Path, params: RunParams, labels: dict[str, str] | None = None) -> None:
    """Every train notebook, ``train_concurrency`` at a time; once all have run, raises StageFailed
    naming every model that failed. ``labels``: how the progress lines name each notebook."""
    labels = labels or {step.rendered: step.label for step in steps}
    gpus = visible_gpus(params, run_dir)
    concurrency = train_concurrency(params, len(gpus), len(steps))
    print(f"training {len(steps)} model(s), {concurrency} at a time", flush=True)
    failures = []
    rounds = train_rounds(steps, concurrency, gpus, cpu_cores(), params.gpus)
    with hold_run_dir(run_dir, "the train notebooks"):  # the pipeline's hold, or this call's: the notebooks join it
        for index, round_ in enumerate(rounds):
            later = [[ModelProgress.of(launch.step, run_dir, params).epochs_left() for launch in r]
                     for r in rounds[index + 1 :]]  # fmt: skip
            failures += run_train_round(round_, run_dir, labels, params, sum(max(epochs) for epochs in later))
    if failures:
        raise StageFailed(
            f"{len(failures)} of {len(steps)} models failed to train; the stages after training did not run\n"
            + "\n".join(failures)
        )


# --- the time budget -------------------------------------------------------------------------------


def record_budget(run_dir: Path, hours: float) -> None:
    """run.json's ``budget``, where each train process reads the deadline (none without a time limit)."""
    started = now()
    with locked_run_record(run_dir) as record:
        record.pop("budget", None)
        if hours:
            deadline = started + dt.timedelta(hours=hours)
            record["budget"] = {"time_limit_hours": hours, "started": started.isoformat(timespec="seconds"),
                                "deadline": deadline.isoformat(timespec="seconds")}  # fmt: skip


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


def how_to_continue(profile: str, run_dir: Path, overrides: dict[str, Any]) -> str:
    command = ["python", "-m", "utils.pipeline", "--profile", profile, "--run-dir", str(run_dir)]
    command += [arg for name, value in overrides.items() for arg in ("-p", f"{name}={value}")]
    return (f"locally, run the same command on the same run directory: `{shlex.join(command)}` (each model "
            "resumes from its checkpoint_last.pt); on Kaggle: `python -m utils.kaggle push --continue`")  # fmt: skip


# --- the whole pipeline --------------------------------------------------------------------------


def run_pipeline(
    profile: str,
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Run every stage, as the run directory's one writer; returns the rendered notebooks' paths.

    Raises RunDirBusy when another process writes ``run_dir``. SIGTERM and SIGHUP stop it as Ctrl-C does, raising
    :class:`~utils.processes.Stopped`: every notebook it started stops first."""
    overrides = dict(overrides or {})
    steps = plan_steps(profile, run_dir, overrides)  # raises before any work
    with hold_run_dir(run_dir, "the pipeline") as writer, stopping_on(signal.SIGTERM, signal.SIGHUP):
        try:
            return run_steps(profile, writer.run_dir, overrides, steps, progress)
        except BaseException:  # Ctrl-C, a signal, a failure: no process of the run outlives it
            end_run_processes(writer)
            raise


def run_steps(profile: str, run_dir: Path, overrides: dict[str, Any], steps: list[Step], progress: bool) -> list[Path]:
    params = resolve_params(profile, overrides)
    labels = {step.rendered: f"[{i}/{len(steps)}] {step.label}" for i, step in enumerate(steps, 1)}
    trains = [step for step in steps if step.notebook == "02_train.ipynb"]
    started = time.perf_counter()
    record_budget(run_dir, params.time_limit_hours)
    try:
        for step in steps:
            if step is trains[0]:
                run_train_steps(trains, run_dir, params, labels)
                partial = record_partial(run_dir, params, trains, how_to_continue(profile, run_dir, overrides))
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
    from utils import report as report_text  # torch, through the data module: only here

    report = report_text.write_partial_report(run_dir, partial)
    reached = ", ".join(f"{name} {epochs}" for name, epochs in partial["models"].items())
    print(f"pipeline stopped after training, in {seconds:.0f} s: the {partial['reason']} ({reached}). Evaluate, "
          f"figures and colorize need finished models and did not run; {report} says how to continue.")  # fmt: skip


def run_one_step(step_json: str, run_dir: str) -> int:
    """A train process: one notebook, its outputs logged as they come (to the log the pipeline opened)."""
    import logging

    die_with_parent()  # and its kernel with it
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # papermill logs each cell's outputs
    try:
        run_step(Step(**json.loads(step_json)), Path(run_dir), progress=False, log_output=True)
    except StageFailed as err:
        print(f"{FAILURE_MARK}{err}", file=sys.stderr, flush=True)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m utils.pipeline``."""
    parser = argparse.ArgumentParser(prog="python -m utils.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", help="demo or paper")
    parser.add_argument("--run-dir", default=None, help="default: runs/<profile>")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a profile parameter, e.g. -p epochs=5 (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--one-step", default=None, help=argparse.SUPPRESS)  # a train process, started by the pipeline
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_dir = args.run_dir or f"runs/{args.profile}"
    if args.one_step:
        return run_one_step(args.one_step, run_dir)
    try:
        run_pipeline(args.profile, run_dir, parse_overrides(args.param), progress=not args.no_progress)
    except (StageFailed, RunDirBusy) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Stopped as stop:
        print(f"pipeline stopped by {stop}; every notebook it started has stopped. Run the same command again to go "
              "on: the prepared data and every saved epoch are kept", file=sys.stderr)  # fmt: skip
        return stop.exit_code
    except Exception as err:
        line = cli_error_line(err, (ParameterError, UnreadableFileError))
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
