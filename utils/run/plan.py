"""The plan of a run, made after prepare and before any model trains: what each model trains on, the checks that
need the prepared data, and the time the rest of the run will take.

- ``batch_size`` against every model's training images (each domain's model, ``mixed``, each ``mix<f>``): a
  refusal names the model and the largest batch that works, before any checkpoint is written.
- The test groups against the fewest the verdicts need: too few is a warning that says what would give more.
- The time here, from a few training steps and predictions timed in a process of their own with the share of
  the machine a train notebook gets (``utils/train/step_timing.py``), and the training time on a Kaggle T4 x2, from the
  committed GPU measurement (``benchmarks/measured/bench_train_cuda.json``).

The device is checked against the profile earlier, before any data work (``environment.check_profile_device``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from utils.core.config import KIT_ROOT, pretrained_asked
from utils.core.errors import read_json_file
from utils.core.parameters import PRETRAINED_IF_CACHED, RunParams
from utils.core.processes import child_environment
from utils.core.run_dir import read_run_record
from utils.core.statistics import GRAY, compared_pairs, minimum_groups
from utils.data.shards import check_batch_size, load_manifest, model_rows, train_shard_sizes
from utils.nets.environment import cpu_cores
from utils.run.notebook_step import Step
from utils.run.scheduler import ModelProgress, TrainLaunch, duration, planned_rounds, train_concurrency, train_rounds
from utils.train.launch import param_arguments
from utils.train.step_timing import StepTimes

GPU_MEASUREMENT = KIT_ROOT / "benchmarks" / "measured" / "bench_train_cuda.json"
T4_PROJECTION = "projection, Kaggle T4 x2 (measured speed x peak ratio), paper profile"
T4_RATE = re.compile(r"([\d.]+) images/s per T4")
TIMING_LIMIT_S = 120.0  # the timing child's longest: building the networks and a few steps take seconds
KAGGLE_T4_GPUS = ("0", "1")
KAGGLE_CPU_CORES = 4


@dataclass(frozen=True)
class ModelPlan:
    """One train notebook's model: its training images and their groups, and the work left."""

    name: str  # the trained name: mixed_seed0
    model: str
    images: int
    groups: int
    val_images: int
    steps_per_epoch: int
    epochs_left: int
    epochs: int


@dataclass(frozen=True)
class TestSplit:
    domain: str
    images: int
    groups: int


@dataclass(frozen=True)
class RunPlan:
    models: list[ModelPlan]
    tests: list[TestSplit]
    warnings: list[str]
    here_s: float | None  # None: not estimated, here_how says why
    here_how: str
    t4_s: float | None
    t4_how: str


# --- what each model trains on, and the checks ------------------------------------------------------


def plan_models(run_dir: Path, params: RunParams, trains: list[Step], manifest: pd.DataFrame) -> list[ModelPlan]:
    """Each train step's model: the rows it trains on (those training uses), their groups, the epochs left."""
    sizes = train_shard_sizes(manifest, params)
    train_rows = manifest[manifest["split"] == "train"].set_index(["domain", "index"])["group"]
    plans = []
    for step in trains:
        model = step.parameters["domain"]
        rows = model_rows(sizes, model, params)
        groups = {(d, train_rows[(d, int(i))]) for d, indices in rows.train.items() for i in indices}
        progress = ModelProgress.of(step, run_dir, params)
        plans.append(
            ModelPlan(
                step.trained_name,
                model,
                rows.n_train,
                len(groups),
                sum(len(v) for v in rows.val.values()),
                rows.n_train // params.batch_size,
                progress.epochs_left(),
                progress.epochs_planned,
            )
        )
    return plans


def test_splits(manifest: pd.DataFrame, params: RunParams) -> list[TestSplit]:
    test = manifest[manifest["split"] == "test"]
    return [
        TestSplit(d, int((test["domain"] == d).sum()), int(test.loc[test["domain"] == d, "group"].nunique()))
        for d in params.domain_names
    ]


def groups_the_verdicts_need(params: RunParams) -> int:
    """The fewest test groups with which the largest family of paired comparisons (each model against gray and
    the best, and the paper's pairs) can reach p < 0.05 after Holm."""
    candidates = [*params.models, GRAY]
    family = max(len(compared_pairs(candidates, {m: float(m != best) for m in candidates})) for best in candidates)
    return minimum_groups(max(1, family))


def test_group_warnings(manifest: pd.DataFrame, params: RunParams) -> list[str]:
    """A warning for each domain whose test split has fewer groups than the verdicts need, saying what gives more:
    ``test_per_domain`` when the domain has the groups to spare, else more folders."""
    needed, warnings = groups_the_verdicts_need(params), []
    for split in test_splits(manifest, params):
        if split.groups >= needed:
            continue
        in_all = int(manifest.loc[manifest["domain"] == split.domain, "group"].nunique())
        if params.source == "demo":
            remedy = f"the demo's generated {split.domain} images come in {in_all} groups"
        elif in_all >= 2 * needed:
            remedy = f"raise test_per_domain (now {params.test_per_domain}) to give the test split more of its {in_all} groups"
        else:
            remedy = (
                f"add more folders to {split.domain!r} (it has {in_all} groups in all: each sub-folder is one "
                "film, show or photograph, kept whole in one split)"
            )
        warnings.append(
            f"warning: domain {split.domain!r} has {split.groups} test group"
            f"{'s' if split.groups != 1 else ''}; the verdicts need at least {needed} to tell models "
            f"apart, so they will read 'inconclusive': {remedy}"
        )
    return warnings


