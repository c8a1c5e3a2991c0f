"""The GAN training loop: pix2pix recipe, mixed precision, DDP, resumable checkpoints. Also a CLI.

The loop reads top to bottom: :func:`train` sets up the processes, :func:`train_model` the data, validation and
networks (:class:`ModelTraining`), resumes, then runs the epochs (:func:`train_epoch`), each ended by
:func:`end_epoch` (validation, history.csv, best.pt and checkpoint_last.pt, all built by
``checkpoints.build_checkpoint``). The recipe's step is in utils/train/gan.py, the data order in utils/train/batches.py.

    python -m utils.train --run-dir runs/demo --profile demo --domain cartoon [-p epochs=3 ...]

Run under ``torchrun`` it trains with one process per GPU (DDP), each taking an equal share of
every global batch. The train notebook calls :func:`run_training`, which trains in-process on
one GPU or the CPU and launches torchrun itself when several GPUs are visible.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from utils.core.config import (
    check_domain,
    model_dir,
    parse_overrides,
    resolve_params,
    settle_pretrained,
    stage_params,
    trained_name,
    training_seed,
)
from utils.core.errors import ParameterError, UnreadableFileError, run_command
from utils.core.parameters import RunParams
from utils.core.processes import die_with_parent
from utils.core.run_dir import RunDirBusy, atomic_write, hold_run_dir, write_csv_atomic
from utils.data.datasets import training_sets
from utils.data.shards import check_batch_size, training_data_sha1
from utils.imaging import color
from utils.imaging.scoring import BatchScorer, predict_ab, truth_and_inputs
from utils.nets.checkpoints import (
    ModelFiles,
    TrainingImages,
    TrainingState,
    build_checkpoint,
    check_resumable,
    keep_epoch_copy,
    load_checkpoint,
    save_atomic,
    set_rng_states,
)
from utils.nets.distributed import (
    Processes,
    any_process,
    barrier,
    end_process_group,
    gpu_processes,
    mean_over_processes,
    processes_from_env,
    start_process_group,
    sync_point,
    training_device,
)
from utils.nets.environment import check_profile_device
from utils.train.batches import EpochSampler, training_loader
from utils.train.gan import GANTraining, build_gan, gan_step, l1_step, train_on_batch
from utils.train.launch import run_torchrun
from utils.train.time_budget import TimeBudget

HISTORY_COLUMNS = [
    "epoch",
    "phase",
    "step",
    "loss_D",
    "loss_G_GAN",
    "loss_G_L1",
    "loss_G",
    "val_loss_G_L1",
    "val_ciede2000",
    "images_per_s",
    "seconds",
    "best",
]
LOG_EVERY = 25  # steps between sync points: losses read, non-finite check, checkpoint clock (the only host syncs)
NO_BAD_STEP = 2**62


# --- the time budget and validation ----------------------------------------------------------------


@torch.no_grad()
def validate(
    gan: GANTraining, loader: torch.utils.data.DataLoader, scorer: BatchScorer, n_samples: int
) -> tuple[float, float, np.ndarray]:
    """Validation L1 (scaled by lambda_L1, like the train loss), mean CIEDE2000, a sample grid.

    The generator predicts and is scored exactly as evaluation does it (``predict_ab``
    under the training's autocast, the scorer on the displayed RGB). The grid is uint8 RGB: rows
    gray input / output / truth, one column per sample, shown with the scorer's ``gamut``.
    """
    generator = gan.generator_module.eval()
    l1_sum, de_sum, count = torch.zeros((), device=gan.device), torch.zeros((), device=gan.device), 0
    rows: list[list[torch.Tensor]] = [[], [], []]
    for batch in loader:
        rgb_true, l_norm, ab_norm = truth_and_inputs(batch.to(gan.device))
        fake = predict_ab(generator, l_norm, gan.amp_dtype, gan.memory_format)
        l1_sum += F.l1_loss(fake, ab_norm, reduction="sum") / ab_norm[0].numel()
        de_sum += scorer(rgb_true, l_norm, fake)["ciede2000"].sum()
        count += len(batch)
        if len(rows[0]) < n_samples:
            k = n_samples - len(rows[0])
            for row, ab in zip(rows, (torch.zeros_like(fake), fake, ab_norm)):
                row.extend(color.rgb_to_uint8(color.colorized_rgb(l_norm[:k], ab[:k], scorer.gamut)).cpu())
    generator.train()
    grid = np.concatenate([np.concatenate([img.numpy() for img in row], axis=1) for row in rows], axis=0)
    return float(l1_sum) / count * gan.lambda_l1, float(de_sum) / count, grid


def raise_if_non_finite(bad_step: int, domain: str, epoch: int, last_path: Path) -> None:
    if bad_step < NO_BAD_STEP:
        raise FloatingPointError(
            f"model {domain}: non-finite loss at epoch {epoch}, step {bad_step}; training stopped. "
            f"The last good checkpoint, {last_path}, is kept (lower 'lr' or set precision='fp32')"
        )


# --- one model's training, set up ----------------------------------------------------------------


@dataclass
class ModelTraining:
    """One model's training as set up: what every epoch reads, and the clocks the loop keeps."""

    params: RunParams  # with the training seed
    procs: Processes
    device: torch.device
    files: ModelFiles
    data: TrainingImages
    budget: TimeBudget
    loader: torch.utils.data.DataLoader
    sampler: EpochSampler
    validation: torch.utils.data.DataLoader
    scorer: BatchScorer
    gan: GANTraining
    show_progress: bool
    checkpointed_at: float = 0.0  # time.monotonic() of the last checkpoint written
    estimated: bool = False  # the time left has been printed
    epochs_done: int = 0  # in this process: the test seam of the time budget counts them

    @property
    def total_epochs(self) -> int:
        return self.params.pretrain_epochs + self.params.epochs

    @classmethod
    def set_up(
        cls,
        params: RunParams,
        run_dir: Path,
        seed: int,
        files: ModelFiles,
        budget: TimeBudget,
        procs: Processes,
        device: torch.device,
        show_progress: bool,
    ) -> ModelTraining:
        """The data (its split the same for every seed), the validation, and the networks with ``seed``."""
        if procs.main:
            (files.out_dir / "samples").mkdir(parents=True, exist_ok=True)
        # data: uint8 batches, pinned; flips and Lab happen on the device, per batch
        train_set, val_set = training_sets(run_dir, files.domain, params)  # the data's split: the same for every seed
        check_batch_size(params, {files.domain: len(train_set)}, {files.domain: procs.world_size})
        params = dataclasses.replace(params, seed=seed)  # from here on the training seed: weights, order, flips
        data = TrainingImages(len(train_set), training_data_sha1(run_dir, files.domain))
        loader, sampler = training_loader(train_set, params, procs, device)
        validation = torch.utils.data.DataLoader(val_set, batch_size=params.eval_batch_size)  # small: in-process
        scorer = BatchScorer(params.compile_metrics, params.eval_batch_size, params.gamut)  # evaluation's own
        gan = build_gan(params, device, procs)
        return cls(params, procs, device, files, data, budget, loader, sampler, validation, scorer, gan, show_progress)


def resume(run: ModelTraining) -> TrainingState:
    """The state saved in ``checkpoint_last.pt`` (loaded into ``run.gan``), after checking it fits this run."""
    files = run.files
    ckpt = load_checkpoint(files.last)
    check_resumable(ckpt, files, run.params, run.procs.world_size, run.data)
    run.gan.load_state(ckpt)
    set_rng_states(ckpt["rng"])
    position = ckpt["position"]
    history = []
    if files.history.is_file():
        history = [r for r in pd.read_csv(files.history).to_dict("records") if r["epoch"] < position["epoch"]]
    if run.procs.main:
        print(
            f"resumed {files.domain} from {files.last}: epoch {position['epoch']}, batch {position['batch']}, "
            f"step {ckpt['step']}"
        )
    return TrainingState(
        position["epoch"],
        position["batch"],
        ckpt["step"],
        ckpt["best_val"],
        ckpt["epoch_sums"].to(run.gan.device),
        history,
    )


# --- the loop ------------------------------------------------------------------------------------


def train(
    params: RunParams, run_dir: str | Path, domain: str, seed_index: int = 0, show_progress: bool = True
) -> pd.DataFrame:
    """Train one model (``domain``: one of the run's domains, or mixed) with training seed ``seed_index`` (0 .. seeds - 1)
    in ``run_dir/models/seed<S>/<domain>/``.

    ``params.pretrain_epochs`` generator-only L1 epochs come first, then ``params.epochs`` GAN
    epochs. Resumes from ``checkpoint_last.pt`` (written every epoch, and inside an epoch every
    ``checkpoint_minutes``) when present and ``params.resume``. With ``time_limit_hours``, training
    stops at a checkpoint once the time budget runs out (checked at every sync point and epoch end),
    and starts nothing when it already has: the history then holds fewer epochs than planned (see
    :func:`training_record`). Under torchrun this is one process of a DDP run; only rank 0 writes.

    Returns:
        The training history, one row per epoch.
    """
    check_domain(domain, params)
    procs = processes_from_env()
    device = training_device(params, procs)
    start_process_group(procs, device)
    try:
        seed = training_seed(params, seed_index)
        return train_model(params, Path(run_dir), domain, seed, procs, device, show_progress and procs.main)
    finally:
        end_process_group(procs)


def train_model(
    params: RunParams,
    run_dir: Path,
    domain: str,
    seed: int,
    procs: Processes,
    device: torch.device,
    show_progress: bool,
) -> pd.DataFrame:
    """:func:`train` in this process, once the processes are set up."""
    files = ModelFiles(domain, model_dir(run_dir, domain, seed))
    budget = TimeBudget.for_run(params, run_dir)
    if any_process(budget.spent(0), procs, device):
        if procs.main:
            print(f"model {domain}: {budget.describe()} before its turn; nothing trained")
        return read_history(files.history)
    # 1. data, validation, networks; 2. the saved state, when resuming
    run = ModelTraining.set_up(params, run_dir, seed, files, budget, procs, device, show_progress)
    state = TrainingState.fresh(device)
    if run.params.resume and files.last.is_file():
        state = resume(run)
    total_epochs = run.total_epochs
    if state.epoch > total_epochs and procs.main:
        print(f"model {domain}: {files.last} already holds all {total_epochs} epochs; nothing to train")
    # 3. the epochs: pretraining (L1 alone), then the GAN; each ends validated and checkpointed
    run.checkpointed_at = time.monotonic()
    while state.epoch <= total_epochs:
        phase = "pretrain" if state.epoch <= run.params.pretrain_epochs else "gan"
        started = time.perf_counter()
        finished, trained_images = train_epoch(run, state, phase)
        if not finished:  # the time budget stopped it, at the checkpoint just written
            break
        end_epoch(run, state, phase, time.perf_counter() - started, trained_images)
        run.checkpointed_at, run.epochs_done = time.monotonic(), run.epochs_done + 1
        if state.epoch <= total_epochs and any_process(budget.spent(run.epochs_done), procs, device):
            break
    if state.epoch <= total_epochs and procs.main:  # the time budget stopped it
        inside = f" and {state.batch} batches of epoch {state.epoch}" if state.batch else ""
        print(
            f"model {domain}: {budget.describe()}; stopped after {state.epoch - 1} of {total_epochs} epochs{inside}. "
            f"Run the training again to continue from {files.last}"
        )
    return read_history(files.history)


def train_epoch(run: ModelTraining, state: TrainingState, phase: str) -> tuple[bool, int]:
    """The epoch's batches from ``state.batch`` on: (whether the epoch finished, the images trained). When the
    time budget runs out inside it, it stops at a checkpoint written there."""
    procs, files, sampler = run.procs, run.files, run.sampler
    step_fn = l1_step if phase == "pretrain" else gan_step
    trained_images, first_batch, started = 0, state.batch, time.perf_counter()
    sampler.set_position(state.epoch, state.batch)
    n_batches = sampler.batches_per_epoch
    first_bad_step = torch.full((), NO_BAD_STEP, dtype=torch.int64, device=run.device)
    out_of_time = False
    bar = tqdm(
        run.loader,
        desc=f"{files.domain} epoch {state.epoch}/{run.total_epochs} ({phase})",
        initial=state.batch,
        total=n_batches,
        disable=not run.show_progress,
    )
    for batch, flips in bar:
        losses = train_on_batch(run.gan, batch, flips, step_fn)
        state.batch, state.step = state.batch + 1, state.step + 1
        trained_images += len(batch) * procs.world_size
        state.sums += losses
        first_bad_step = torch.where(
            (first_bad_step == NO_BAD_STEP) & ~torch.isfinite(losses).all(), state.step, first_bad_step
        )
        if state.batch % LOG_EVERY == 0 or state.batch == n_batches:
            due = 0 < run.params.checkpoint_minutes * 60 <= time.monotonic() - run.checkpointed_at
            bad_step, due, out_of_time = sync_point(first_bad_step, due, run.budget.spent(run.epochs_done), procs)
            raise_if_non_finite(bad_step, files.domain, state.epoch, files.last)
            d, g_gan, g_l1 = (state.sums / state.batch).tolist()
            bar.set_postfix(D=f"{d:.3f}", G_GAN=f"{g_gan:.3f}", G_L1=f"{g_l1:.3f}")
            if not run.estimated and procs.main:
                print_estimate(run, state, state.batch - first_batch, time.perf_counter() - started)
            if (due or out_of_time) and state.batch < n_batches:  # the epoch's end writes its own checkpoint
                save_mid_epoch_checkpoint(run, state)
                run.checkpointed_at = time.monotonic()
            if out_of_time:
                break
    bar.close()
    return not (out_of_time and state.batch < n_batches), trained_images


def print_estimate(run: ModelTraining, state: TrainingState, steps: int, seconds: float) -> None:
    """Once, at the training's first sync point: the time its steps left take at the speed of the steps so far."""
    run.estimated = True
    per_epoch = run.sampler.batches_per_epoch
    steps_left = per_epoch - state.batch + (run.total_epochs - state.epoch) * per_epoch
    print(
        f"model {run.files.domain}: {steps_left} training steps left, {seconds / steps:.2f} s each so far: about "
        f"{steps_left * seconds / steps / 60:.1f} min, and a validation per epoch",
        flush=True,
    )


def save_mid_epoch_checkpoint(run: ModelTraining, state: TrainingState) -> None:
    sums = mean_over_processes(state.sums, run.procs)
    ckpt = build_checkpoint(state, run.files, run.params, run.procs.world_size, run.data, run.gan.state(), sums)
    if run.procs.main:
        save_atomic(ckpt, run.files.last)
    barrier(run.procs)


def end_epoch(run: ModelTraining, state: TrainingState, phase: str, seconds: float, trained_images: int) -> None:
    """Validate, record the epoch in history.csv, write best.pt (if improved) and checkpoint_last.pt,
    then move ``state`` to the next epoch. Only rank 0 writes."""
    files, params = run.files, run.params
    means = (mean_over_processes(state.sums, run.procs) / state.batch).tolist()
    epoch = state.epoch
    state.epoch, state.batch, state.sums = epoch + 1, 0, torch.zeros(3, device=run.gan.device)
    if run.procs.main:
        val_l1, val_de, grid = validate(run.gan, run.validation, run.scorer, params.n_examples)
        with atomic_write(files.out_dir / "samples" / f"epoch_{epoch:02d}.png") as temporary:
            Image.fromarray(grid).save(temporary, format="PNG")
        is_best = val_de < state.best_val
        state.best_val = min(state.best_val, val_de)
        loss_d, loss_g_gan, loss_g_l1 = means if phase == "gan" else (float("nan"), float("nan"), means[2])
        state.history.append(
            {
                "epoch": epoch,
                "phase": phase,
                "step": state.step,
                "loss_D": loss_d,
                "loss_G_GAN": loss_g_gan,
                "loss_G_L1": loss_g_l1,
                "loss_G": loss_g_l1 + (0.0 if phase == "pretrain" else loss_g_gan),
                "val_loss_G_L1": val_l1,
                "val_ciede2000": val_de,
                "images_per_s": trained_images / seconds,
                "seconds": seconds,
                "best": is_best,
            }
        )
        # history first: a crash before the checkpoint resumes from the previous one and drops this row
        write_csv_atomic(files.history, pd.DataFrame(state.history, columns=HISTORY_COLUMNS))
        scores = {"val_ciede2000": val_de, "val_loss_G_L1": val_l1}
        world_size = run.procs.world_size
        if is_best:  # the generator and its record: all that evaluation needs
            generator = {"generator": run.gan.generator_module.state_dict()}
            best = build_checkpoint(state, files, params, world_size, run.data, generator, validation=scores)
            save_atomic(best, files.best)
        last = build_checkpoint(state, files, params, world_size, run.data, run.gan.state(), torch.zeros(3), scores)
        save_atomic(last, files.last)
        if params.keep_every and epoch % params.keep_every == 0:
            keep_epoch_copy(files.last, epoch)
    barrier(run.procs)


def read_history(path: Path) -> pd.DataFrame:
    """A model's history.csv: one row per finished epoch (none yet: an empty table)."""
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=HISTORY_COLUMNS)


