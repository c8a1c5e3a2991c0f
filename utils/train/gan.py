"""The pix2pix recipe: the two networks as trained (compiled, DDP-wrapped), their optimisers, and one step.

A step trains the discriminator on real and generated pairs (the generated ones detached), then the generator
against the frozen discriminator plus the L1 distance to the true ab (:func:`gan_step`); pretraining takes the
L1 step alone (:func:`l1_step`).
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from utils.core.parameters import RunParams
from utils.imaging import color
from utils.nets.distributed import ONE_PROCESS, Processes, barrier, seed_everything
from utils.nets.environment import amp_settings
from utils.nets.models import GANLoss, PatchDiscriminator, UNetGenerator

COMPILE_BACKEND = "inductor"  # tests use "aot_eager": the same graph capture, without code generation


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


def build_gan(params: RunParams, device: torch.device, procs: Processes = ONE_PROCESS) -> GANTraining:
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
