"""The train notebooks, several at once: each in its own papermill process with its share of the machine (its GPUs
through ``CUDA_VISIBLE_DEVICES``, or on the CPU its share of the cores through ``OMP_NUM_THREADS``), logging to
``<run_dir>/logs/train_<model>_seed<S>.log``, followed to the end with one line per finished epoch."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from utils.core.config import KIT_ROOT, model_dir, training_seed
from utils.core.errors import ParameterError
from utils.core.parameters import RunParams
from utils.core.processes import child_environment, exit_code_meaning
from utils.core.run_dir import RUN_RECORD, hold_run_dir, read_run_record
from utils.nets.environment import cpu_cores
from utils.run.notebook_step import (
    FAILURE_MARK,
    StageFailed,
    Step,
    describe_startup,
    now,
    record_timing,
    rendered_path,
)

POLL_S = 0.5  # how often a running train notebook's state is looked at
STOP_GRACE_S = 30.0  # after Ctrl-C: time for papermill to shut its kernel down before it is killed


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


def visible_gpus(params: RunParams, run_dir: Path) -> list[str]:
    """The CUDA_VISIBLE_DEVICES entries training may use: the GPUs the prepare notebook's kernel saw, as
    run.json records them (so this process need not import torch, seconds on a small machine); none
    when ``device`` is cpu."""
    if params.device == "cpu":
        return []
    record = run_dir / RUN_RECORD
    if not record.is_file():
        raise ParameterError(f"parameter 'run_dir' = '{run_dir}': {record} is missing; run the prepare stage first")
    count = len(read_run_record(run_dir)["devices"]["gpus"])
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
    return (
        f"{label} epoch {row['epoch']}/{planned} done in {float(row['seconds']):.0f} s: {', '.join(figures)}; "
        f"model ETA {duration(model_left_s)}, run ETA {duration(run_left_s)}"
    )


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


def planned_rounds(steps: list[Step], run_dir: Path, params: RunParams) -> list[list[TrainLaunch]]:
    """The rounds :func:`run_train_steps` will run, on the GPUs the prepare notebook saw (or the CPU)."""
    gpus = visible_gpus(params, run_dir)
    return train_rounds(steps, train_concurrency(params, len(gpus), len(steps)), gpus, cpu_cores(), params.gpus)


def run_train_steps(steps: list[Step], run_dir: Path, params: RunParams, labels: dict[str, str] | None = None) -> None:
    """Every train notebook, ``train_concurrency`` at a time; once all have run, raises StageFailed
    naming every model that failed. ``labels``: how the progress lines name each notebook."""
    labels = labels or {step.rendered: step.label for step in steps}
    rounds = planned_rounds(steps, run_dir, params)
    print(f"training {len(steps)} model(s), {len(rounds[0])} at a time", flush=True)
    failures = []
    with hold_run_dir(run_dir, "the train notebooks"):  # the pipeline's hold, or this call's: the notebooks join it
        for index, round_ in enumerate(rounds):
            later = [
                [ModelProgress.of(launch.step, run_dir, params).epochs_left() for launch in r]
                for r in rounds[index + 1 :]
            ]
            failures += run_train_round(round_, run_dir, labels, params, sum(max(epochs) for epochs in later))
    if failures:
        raise StageFailed(
            f"{len(failures)} of {len(steps)} models failed to train; the stages after training did not run\n"
            + "\n".join(failures)
        )