def training_record(params: RunParams, history: pd.DataFrame) -> dict[str, Any]:
    """What the train notebook records in run.json: the epochs done and planned; ``partial`` when the time
    budget stopped the training short of them."""
    planned = params.pretrain_epochs + params.epochs
    return {"epochs_done": len(history), "epochs_planned": planned, "partial": len(history) < planned}


def last_sample_grid(run_dir: str | Path, domain: str, seed: int, history: pd.DataFrame) -> Path | None:
    """The validation sample grid of the last epoch trained; None before the first."""
    if history.empty:
        return None
    return model_dir(run_dir, domain, seed) / "samples" / f"epoch_{int(history['epoch'].iloc[-1]):02d}.png"


# --- launching: in-process, or torchrun ---------------------------------------------------------


def run_training(
    params: RunParams, run_dir: str | Path, domain: str, seed_index: int = 0, show_progress: bool = True
) -> pd.DataFrame:
    """What the train notebook calls: in-process on one GPU or the CPU; with several GPUs, torchrun
    with one process per GPU, its output streamed here as it comes. Either way as the run directory's writer
    (or under the lock of the pipeline that started this process): a second training of it is refused."""
    seed = training_seed(params, seed_index)  # a bad index fails here, before torchrun starts
    with hold_run_dir(run_dir, f"train {trained_name(domain, seed)}"):
        n_processes = gpu_processes(params)
        if n_processes == 1:
            return train(params, run_dir, domain, seed_index, show_progress)
        run_torchrun(params, run_dir, domain, seed_index, n_processes)
        return read_history(model_dir(run_dir, domain, seed) / "history.csv")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m utils.train``."""
    parser = argparse.ArgumentParser(prog="python -m utils.train", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--domain", required=True)
    parser.add_argument("--seed-index", type=int, default=0, help="which training seed: 0 .. seeds - 1")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    return parser


def work(args: argparse.Namespace) -> int:
    """``python -m utils.train``'s work, once its arguments are parsed."""
    overrides = settle_pretrained(args.profile, args.run_dir, parse_overrides(args.param))
    check_profile_device(args.profile, resolve_params(args.profile, overrides), args.run_dir, overrides)
    params = stage_params("train", args.profile, args.run_dir, overrides)
    domain = check_domain(args.domain, params)
    if "WORLD_SIZE" in os.environ:  # one process of a torchrun launch
        history = train_as_rank(params, args.run_dir, domain, args.seed_index)
    else:
        history = run_training(params, args.run_dir, domain, args.seed_index)
    if processes_from_env().main:
        print(history.to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: work(args), (ParameterError, UnreadableFileError, RunDirBusy))


def train_as_rank(params: RunParams, run_dir: str | Path, domain: str, seed_index: int) -> pd.DataFrame:
    """One rank of a torchrun launch: bound to torchrun's life. Rank 0, the one that writes, holds the run
    directory (joining the hold of the process that started torchrun, when there is one); the others write
    nothing and take no lock (they are no ancestors of one another)."""
    die_with_parent()
    if not processes_from_env().main:
        return train(params, run_dir, domain, seed_index)
    with hold_run_dir(run_dir, f"train {trained_name(domain, training_seed(params, seed_index))} (torchrun)"):
        return train(params, run_dir, domain, seed_index)
