"""The GAN training loop: pix2pix recipe, mixed precision, DDP, resumable checkpoints. Also a CLI.

    python -m utils.train --run-dir runs/demo --profile demo --domain cartoon [-p epochs=3 ...]

Run under ``torchrun`` it trains with one process per GPU (DDP), each taking an equal share of
every global batch. The train notebook calls :func:`run_training`, which trains in-process on
one GPU or the CPU and launches torchrun itself when several GPUs are visible.
"""

from __future__ import annotations

import argparse
import codecs
import os
import random
import subprocess
import sys
import time
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

from utils import color
from utils.checkpoints import (
    CHECKPOINT_FORMAT,
    keep_epoch_copy,
    load_checkpoint,
    model_dir,
    rng_states,
    save_atomic,
    set_rng_states,
)
from utils.config import (
    RunParams,
    check_domain,
    parse_overrides,
    select_device,
    stage_params,
    write_csv_atomic,
)
from utils.data import training_sets
from utils.evaluate import score_batch
from utils.models import GANLoss, PatchDiscriminator, UNetGenerator

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
LOG_EVERY = 25  # steps between reads of the running losses: the loop's only host syncs
NO_BAD_STEP = 2**62
FLIP_SEED_OFFSET = 7_919  # the flips' generator is seeded apart from the order's


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


