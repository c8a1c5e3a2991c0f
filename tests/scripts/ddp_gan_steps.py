"""Run by tests/test_train.py under ``torchrun --nproc_per_node=2`` on the CPU (gloo).

Each process builds the kit's GAN (DDP-wrapped), trains a few steps on its half of fixed global
batches, and saves its parameters to ``<out_dir>/rank<r>.pt``. With ``compiled`` the networks are
compiled (the aot_eager backend: graph capture without code generation) and each step runs under
bf16 autocast with a live GradScaler: the GPU recipe's mechanics, all together.

    python -m torch.distributed.run --nproc_per_node=2 tests/scripts/ddp_gan_steps.py OUT_DIR [compiled]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

import utils.train.gan
from utils.core import config
from utils.nets import distributed
from utils.train.gan import build_gan, train_on_batch

GLOBAL_BATCH, STEPS, SIZE = 8, 3, 32


def global_batches() -> torch.Tensor:
    """STEPS x GLOBAL_BATCH x SIZE x SIZE x 3 uint8 demo frames: the same in every process."""
    from utils.data.demo import demo_cartoon_frames

    frames = torch.stack(
        [torch.from_numpy(c.rgb.copy()) for c in demo_cartoon_frames(STEPS * GLOBAL_BATCH, SIZE, seed=0)]
    )
    return frames.view(STEPS, GLOBAL_BATCH, SIZE, SIZE, 3)


def main(out_dir: str, compiled: bool) -> None:
    procs = distributed.processes_from_env()
    dist.init_process_group("gloo")
    params = config.resolve_params(
        "demo",
        {"image_size": SIZE, "batch_size": GLOBAL_BATCH, "device": "cpu", "channels_last": False, "compile": compiled},
    )
    device = torch.device("cpu")
    utils.train.gan.COMPILE_BACKEND = "aot_eager"
    gan = build_gan(params, device, procs)
    if compiled:
        gan.amp_dtype, gan.scaler = torch.bfloat16, torch.amp.GradScaler("cpu", init_scale=2.0**10)
    ddp = gan.generator._orig_mod if compiled else gan.generator
    assert isinstance(ddp, torch.nn.parallel.DistributedDataParallel)
    half = GLOBAL_BATCH // procs.world_size
    for batch in global_batches():
        share = batch[procs.rank * half : (procs.rank + 1) * half]
        no_flip = torch.zeros(len(share), dtype=torch.bool)
        losses = train_on_batch(gan, share, no_flip)
        assert torch.isfinite(losses).all(), losses
    state = {f"generator.{k}": v for k, v in gan.generator_module.named_parameters()}
    state |= {f"discriminator.{k}": v for k, v in gan.discriminator_module.named_parameters()}
    state = {k: v.detach().clone() for k, v in state.items()}
    if compiled:
        from torch._dynamo.utils import counters

        state["scale"] = torch.tensor(gan.scaler.get_scale())
        state["graphs"] = torch.tensor(counters["stats"]["unique_graphs"])
    torch.save(state, Path(out_dir) / f"rank{procs.rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] == ["compiled"])
