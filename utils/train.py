"""The GAN training loop: pix2pix recipe, mixed precision, DDP, resumable checkpoints. Also a CLI.

    python -m utils.train --run-dir runs/demo --profile demo --domain cartoon [-p epochs=3 ...]

Run under ``torchrun`` it trains with one process per GPU (DDP), each taking an equal share of
every global batch. The train notebook calls :func:`run_training`, which trains in-process on
one GPU or the CPU and launches torchrun itself when several GPUs are visible.
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import datetime as dt
import hashlib
import math
import os
import random
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from utils import color, evaluate
from utils.checkpoints import (
    CHECKPOINT_FORMAT,
    keep_epoch_copy,
    load_checkpoint,
    rng_states,
    save_atomic,
    set_rng_states,
)
from utils.config import (
    DOMAINS,
    RunParams,
    amp_settings,
    changed_training_parameters,
    check_domain,
    model_dir,
    parse_overrides,
    select_device,
    stage_params,
    trained_name,
    training_seed,
)
from utils.data import load_manifest, training_sets
from utils.errors import ParameterError, UnreadableFileError, cli_error_line, read_json_file
from utils.models import GANLoss, PatchDiscriminator, UNetGenerator
from utils.processes import bound_to_parent, child_environment, die_with_parent
from utils.run_dir import RUN_RECORD_REMEDY, RunDirBusy, atomic_write, hold_run_dir, write_csv_atomic

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
FLIP_SEED_OFFSET = 7_919  # the flips' generator is seeded apart from the order's
COMPILE_BACKEND = "inductor"  # tests use "aot_eager": the same graph capture, without code generation
# Test-only: with a time budget on, it counts as spent once this many epochs have finished in this process
# (tests/test_budget.py, and the Kaggle test's "version 1 runs out after epoch 1"). Never set in real runs.
TEST_BUDGET_EPOCHS_ENV = "KIT_TEST_BUDGET_EPOCHS"


# --- processes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Processes:
    """This process's place in a torchrun launch (rank 0 of 1 when trained in-process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def processes_from_env() -> Processes:
    env = os.environ
    return Processes(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def barrier(procs: Processes) -> None:
    if procs.world_size > 1:
        dist.barrier()


def gpu_processes(params: RunParams) -> int:
    """How many training processes to start: one per GPU in use (1 on the CPU)."""
    if select_device(params).type != "cuda":
        return 1
    visible = torch.cuda.device_count()
    return visible if params.gpus == 0 else min(params.gpus, visible)


def training_device(params: RunParams, procs: Processes) -> torch.device:
    device = select_device(params)
    if device.type == "cuda" and procs.world_size > 1:
        device = torch.device("cuda", procs.local_rank)
        torch.cuda.set_device(device)
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def any_process(flag: bool, procs: Processes, device: torch.device) -> bool:
    """Whether ``flag`` holds in any process: one decision that every process takes alike."""
    if procs.world_size == 1:
        return flag
    value = torch.tensor(int(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


# --- the time budget and the data a model trains on ----------------------------------------------


@dataclass(frozen=True)
class TimeBudget:
    """When training must stop, at a checkpoint: ``time_limit_hours`` from the pipeline's start (run.json's
    ``budget``, which the pipeline records while it runs), or from this process's start when trained alone."""

    hours: float  # 0: no limit
    deadline: float  # a time.time() value; inf without a limit
    epochs_allowed: int | None = None  # the test seam (TEST_BUDGET_EPOCHS_ENV)

    @classmethod
    def for_run(cls, params: RunParams, run_dir: Path) -> TimeBudget:
        if not params.time_limit_hours:
            return cls(0.0, math.inf)
        record = run_dir / "run.json"
        budget = read_json_file(record, RUN_RECORD_REMEDY).get("budget") if record.is_file() else None
        if budget and not budget.get("finished"):  # a pipeline is running this training
            deadline = dt.datetime.fromisoformat(budget["deadline"]).timestamp()
        else:
            deadline = cls.now() + params.time_limit_hours * 3600
        seam = os.environ.get(TEST_BUDGET_EPOCHS_ENV)
        return cls(params.time_limit_hours, deadline, int(seam) if seam else None)

    @staticmethod
    def now() -> float:
        return time.time()  # wall time: the deadline is a moment, shared by processes through run.json

    def spent(self, epochs_done: int) -> bool:
        """``epochs_done``: the epochs finished in this process (the test seam counts them)."""
        if self.epochs_allowed is not None and epochs_done >= self.epochs_allowed:
            return True
        return self.now() >= self.deadline

    def describe(self) -> str:
        return f"the time budget of {self.hours:g} h ran out"


@dataclass(frozen=True)
class TrainingImages:
    """What a model trains on, as its checkpoints record it: a resume on other data is refused."""

    count: int
    sha1: str  # over the manifest rows of the model's training shards (see training_data_sha1)


def training_data_sha1(run_dir: Path, model: str) -> str:
    """sha1 over the manifest rows (domain, split, index, sha1) of the train shards ``model`` trains and
    validates on: the same images in the same shard rows give the same digest, wherever they were read from."""
    manifest = load_manifest(run_dir)
    domains = DOMAINS if model == "mixed" else (model,)
    rows = manifest[manifest["domain"].isin(domains) & (manifest["split"] == "train")]
    rows = rows.sort_values(["domain", "index"])[["domain", "split", "index", "sha1"]]
    return hashlib.sha1(rows.to_csv(index=False).encode()).hexdigest()


# --- data order --------------------------------------------------------------------------------


class FlippableImages(torch.utils.data.Dataset):
    """``dataset[(index, flip)]`` -> (H x W x 3 uint8, flip): the flip itself happens on the batch."""

    def __init__(self, images: torch.utils.data.Dataset) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, bool]:
        index, flip = key
        return self.images[index], flip


class EpochSampler(torch.utils.data.DistributedSampler):
    """This process's share of a seeded per-epoch order, from ``start_batch`` on, with a flip per image.

    The order and the flips are functions of (seed, epoch): the global batch ``s`` of an epoch is
    the same images for any process count (process ``r`` of ``W`` holds its ``r``-th interleaved
    share), and a resumed run skips exactly the batches its checkpoint had trained on.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, procs: Processes, seed: int, batch_size: int, flip: bool):
        super().__init__(
            dataset, num_replicas=procs.world_size, rank=procs.rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = batch_size
        self.flip = flip
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // self.batch_size

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.set_epoch(epoch)
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        share = list(super().__iter__())[self.start_batch * self.batch_size : self.batches_per_epoch * self.batch_size]
        flips = torch.zeros(len(self.dataset), dtype=torch.bool)
        if self.flip:
            generator = torch.Generator().manual_seed(self.seed + self.epoch + FLIP_SEED_OFFSET)
            flips = torch.rand(len(self.dataset), generator=generator) < 0.5
        return iter([(index, bool(flips[index])) for index in share])

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


def batch_to_model_io(
    batch: torch.Tensor,
    flips: torch.Tensor,
    device: torch.device,
    memory_format: torch.memory_format,
    l_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinned uint8 NHWC batch -> device, flipped where asked, -> normalised (L, ab) on the device.

    L comes in the networks' input dtype (the autocast dtype) and layout, converted once per batch
    rather than in every layer that takes it; ab stays float32, the L1 loss's target.
    """
    batch = batch.to(device, non_blocking=True)
    flips = flips.to(device, non_blocking=True)
    batch = torch.where(flips.view(-1, 1, 1, 1), batch.flip(2), batch)
    l_norm, ab_norm = color.uint8_to_model_io(batch)
    return color.as_model_input(l_norm, l_dtype, memory_format), color.as_model_input(ab_norm, None, memory_format)


# --- the two networks and their steps ----------------------------------------------------------


@dataclass
class GANTraining:
    """The networks as trained (compiled and DDP-wrapped when asked), their bare modules, optimisers."""

    generator: nn.Module
    discriminator: nn.Module
    discriminator_local: nn.Module  # without DDP: the frozen pass of the generator step syncs nothing
    generator_module: UNetGenerator  # bare: state dicts, validation
    discriminator_module: PatchDiscriminator
    gan_loss: GANLoss
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    lambda_l1: float
    memory_format: torch.memory_format

    @property
    def device(self) -> torch.device:
        return next(self.generator_module.parameters()).device

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype L enters the networks in: the autocast dtype, or float32."""
        return self.amp_dtype or torch.float32

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()

    def state(self) -> dict[str, Any]:
        return {
            "generator": self.generator_module.state_dict(),
            "discriminator": self.discriminator_module.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state(self, ckpt: dict[str, Any]) -> None:
        self.generator_module.load_state_dict(ckpt["generator"])
        self.discriminator_module.load_state_dict(ckpt["discriminator"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        self.scaler.load_state_dict(ckpt["scaler"])


def adam(module: nn.Module, params: RunParams) -> torch.optim.Adam:
    """The recipe's Adam, fused: one kernel for all parameters, and with a GradScaler the inf check
    stays on the device (an unfused optimizer makes the scaler read ``found_inf`` back every step)."""
    return torch.optim.Adam(module.parameters(), lr=params.lr, betas=(params.beta1, params.beta2), fused=True)


def uses_sync_batchnorm(procs: Processes, device: torch.device) -> bool:
    """Several GPU processes share batch statistics (the recipe's batch); SyncBatchNorm needs CUDA, so on the
    CPU each process keeps its own."""
    return procs.world_size > 1 and device.type == "cuda"


def should_compile(params: RunParams, procs: Processes, device: torch.device) -> bool:
    """``params.compile``, except under SyncBatchNorm: torch.compile breaks the graph at every
    SyncBatchNorm layer (pytorch/pytorch#161302; 46 in the generator, 3 in the discriminator), and the synced batch
    statistics of the recipe come first, so training runs eager there, with a warning."""
    if params.compile and uses_sync_batchnorm(procs, device):
        if procs.main:
            warnings.warn(
                f"parameter 'compile' = True is ignored with {procs.world_size} GPU processes: torch.compile "
                "breaks the graph at every SyncBatchNorm layer, so training runs eager (set gpus=1 to compile)",
                stacklevel=2,
            )
        return False
    return params.compile


def build_gan(params: RunParams, device: torch.device, procs: Processes = Processes()) -> GANTraining:
    """Networks, optimisers and scaler for ``params``; the same initial weights in every process."""
    seed_everything(params.seed)
    if not procs.main:  # rank 0 fetches the pretrained weights alone, the others read its cache
        barrier(procs)
    generator = UNetGenerator(pretrained=params.pretrained).to(device)
    if procs.main:
        barrier(procs)
    discriminator = PatchDiscriminator().to(device)
    if uses_sync_batchnorm(procs, device):
        generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
        discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
    memory_format = torch.channels_last if params.channels_last else torch.contiguous_format
    generator.to(memory_format=memory_format)
    discriminator.to(memory_format=memory_format)
    g_run, d_run, d_local = generator, discriminator, discriminator
    if procs.world_size > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        g_run = DistributedDataParallel(generator, device_ids=device_ids)
        d_run = DistributedDataParallel(discriminator, device_ids=device_ids)
    if should_compile(params, procs, device):  # around DDP, not inside it: graphs split at DDP's gradient buckets
        g_run, d_run = (torch.compile(m, backend=COMPILE_BACKEND) for m in (g_run, d_run))
        d_local = torch.compile(discriminator, backend=COMPILE_BACKEND) if procs.world_size > 1 else d_run
    amp_dtype, use_scaler = amp_settings(device, params.precision)
    return GANTraining(
        generator=g_run,
        discriminator=d_run,
        discriminator_local=d_local,
        generator_module=generator,
        discriminator_module=discriminator,
        gan_loss=GANLoss().to(device),
        opt_g=adam(generator, params),
        opt_d=adam(discriminator, params),
        scaler=torch.amp.GradScaler(device.type, enabled=use_scaler),
        amp_dtype=amp_dtype,
        lambda_l1=params.lambda_l1,
        memory_format=memory_format,
    )


def gan_step(gan: GANTraining, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """One pix2pix step; returns the detached losses [D, G_GAN, G_L1] (no host sync)."""
    ab_real = ab_norm.to(gan.input_dtype)  # the discriminator's real pair, in the dtype of the generated one
    with gan.autocast():
        fake = gan.generator(l_norm)
    # 1. discriminator: real pairs -> 1, generated pairs -> 0 (generator not updated)
    gan.discriminator_module.requires_grad_(True)
    gan.opt_d.zero_grad(set_to_none=True)
    with gan.autocast():
        loss_d = 0.5 * (
            gan.gan_loss(gan.discriminator(l_norm, fake.detach()), False)
            + gan.gan_loss(gan.discriminator(l_norm, ab_real), True)
        )
    gan.scaler.scale(loss_d).backward()
    gan.scaler.step(gan.opt_d)
    # 2. generator: fool the (frozen) discriminator and stay close to the true ab
    gan.discriminator_module.requires_grad_(False)
    gan.opt_g.zero_grad(set_to_none=True)
    with gan.autocast():
        loss_g_gan = gan.gan_loss(gan.discriminator_local(l_norm, fake), True)
        loss_g_l1 = F.l1_loss(fake.float(), ab_norm) * gan.lambda_l1
    gan.scaler.scale(loss_g_gan + loss_g_l1).backward()
    gan.scaler.step(gan.opt_g)
    gan.scaler.update()
    return torch.stack([loss_d.float(), loss_g_gan.float(), loss_g_l1]).detach()


def l1_step(gan: GANTraining, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """One generator-only L1 step (pretraining); returns [0, 0, G_L1] like :func:`gan_step`."""
    gan.opt_g.zero_grad(set_to_none=True)
    with gan.autocast():
        fake = gan.generator(l_norm)
    loss_g_l1 = F.l1_loss(fake.float(), ab_norm) * gan.lambda_l1
    gan.scaler.scale(loss_g_l1).backward()
    gan.scaler.step(gan.opt_g)
    gan.scaler.update()
    zero = torch.zeros((), device=loss_g_l1.device)
    return torch.stack([zero, zero, loss_g_l1]).detach()


def train_on_batch(gan: GANTraining, batch: torch.Tensor, flips: torch.Tensor, step_fn=gan_step) -> torch.Tensor:
    """A loader batch through one training step (``gan_step`` or ``l1_step``): the loop's body."""
    return step_fn(gan, *batch_to_model_io(batch, flips, gan.device, gan.memory_format, gan.input_dtype))


def training_loader(
    train_set: torch.utils.data.Dataset, params: RunParams, procs: Processes, device: torch.device
) -> tuple[torch.utils.data.DataLoader, EpochSampler]:
    """uint8 batches in the seeded per-epoch order, pinned for the GPU; flips and Lab happen on the device."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels once
    sampler = EpochSampler(train_set, procs, params.seed, params.batch_size // procs.world_size, params.flip)
    loader = torch.utils.data.DataLoader(
        FlippableImages(train_set),
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=params.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=params.num_workers > 0,
        generator=torch.Generator().manual_seed(params.seed),  # worker seeds never draw on the global RNG
    )
    return loader, sampler


@torch.no_grad()
def validate(
    gan: GANTraining, loader: torch.utils.data.DataLoader, scorer: evaluate.BatchScorer, n_samples: int
) -> tuple[float, float, np.ndarray]:
    """Validation L1 (scaled by lambda_L1, like the train loss), mean CIEDE2000, a sample grid.

    The generator predicts and is scored exactly as evaluation does it (``evaluate.predict_ab``
    under the training's autocast, the scorer on the displayed RGB). The grid is uint8 RGB: rows
    gray input / output / truth, one column per sample, shown with the scorer's ``gamut``.
    """
    generator = gan.generator_module.eval()
    l1_sum, de_sum, count = torch.zeros((), device=gan.device), torch.zeros((), device=gan.device), 0
    rows: list[list[torch.Tensor]] = [[], [], []]
    for batch in loader:
        rgb_true, l_norm, ab_norm = evaluate.truth_and_inputs(batch.to(gan.device))
        fake = evaluate.predict_ab(generator, l_norm, gan.amp_dtype, gan.memory_format)
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


def sync_point(
    first_bad_step: torch.Tensor, checkpoint_due: bool, out_of_time: bool, procs: Processes
) -> tuple[int, bool, bool]:
    """Every LOG_EVERY steps, one host sync that every process agrees on: the first step with a non-finite
    loss (any process's), whether a checkpoint is due and whether the time budget ran out (any process's clock)."""
    yes_as_zero = torch.tensor([0 if checkpoint_due else 1, 0 if out_of_time else 1], device=first_bad_step.device)
    flags = torch.cat([first_bad_step.view(1), yes_as_zero])
    if procs.world_size > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MIN)  # any process's bad step, due checkpoint or clock decides
    bad_step, not_due, in_time = flags.tolist()
    return bad_step, not_due == 0, in_time == 0


def raise_if_non_finite(bad_step: int, domain: str, epoch: int, last_path: Path) -> None:
    if bad_step < NO_BAD_STEP:
        raise FloatingPointError(
            f"model {domain}: non-finite loss at epoch {epoch}, step {bad_step}; training stopped. "
            f"The last good checkpoint, {last_path}, is kept (lower 'lr' or set precision='fp32')"
        )


def mean_over_processes(values: torch.Tensor, procs: Processes) -> torch.Tensor:
    values = values.clone()
    if procs.world_size > 1:
        dist.all_reduce(values)
        values /= procs.world_size
    return values


# --- the loop ------------------------------------------------------------------------------------


@dataclass
class TrainingState:
    """Where a model's training stands: what a checkpoint records and a resume restores."""

    epoch: int  # the epoch in progress
    batch: int  # batches of it already trained
    step: int  # optimiser steps so far
    best_val: float  # lowest validation CIEDE2000 so far
    sums: torch.Tensor  # this epoch's loss sums [D, G_GAN, G_L1] so far
    history: list[dict[str, Any]]  # one row per finished epoch

    @classmethod
    def fresh(cls, device: torch.device) -> TrainingState:
        return cls(1, 0, 0, float("inf"), torch.zeros(3, device=device), [])


@dataclass(frozen=True)
class ModelFiles:
    """One trained model's directory and files (``run_dir/models/seed<S>/<domain>/``)."""

    domain: str
    out_dir: Path

    @property
    def last(self) -> Path:
        return self.out_dir / "checkpoint_last.pt"

    @property
    def best(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def history(self) -> Path:
        return self.out_dir / "history.csv"


def checkpoint_record(
    state: TrainingState, files: ModelFiles, params: RunParams, procs: Processes, data: TrainingImages
) -> dict[str, Any]:
    """The record every checkpoint carries: the epochs completed, where the next batch starts, the data."""
    return {
        "format": CHECKPOINT_FORMAT, "model": files.domain, "image_size": params.image_size,
        "epoch": state.epoch - 1, "step": state.step, "best_val": state.best_val, "params": params.to_dict(),
        "position": {"epoch": state.epoch, "batch": state.batch, "world_size": procs.world_size,
                     "train_images": data.count, "seed": params.seed},
        "data_sha1": data.sha1,
    }  # fmt: skip


def resume_state(
    files: ModelFiles, params: RunParams, procs: Processes, gan: GANTraining, data: TrainingImages
) -> TrainingState:
    """The state saved in ``checkpoint_last.pt`` (loaded into ``gan``), after checking it fits this run."""
    ckpt = load_checkpoint(files.last)
    position = ckpt["position"]
    if changed := changed_training_parameters(ckpt["params"], params):
        differences = "; ".join(f"{name} = {saved!r} there, {now!r} now" for name, (saved, now) in changed.items())
        raise ValueError(
            f"{files.last}: trained with other values of the parameters that shape training ({differences}). "
            "A resumed training keeps them: resume with the checkpoint's values, or start afresh with resume=False "
            "(this model's checkpoints are replaced) or in a new run directory"
        )
    if ckpt["model"] != files.domain or ckpt["image_size"] != params.image_size:
        raise ValueError(
            f"{files.last}: trained for model {ckpt['model']!r} at {ckpt['image_size']} px; "
            f"this run asks for {files.domain!r} at {params.image_size} px (set resume=False to start over)"
        )
    if ckpt.get("data_sha1", data.sha1) != data.sha1:  # checkpoints before the digest: the count check alone
        raise ValueError(
            f"{files.last}: trained on other data than the run directory now holds for model {files.domain!r} "
            f"(the data changed: its manifest rows have digest {data.sha1}, the checkpoint's {ckpt['data_sha1']}); "
            "set resume=False to start over"
        )
    if position["train_images"] != data.count:
        raise ValueError(
            f"{files.last}: trained on {position['train_images']} images, the run directory now has "
            f"{data.count} for model {files.domain!r} (set resume=False to start over)"
        )
    if position["batch"] and position["world_size"] != procs.world_size:
        raise ValueError(
            f"{files.last}: saved in the middle of an epoch by {position['world_size']} process(es); "
            f"resume it with the same number of GPUs (parameter 'gpus'), or set resume=False"
        )
    gan.load_state(ckpt)
    set_rng_states(ckpt["rng"])
    history = []
    if files.history.is_file():
        history = [r for r in pd.read_csv(files.history).to_dict("records") if r["epoch"] < position["epoch"]]
    if procs.main:
        print(f"resumed {files.domain} from {files.last}: epoch {position['epoch']}, batch {position['batch']}, "
              f"step {ckpt['step']}")  # fmt: skip
    return TrainingState(position["epoch"], position["batch"], ckpt["step"], ckpt["best_val"],
                         ckpt["epoch_sums"].to(gan.device), history)  # fmt: skip


def save_mid_epoch_checkpoint(
    state: TrainingState, files: ModelFiles, params: RunParams, procs: Processes, gan: GANTraining, data: TrainingImages
) -> None:
    record = checkpoint_record(state, files, params, procs, data)
    record |= {"epoch_sums": mean_over_processes(state.sums, procs), "rng": rng_states(), **gan.state()}
    if procs.main:
        save_atomic(record, files.last)
    barrier(procs)


def end_epoch(
    state: TrainingState,
    files: ModelFiles,
    params: RunParams,
    procs: Processes,
    gan: GANTraining,
    data: TrainingImages,
    phase: str,
    seconds: float,
    trained_images: int,
    validation: tuple[torch.utils.data.DataLoader, evaluate.BatchScorer],
) -> None:
    """Validate, record the epoch in history.csv, write best.pt (if improved) and checkpoint_last.pt,
    then move ``state`` to the next epoch. Only rank 0 writes."""
    n_batches = state.batch
    means = (mean_over_processes(state.sums, procs) / n_batches).tolist()
    epoch = state.epoch
    state.epoch, state.batch, state.sums = epoch + 1, 0, torch.zeros(3, device=gan.device)
    if procs.main:
        val_l1, val_de, grid = validate(gan, *validation, params.n_examples)
        with atomic_write(files.out_dir / "samples" / f"epoch_{epoch:02d}.png") as temporary:
            Image.fromarray(grid).save(temporary, format="PNG")
        is_best = val_de < state.best_val
        state.best_val = min(state.best_val, val_de)
        loss_d, loss_g_gan, loss_g_l1 = means if phase == "gan" else (float("nan"), float("nan"), means[2])
        state.history.append(
            {"epoch": epoch, "phase": phase, "step": state.step, "loss_D": loss_d, "loss_G_GAN": loss_g_gan,
             "loss_G_L1": loss_g_l1, "loss_G": loss_g_l1 + (0.0 if phase == "pretrain" else loss_g_gan),
             "val_loss_G_L1": val_l1, "val_ciede2000": val_de, "images_per_s": trained_images / seconds,
             "seconds": seconds, "best": is_best}
        )  # fmt: skip
        # history first: a crash before the checkpoint resumes from the previous one and drops this row
        write_csv_atomic(files.history, pd.DataFrame(state.history, columns=HISTORY_COLUMNS))
        record = checkpoint_record(state, files, params, procs, data)
        record |= {"val_ciede2000": val_de, "val_loss_G_L1": val_l1}
        if is_best:  # the generator and its record: all that evaluation needs
            save_atomic(record | {"generator": gan.generator_module.state_dict()}, files.best)
        save_atomic(record | {"epoch_sums": torch.zeros(3), "rng": rng_states(), **gan.state()}, files.last)
        if params.keep_every and epoch % params.keep_every == 0:
            keep_epoch_copy(files.last, epoch)
    barrier(procs)


def train(
    params: RunParams, run_dir: str | Path, domain: str, seed_index: int = 0, show_progress: bool = True
) -> pd.DataFrame:
    """Train one model (``domain`` in cartoon, movie, mixed) with training seed ``seed_index`` (0 .. seeds - 1)
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
    check_domain(domain)
    procs = processes_from_env()
    device = training_device(params, procs)
    if procs.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        seed = training_seed(params, seed_index)
        return _train(params, Path(run_dir), domain, seed, procs, device, show_progress and procs.main)
    finally:
        if procs.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    params: RunParams,
    run_dir: Path,
    domain: str,
    seed: int,
    procs: Processes,
    device: torch.device,
    show_progress: bool,
) -> pd.DataFrame:
    files = ModelFiles(domain, model_dir(run_dir, domain, seed))
    budget = TimeBudget.for_run(params, run_dir)
    if any_process(budget.spent(0), procs, device):
        if procs.main:
            print(f"model {domain}: {budget.describe()} before its turn; nothing trained")
        return read_history(files.history)
    if procs.main:
        (files.out_dir / "samples").mkdir(parents=True, exist_ok=True)
    if params.batch_size % procs.world_size:
        raise ValueError(
            f"parameter 'batch_size' = {params.batch_size}: the global batch must split evenly across "
            f"{procs.world_size} GPU processes"
        )

    # data: uint8 batches, pinned; flips and Lab happen on the device, per batch
    train_set, val_set = training_sets(run_dir, domain, params)  # the data's split: the same for every seed
    params = dataclasses.replace(params, seed=seed)  # from here on the training seed: weights, order, flips
    data = TrainingImages(len(train_set), training_data_sha1(run_dir, domain))
    if data.count < params.batch_size:
        raise ValueError(
            f"parameter 'batch_size' = {params.batch_size}: larger than the {data.count} "
            f"training images of model {domain!r}"
        )
    loader, sampler = training_loader(train_set, params, procs, device)
    validation = (
        torch.utils.data.DataLoader(val_set, batch_size=params.eval_batch_size),  # small: read in-process
        evaluate.BatchScorer(params.compile_metrics, params.eval_batch_size, params.gamut),  # evaluation's own
    )
    gan = build_gan(params, device, procs)
    state = TrainingState.fresh(device)
    if params.resume and files.last.is_file():
        state = resume_state(files, params, procs, gan, data)

    total_epochs = params.pretrain_epochs + params.epochs
    if state.epoch > total_epochs and procs.main:
        print(f"model {domain}: {files.last} already holds all {total_epochs} epochs; nothing to train")
    last_checkpoint, epochs_done = time.monotonic(), 0  # epochs_done: in this process, for the budget
    while state.epoch <= total_epochs:
        phase = "pretrain" if state.epoch <= params.pretrain_epochs else "gan"
        step_fn = l1_step if phase == "pretrain" else gan_step
        started, trained_images = time.perf_counter(), 0
        sampler.set_position(state.epoch, state.batch)
        n_batches = sampler.batches_per_epoch
        first_bad_step = torch.full((), NO_BAD_STEP, dtype=torch.int64, device=device)
        out_of_time = False
        bar = tqdm(
            loader,
            desc=f"{domain} epoch {state.epoch}/{total_epochs} ({phase})",
            initial=state.batch,
            total=n_batches,
            disable=not show_progress,
        )
        for batch, flips in bar:
            losses = train_on_batch(gan, batch, flips, step_fn)
            state.batch, state.step = state.batch + 1, state.step + 1
            trained_images += len(batch) * procs.world_size
            state.sums += losses
            first_bad_step = torch.where(
                (first_bad_step == NO_BAD_STEP) & ~torch.isfinite(losses).all(), state.step, first_bad_step
            )
            if state.batch % LOG_EVERY == 0 or state.batch == n_batches:
                due = 0 < params.checkpoint_minutes * 60 <= time.monotonic() - last_checkpoint
                bad_step, due, out_of_time = sync_point(first_bad_step, due, budget.spent(epochs_done), procs)
                raise_if_non_finite(bad_step, domain, state.epoch, files.last)
                d, g_gan, g_l1 = (state.sums / state.batch).tolist()
                bar.set_postfix(D=f"{d:.3f}", G_GAN=f"{g_gan:.3f}", G_L1=f"{g_l1:.3f}")
                if (due or out_of_time) and state.batch < n_batches:  # the epoch's end writes its own checkpoint
                    save_mid_epoch_checkpoint(state, files, params, procs, gan, data)
                    last_checkpoint = time.monotonic()
                if out_of_time:
                    break
        bar.close()
        if out_of_time and state.batch < n_batches:  # at the checkpoint just written
            break
        seconds = time.perf_counter() - started
        end_epoch(state, files, params, procs, gan, data, phase, seconds, trained_images, validation)
        last_checkpoint, epochs_done = time.monotonic(), epochs_done + 1
        if state.epoch <= total_epochs and any_process(budget.spent(epochs_done), procs, device):
            break
    if state.epoch <= total_epochs and procs.main:  # the time budget stopped it
        inside = f" and {state.batch} batches of epoch {state.epoch}" if state.batch else ""
        print(f"model {domain}: {budget.describe()}; stopped after {state.epoch - 1} of {total_epochs} epochs{inside}. "
              f"Run the training again to continue from {files.last}")  # fmt: skip
    return read_history(files.history)


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


# --- launching ---------------------------------------------------------------------------------


def param_arguments(params: RunParams) -> list[str]:
    """``-p name=value`` for every parameter: the CLI rebuilds exactly ``params``."""
    args = []
    for name, value in params.to_dict().items():
        text = ",".join(value) if isinstance(value, list) else str(value)
        args += ["-p", f"{name}={text}"]
    return args


def torchrun_command(
    params: RunParams, run_dir: str | Path, domain: str, seed_index: int, n_processes: int
) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_processes}",
        "-m", "utils.train", "--run-dir", str(Path(run_dir).resolve()), "--domain", domain,
        "--seed-index", str(seed_index), *param_arguments(params),
    ]  # fmt: skip


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
        return run_torchrun(params, run_dir, domain, seed_index, n_processes)


def run_torchrun(
    params: RunParams, run_dir: str | Path, domain: str, seed_index: int, n_processes: int
) -> pd.DataFrame:
    """torchrun with ``n_processes`` ranks, bound to this process's life, its output streamed here as it comes."""
    command = bound_to_parent(torchrun_command(params, run_dir, domain, seed_index, n_processes))
    print(f"training {domain} on {n_processes} GPUs: torchrun --nproc_per_node={n_processes} -m utils.train ...")
    kit_root = Path(__file__).resolve().parent.parent
    env = {**child_environment(), "PYTHONUNBUFFERED": "1"}  # the ranks write under this process's hold
    proc = subprocess.Popen(command, cwd=kit_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may end mid-character
    try:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 4096):
            sys.stdout.write(decoder.decode(chunk))
            sys.stdout.flush()
        proc.wait()
    except BaseException:  # an interrupted notebook stops the training processes too
        proc.terminate()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    if proc.returncode:
        raise RuntimeError(
            f"torchrun training of model {domain} failed (exit code {proc.returncode}); see the output above"
        )
    return read_history(model_dir(run_dir, domain, training_seed(params, seed_index)) / "history.csv")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m utils.train``."""
    parser = argparse.ArgumentParser(prog="python -m utils.train", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--domain", required=True)
    parser.add_argument("--seed-index", type=int, default=0, help="which training seed: 0 .. seeds - 1")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = stage_params("train", args.profile, args.run_dir, parse_overrides(args.param))
        domain = check_domain(args.domain)
        if "WORLD_SIZE" in os.environ:  # one process of a torchrun launch
            history = train_as_rank(params, args.run_dir, domain, args.seed_index)
        else:
            history = run_training(params, args.run_dir, domain, args.seed_index)
    except Exception as err:
        line = cli_error_line(err, (ParameterError, UnreadableFileError, RunDirBusy))
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    if processes_from_env().main:
        print(history.to_string(index=False))
    return 0


def train_as_rank(params: RunParams, run_dir: str | Path, domain: str, seed_index: int) -> pd.DataFrame:
    """One rank of a torchrun launch: bound to torchrun's life. Rank 0, the one that writes, holds the run
    directory (joining the hold of the process that started torchrun, when there is one); the others write
    nothing and take no lock (they are no ancestors of one another)."""
    die_with_parent()
    if not processes_from_env().main:
        return train(params, run_dir, domain, seed_index)
    with hold_run_dir(run_dir, f"train {trained_name(domain, training_seed(params, seed_index))} (torchrun)"):
        return train(params, run_dir, domain, seed_index)


if __name__ == "__main__":
    sys.exit(main())