def amp_settings(device: torch.device, precision: str = "auto") -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a GradScaler is needed). The CPU trains in fp32.

    ``auto``: bf16 on GPUs with native bf16 (compute capability 8+), else fp16 with a GradScaler
    (a T4 is 7.5: torch can emulate bf16 there, slowly, so its ``is_bf16_supported()`` is not asked).
    """
    if device.type != "cuda" or precision == "fp32":
        return None, False
    if precision == "auto":
        precision = "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
    return (torch.bfloat16, False) if precision == "bf16" else (torch.float16, True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinned uint8 NHWC batch -> device, flipped where asked, -> normalised (L, ab) on the device."""
    batch = batch.to(device, non_blocking=True)
    flips = flips.to(device, non_blocking=True)
    batch = torch.where(flips.view(-1, 1, 1, 1), batch.flip(2), batch)
    l_norm, ab_norm = color.uint8_to_model_io(batch)
    return l_norm.contiguous(memory_format=memory_format), ab_norm.contiguous(memory_format=memory_format)


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

    def autocast(self) -> AbstractContextManager:
        device_type = next(self.generator_module.parameters()).device.type
        return torch.autocast(device_type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()

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


def build_gan(params: RunParams, device: torch.device, procs: Processes = Processes()) -> GANTraining:
    """Networks, optimisers and scaler for ``params``; the same initial weights in every process."""
    seed_everything(params.seed)
    if not procs.main:  # rank 0 fetches the pretrained weights alone, the others read its cache
        barrier(procs)
    generator = UNetGenerator(pretrained=params.pretrained).to(device)
    if procs.main:
        barrier(procs)
    discriminator = PatchDiscriminator().to(device)
    if procs.world_size > 1 and device.type == "cuda":  # SyncBatchNorm needs CUDA; on the CPU each rank keeps its own
        generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
        discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
    memory_format = torch.channels_last if params.channels_last else torch.contiguous_format
    generator.to(memory_format=memory_format)
    discriminator.to(memory_format=memory_format)
    g_run, d_run = generator, discriminator
    if params.compile:
        g_run, d_run = torch.compile(generator), torch.compile(discriminator)
    d_local = d_run
    if procs.world_size > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        g_run = DistributedDataParallel(g_run, device_ids=device_ids)
        d_run = DistributedDataParallel(d_run, device_ids=device_ids)
    amp_dtype, use_scaler = amp_settings(device, params.precision)
    betas = (params.beta1, params.beta2)
    return GANTraining(
        generator=g_run,
        discriminator=d_run,
        discriminator_local=d_local,
        generator_module=generator,
        discriminator_module=discriminator,
        gan_loss=GANLoss().to(device),
        opt_g=torch.optim.Adam(generator.parameters(), lr=params.lr, betas=betas),
        opt_d=torch.optim.Adam(discriminator.parameters(), lr=params.lr, betas=betas),
        scaler=torch.amp.GradScaler(device.type, enabled=use_scaler),
        amp_dtype=amp_dtype,
        lambda_l1=params.lambda_l1,
        memory_format=memory_format,
    )


def gan_step(gan: GANTraining, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """One pix2pix step; returns the detached losses [D, G_GAN, G_L1] (no host sync)."""
    with gan.autocast():
        fake = gan.generator(l_norm)
    # 1. discriminator: real pairs -> 1, generated pairs -> 0 (generator not updated)
    gan.discriminator_module.requires_grad_(True)
    gan.opt_d.zero_grad(set_to_none=True)
    with gan.autocast():
        loss_d = 0.5 * (
            gan.gan_loss(gan.discriminator(l_norm, fake.detach()), False)
            + gan.gan_loss(gan.discriminator(l_norm, ab_norm), True)
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


@torch.no_grad()
def validate(
    generator: UNetGenerator,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    lambda_l1: float,
    n_samples: int,
) -> tuple[float, float, np.ndarray]:
    """Validation L1 (scaled by lambda_L1, like the train loss), mean CIEDE2000, a sample grid.

    CIEDE2000 is scored as evaluation scores it (on the displayed RGB). The grid is uint8 RGB:
    rows gray input / output / truth, one column per sample.
    """
    generator.eval()
    l1_sum, de_sum, count = torch.zeros((), device=device), torch.zeros((), device=device), 0
    rows: list[list[torch.Tensor]] = [[], [], []]
    for batch in loader:
        batch = batch.to(device)
        l_norm, ab_norm = color.uint8_to_model_io(batch)
        fake = generator(l_norm).float()
        l1_sum += F.l1_loss(fake, ab_norm, reduction="sum") / ab_norm[0].numel()
        de_sum += score_batch(color.uint8_to_rgb(batch), l_norm, fake)["ciede2000"].sum()
        count += len(batch)
        if len(rows[0]) < n_samples:
            k = n_samples - len(rows[0])
            for row, ab in zip(rows, (torch.zeros_like(fake), fake, ab_norm)):
                row.extend(color.rgb_to_uint8(color.colorized_rgb(l_norm[:k], ab[:k])).cpu())
    generator.train()
    grid = np.concatenate([np.concatenate([img.numpy() for img in row], axis=1) for row in rows], axis=0)
    return float(l1_sum) / count * lambda_l1, float(de_sum) / count, grid


def raise_if_non_finite(
    first_bad_step: torch.Tensor, procs: Processes, domain: str, epoch: int, last_path: Path
) -> None:
    """Every process stops together when any saw a non-finite loss (one host sync)."""
    if procs.world_size > 1:
        dist.all_reduce(first_bad_step, op=dist.ReduceOp.MIN)
    step = int(first_bad_step)
    if step < NO_BAD_STEP:
        raise FloatingPointError(
            f"model {domain}: non-finite loss at epoch {epoch}, step {step}; training stopped. "
            f"The last good checkpoint, {last_path}, is kept (lower 'lr' or set precision='fp32')"
        )


def mean_over_processes(values: torch.Tensor, procs: Processes) -> torch.Tensor:
    values = values.clone()
    if procs.world_size > 1:
        dist.all_reduce(values)
        values /= procs.world_size
    return values


# --- the loop ------------------------------------------------------------------------------------


def train(params: RunParams, run_dir: str | Path, domain: str, show_progress: bool = True) -> pd.DataFrame:
    """Train one model (``domain`` in cartoon, movie, mixed) in ``run_dir/models/<domain>/``.

    ``params.pretrain_epochs`` generator-only L1 epochs come first, then ``params.epochs`` GAN
    epochs. Resumes from ``checkpoint_last.pt`` (written every epoch, and every
    ``checkpoint_every`` steps) when present and ``params.resume``. Under torchrun this is one
    process of a DDP run; only rank 0 writes.

    Returns:
        The training history, one row per epoch.
    """
    check_domain(domain)
    procs = processes_from_env()
    device = training_device(params, procs)
    if procs.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(params, Path(run_dir), domain, procs, device, show_progress and procs.main)
    finally:
        if procs.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    params: RunParams, run_dir: Path, domain: str, procs: Processes, device: torch.device, show_progress: bool
) -> pd.DataFrame:
    out_dir = model_dir(run_dir, domain)
    last_path, best_path, history_path = out_dir / "checkpoint_last.pt", out_dir / "best.pt", out_dir / "history.csv"
    if procs.main:
        (out_dir / "samples").mkdir(parents=True, exist_ok=True)
    if params.batch_size % procs.world_size:
        raise ValueError(
            f"parameter 'batch_size' = {params.batch_size}: the global batch must split evenly across "
            f"{procs.world_size} GPU processes"
        )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # data: uint8 batches, pinned; flips and Lab happen on the device, per batch
    train_set, val_set = training_sets(run_dir, domain, params)
    if len(train_set) < params.batch_size:
        raise ValueError(
            f"parameter 'batch_size' = {params.batch_size}: larger than the {len(train_set)} "
            f"training images of model {domain!r}"
        )
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
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=params.eval_batch_size)  # small: read in-process
    gan = build_gan(params, device, procs)

    total_epochs = params.pretrain_epochs + params.epochs
    epoch, start_batch, step, best_val = 1, 0, 0, float("inf")
    sums = torch.zeros(3, device=device)
    history: list[dict[str, Any]] = []
    if params.resume and last_path.is_file():
        ckpt = load_checkpoint(last_path, device)
        position = ckpt["position"]
        if ckpt["model"] != domain or ckpt["image_size"] != params.image_size:
            raise ValueError(
                f"{last_path}: trained for model {ckpt['model']!r} at {ckpt['image_size']} px; "
                f"this run asks for {domain!r} at {params.image_size} px (set resume=False to start over)"
            )
        if position["train_images"] != len(train_set):
            raise ValueError(
                f"{last_path}: trained on {position['train_images']} images, the run directory now has "
                f"{len(train_set)} for model {domain!r} (set resume=False to start over)"
            )
        if position["batch"] and position["world_size"] != procs.world_size:
            raise ValueError(
                f"{last_path}: saved in the middle of an epoch by {position['world_size']} process(es); "
                f"resume it with the same number of GPUs (parameter 'gpus'), or set resume=False"
            )
        gan.load_state(ckpt)
        set_rng_states(ckpt["rng"])
        epoch, start_batch, step, best_val = position["epoch"], position["batch"], ckpt["step"], ckpt["best_val"]
        sums = ckpt["epoch_sums"].to(device)
        if history_path.is_file():
            history = [r for r in pd.read_csv(history_path).to_dict("records") if r["epoch"] < epoch]
        if procs.main:
            print(f"resumed {domain} from {last_path}: epoch {epoch}, batch {start_batch}, step {step}")

    def checkpoint_record(completed_epochs: int, next_epoch: int, next_batch: int) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "model": domain, "image_size": params.image_size,
            "epoch": completed_epochs, "step": step, "best_val": best_val, "params": params.to_dict(),
            "position": {"epoch": next_epoch, "batch": next_batch, "world_size": procs.world_size,
                         "train_images": len(train_set), "seed": params.seed},
        }  # fmt: skip

    if epoch > total_epochs and procs.main:
        print(f"model {domain}: {last_path} already holds all {total_epochs} epochs; nothing to train")
    while epoch <= total_epochs:
        phase = "pretrain" if epoch <= params.pretrain_epochs else "gan"
        step_fn = l1_step if phase == "pretrain" else gan_step
        started, trained_images = time.perf_counter(), 0
        sampler.set_position(epoch, start_batch)
        n_batches = sampler.batches_per_epoch
        first_bad_step = torch.full((), NO_BAD_STEP, dtype=torch.int64, device=device)
        bar = tqdm(
            loader,
            desc=f"{domain} epoch {epoch}/{total_epochs} ({phase})",
            initial=start_batch,
            total=n_batches,
            disable=not show_progress,
        )
        for batch_index, (batch, flips) in enumerate(bar, start_batch + 1):
            l_norm, ab_norm = batch_to_model_io(batch, flips, device, gan.memory_format)
            losses = step_fn(gan, l_norm, ab_norm)
            step += 1
            trained_images += len(batch) * procs.world_size
            sums += losses
            first_bad_step = torch.where(
                (first_bad_step == NO_BAD_STEP) & ~torch.isfinite(losses).all(), step, first_bad_step
            )
            step_checkpoint = params.checkpoint_every and step % params.checkpoint_every == 0
            if batch_index % LOG_EVERY == 0 or batch_index == n_batches or step_checkpoint:
                raise_if_non_finite(first_bad_step, procs, domain, epoch, last_path)
                d, g_gan, g_l1 = (sums / batch_index).tolist()
                bar.set_postfix(D=f"{d:.3f}", G_GAN=f"{g_gan:.3f}", G_L1=f"{g_l1:.3f}")
            if step_checkpoint and batch_index < n_batches:
                record = checkpoint_record(epoch - 1, epoch, batch_index)
                record |= {"epoch_sums": mean_over_processes(sums, procs), "rng": rng_states(), **gan.state()}
                if procs.main:
                    save_atomic(record, last_path)
                barrier(procs)
        bar.close()
        means = (mean_over_processes(sums, procs) / n_batches).tolist()
        seconds = time.perf_counter() - started
        if procs.main:
            val_l1, val_de, grid = validate(
                gan.generator_module, val_loader, device, params.lambda_l1, params.n_examples
            )
            Image.fromarray(grid).save(out_dir / "samples" / f"epoch_{epoch:02d}.png")
            is_best = val_de < best_val
            best_val = min(best_val, val_de)
            loss_d, loss_g_gan, loss_g_l1 = means if phase == "gan" else (float("nan"), float("nan"), means[2])
            history.append(
                {"epoch": epoch, "phase": phase, "step": step, "loss_D": loss_d, "loss_G_GAN": loss_g_gan,
                 "loss_G_L1": loss_g_l1, "loss_G": loss_g_l1 + (0.0 if phase == "pretrain" else loss_g_gan),
                 "val_loss_G_L1": val_l1, "val_ciede2000": val_de, "images_per_s": trained_images / seconds,
                 "seconds": seconds, "best": is_best}
            )  # fmt: skip
            # history first: a crash before the checkpoint resumes from the previous one and drops this row
            write_csv_atomic(history_path, pd.DataFrame(history, columns=HISTORY_COLUMNS))
            record = checkpoint_record(epoch, epoch + 1, 0) | {"val_ciede2000": val_de, "val_loss_G_L1": val_l1}
            if is_best:  # the generator and its record: all that evaluation needs
                save_atomic(record | {"generator": gan.generator_module.state_dict()}, best_path)
            save_atomic(record | {"epoch_sums": torch.zeros(3), "rng": rng_states(), **gan.state()}, last_path)
            if params.keep_every and epoch % params.keep_every == 0:
                keep_epoch_copy(last_path, epoch)
        barrier(procs)
        epoch, start_batch = epoch + 1, 0
        sums = torch.zeros(3, device=device)
    return pd.read_csv(history_path) if history_path.is_file() else pd.DataFrame(columns=HISTORY_COLUMNS)