# --- the time -----------------------------------------------------------------------------------------


def time_steps(params: RunParams, launch: TrainLaunch) -> tuple[StepTimes | None, str]:
    """``utils.train.step_timing`` in a process of its own, with ``launch``'s threads and its first GPU: (the times, "") or
    (None, why not). Eager (a compiled training only gets faster), and never longer than ``TIMING_LIMIT_S``: the
    estimate is advice, and its failure stops nothing."""
    timed = dataclasses.replace(params, compile=False, compile_metrics=False)
    command = [sys.executable, "-m", "utils.train.step_timing", "--profile", "demo", *param_arguments(timed)]
    env = {**child_environment(), **dataclasses.replace(launch, gpus=launch.gpus[:1]).environment()}
    try:
        done = subprocess.run(command, cwd=KIT_ROOT, env=env, capture_output=True, text=True, timeout=TIMING_LIMIT_S)
    except subprocess.TimeoutExpired:
        return None, f"timing a few training steps took over {TIMING_LIMIT_S:.0f} s"
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"timing a few training steps failed ({last[:200]})"
    return StepTimes(**json.loads(done.stdout.strip().splitlines()[-1])), ""


def model_seconds(plan: ModelPlan, times: StepTimes) -> float:
    """One model's training left: its steps and, every epoch, its validation images."""
    return plan.epochs_left * (plan.steps_per_epoch * times.train_step_s + plan.val_images * times.predict_image_s)


def estimate_here(
    plans: list[ModelPlan],
    rounds: list[list[TrainLaunch]],
    times: StepTimes,
    tests: list[TestSplit],
    startup_s: float,
    cores: int,
) -> float:
    """The rest of the run on this machine: each round of train notebooks (on a CPU, the notebooks still training
    share the cores when their threads outnumber them; with several GPUs, a model's steps split across them), then
    evaluate (every model and the gray baseline on every test image), and the start-up of every notebook left
    (``startup_s`` each, as the prepare notebook's)."""
    by_name = {plan.name: plan for plan in plans}
    total = 0.0
    for round_ in rounds:
        training = [launch for launch in round_ if by_name[launch.name].epochs_left]
        shared = max(1.0, sum(launch.threads for launch in training) / cores) if not round_[0].gpus else 1.0
        work = max(
            (model_seconds(by_name[launch.name], times) / max(1, len(launch.gpus)) for launch in training), default=0.0
        )
        total += work * shared + startup_s * max(1.0, len(round_) / cores)
    test_images = sum(split.images for split in tests)
    scored = (len(plans) + 1) * test_images * times.predict_image_s
    return total + scored + 3 * startup_s  # evaluate, figures, colorize


def t4_images_per_s(image_size: int, measured: Path = GPU_MEASUREMENT) -> tuple[float, str] | None:
    """Training images per second on one Kaggle T4 at ``image_size``, from the committed GPU measurement's T4
    projection (its card's speed scaled by the two cards' peaks, at the measurement's image size), scaled by
    pixels; None without one."""
    if not measured.is_file():
        return None
    record = read_json_file(measured, "measure it again (docs/performance.md, Training speed)")
    figure = next((f for f in record.get("figures", []) if f.get("name") == T4_PROJECTION), None)
    found = T4_RATE.search(figure.get("note") or "") if figure else None
    size = str(record.get("context", {}).get("size", ""))
    if not found or not size.isdigit():
        return None
    rate = float(found.group(1)) * (int(size) / image_size) ** 2
    gpus = ", ".join(record.get("machine", {}).get("gpus", [])) or "a GPU"
    return rate, f"the {gpus} measurement of {record.get('date', '')[:10]}, scaled by the cards' peaks and by pixels"


def estimate_t4(plans: list[ModelPlan], trains: list[Step], params: RunParams) -> tuple[float, str] | None:
    """Training on Kaggle's two T4s, in the rounds the pipeline runs there; None without a committed GPU
    measurement."""
    found = t4_images_per_s(params.image_size)
    if found is None:
        return None
    rate, source = found
    by_name = {plan.name: plan for plan in plans}
    concurrency = train_concurrency(params, len(KAGGLE_T4_GPUS), len(trains))
    rounds = train_rounds(trains, concurrency, list(KAGGLE_T4_GPUS), KAGGLE_CPU_CORES, params.gpus)
    seconds = sum(
        max(
            by_name[launch.name].epochs_left * by_name[launch.name].images / (rate * len(launch.gpus))
            for launch in round_
        )
        for round_ in rounds
    )
    return seconds, f"{rate:.0f} images/s per T4: {source}"


# --- the plan -----------------------------------------------------------------------------------------


def make_plan(run_dir: Path, params: RunParams, trains: list[Step]) -> RunPlan:
    """Check the prepared data against the run (ParameterError for a batch that some model cannot fill or split
    across its GPU processes), and estimate the time of the rest of the run."""
    manifest = load_manifest(run_dir)
    plans = plan_models(run_dir, params, trains, manifest)
    rounds = planned_rounds(trains, run_dir, params)
    model_of = {plan.name: plan.model for plan in plans}
    worlds = {model_of[launch.name]: max(1, len(launch.gpus)) for round_ in rounds for launch in round_}
    check_batch_size(params, {plan.model: plan.images for plan in plans}, worlds)
    tests = test_splits(manifest, params)
    t4 = estimate_t4(plans, trains, params)
    t4_s, t4_how = t4 if t4 else (None, "no committed GPU measurement in this copy of the kit")
    warnings = test_group_warnings(manifest, params)
    if not any(plan.epochs_left for plan in plans):
        return RunPlan(plans, tests, warnings, None, "every model has all its epochs", t4_s, t4_how)
    times, why_not = time_steps(params, rounds[0][0])
    if times is None:
        return RunPlan(plans, tests, warnings, None, why_not, t4_s, t4_how)
    here = estimate_here(plans, rounds, times, tests, prepare_startup_s(run_dir), cpu_cores())
    gpus = rounds[0][0].gpus
    where = f"{len(rounds[0])} model{'s' if len(rounds[0]) > 1 else ''} at a time, " + (
        f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} each"
        if gpus
        else f"{times.threads} CPU thread{'s' if times.threads > 1 else ''} each"
    )
    here_how = f"{where}: {times.train_step_s:.2f} s per training step, timed"
    return RunPlan(plans, tests, warnings, here, here_how, t4_s, t4_how)


def prepare_startup_s(run_dir: Path) -> float:
    """The prepare notebook's start-up in this run (run.json), which each later notebook pays again."""
    record = read_run_record(run_dir)
    startup = record.get("stages", {}).get("prepare", {}).get("startup") or {}
    return float(startup.get("total_s") or 0.0)


def plan_record(plan: RunPlan) -> dict:
    """What run.json keeps of the plan: the estimates, and each model's data."""
    return {
        "estimated_s": None if plan.here_s is None else round(plan.here_s, 1),
        "estimated_how": plan.here_how,
        "kaggle_t4x2_training_s": None if plan.t4_s is None else round(plan.t4_s, 1),
        "models": {
            m.name: {
                "images": m.images,
                "groups": m.groups,
                "steps_per_epoch": m.steps_per_epoch,
                "epochs_left": m.epochs_left,
            }
            for m in plan.models
        },
        "test": {t.domain: {"images": t.images, "groups": t.groups} for t in plan.tests},
        "warnings": plan.warnings,
    }


def describe_encoder(profile: str, overrides: dict, params: RunParams) -> str:
    """Which weights the encoder starts from, and why (``pretrained=cached`` decides by what this machine has)."""
    if params.pretrained:
        cached = (
            " (cached here: pretrained=cached)" if pretrained_asked(profile, overrides) == PRETRAINED_IF_CACHED else ""
        )
        return f"ImageNet weights{cached}"
    if pretrained_asked(profile, overrides) == PRETRAINED_IF_CACHED:
        return (
            "untrained: the ImageNet weights were not cached here when this run directory was first prepared "
            "(pretrained=cached); in a new run directory, -p pretrained=true fetches them once, over the network"
        )
    return "untrained (pretrained=false)"


def format_plan(plan: RunPlan, encoder: str) -> str:
    lines = [f"plan: {len(plan.models)} model{'s' if len(plan.models) > 1 else ''}; encoder: {encoder}"]
    width = max(len(m.name) for m in plan.models)
    lines.append(f"  {'model'.ljust(width)}  images  groups  steps/epoch  epochs left")
    lines += [
        f"  {m.name.ljust(width)}  {m.images:>6}  {m.groups:>6}  {m.steps_per_epoch:>11}  "
        f"{m.epochs_left:>4} of {m.epochs}"
        for m in plan.models
    ]
    lines.append("  test: " + "; ".join(f"{t.domain} {t.images} images in {t.groups} groups" for t in plan.tests))
    lines += [f"  {warning}" for warning in plan.warnings]
    if plan.here_s is not None:
        lines.append(f"  estimated time from here: {duration(plan.here_s)} ({plan.here_how})")
    else:
        lines.append(f"  estimated time from here: not estimated ({plan.here_how})")
    if plan.t4_s is not None:
        lines.append(f"  on a Kaggle T4 x2: {duration(plan.t4_s)} of training, at {plan.t4_how}")
    else:
        lines.append(f"  on a Kaggle T4 x2: not estimated ({plan.t4_how})")
    return "\n".join(lines)