# --- launching ---------------------------------------------------------------------------------


def param_arguments(params: RunParams) -> list[str]:
    """``-p name=value`` for every parameter: the CLI rebuilds exactly ``params``."""
    args = []
    for name, value in params.to_dict().items():
        text = ",".join(value) if isinstance(value, list) else str(value)
        args += ["-p", f"{name}={text}"]
    return args


def torchrun_command(params: RunParams, run_dir: str | Path, domain: str, n_processes: int) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_processes}",
        "-m", "utils.train", "--run-dir", str(Path(run_dir).resolve()), "--domain", domain,
        *param_arguments(params),
    ]  # fmt: skip


def run_training(params: RunParams, run_dir: str | Path, domain: str, show_progress: bool = True) -> pd.DataFrame:
    """What the train notebook calls: in-process on one GPU or the CPU; with several GPUs, torchrun
    with one process per GPU, its output streamed here as it comes."""
    n_processes = gpu_processes(params)
    if n_processes == 1:
        return train(params, run_dir, domain, show_progress)
    command = torchrun_command(params, run_dir, domain, n_processes)
    print(f"training {domain} on {n_processes} GPUs: torchrun --nproc_per_node={n_processes} -m utils.train ...")
    kit_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
    return pd.read_csv(model_dir(run_dir, domain) / "history.csv")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m utils.train", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--domain", required=True)
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    params = stage_params("train", args.profile, args.run_dir, parse_overrides(args.param))
    domain = check_domain(args.domain)
    if "WORLD_SIZE" in os.environ:  # one process of a torchrun launch
        history = train(params, args.run_dir, domain)
    else:
        history = run_training(params, args.run_dir, domain)
    if processes_from_env().main:
        print(history.to_string(index=False))


if __name__ == "__main__":
    main()
