"""The GAN training loop: pix2pix recipe, AMP, epoch checkpoints, resume. Also a CLI.

python -m utils.train --run-dir runs/demo --profile demo --domain cartoon [-p epochs=3 ...]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from utils import color
from utils.config import (
    RunParams,
    check_domain,
    parse_overrides,
    select_device,
    stage_params,
    write_csv_atomic,
)
from utils.data import training_sets
from utils.models import GANLoss, PatchDiscriminator, UNetGenerator

CHECKPOINT_FORMAT = "cross-domain-colorization/1"
HISTORY_COLUMNS = [
    "epoch",
    "step",
    "loss_D",
    "loss_G_GAN",
    "loss_G_L1",
    "loss_G",
    "val_loss_G_L1",
    "seconds",
    "best",
]


def model_dir(run_dir: str | Path, domain: str) -> Path:
    return Path(run_dir) / "models" / domain


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint of this kit (``weights_only=True``); anything else is a clear error."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: checkpoint format {found!r}, this kit reads {CHECKPOINT_FORMAT!r}")
    return ckpt


def rng_states() -> dict[str, Any]:
    state = np.random.get_state()
    return {
        "python": list(random.getstate()[1]),
        "numpy": [state[0], torch.from_numpy(state[1].copy()), *state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate((3, tuple(states["python"]), None))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(states["torch"].cpu())
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def amp_settings(device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a GradScaler is needed): bf16 where the GPU has it, else fp16."""
    if device.type != "cuda":
        return None, False
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True


def gan_step(
    generator: UNetGenerator,
    discriminator: PatchDiscriminator,
    gan_loss: GANLoss,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    l_norm: torch.Tensor,
    ab_norm: torch.Tensor,
    lambda_l1: float,
    autocast: AbstractContextManager,
) -> torch.Tensor:
    """One pix2pix step; returns the detached losses [D, G_GAN, G_L1] (no host sync)."""
    with autocast:
        fake = generator(l_norm)
    # 1. discriminator: real pairs -> 1, generated pairs -> 0 (generator not updated)
    discriminator.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    with autocast:
        loss_d = 0.5 * (
            gan_loss(discriminator(l_norm, fake.detach()), False) + gan_loss(discriminator(l_norm, ab_norm), True)
        )
    scaler.scale(loss_d).backward()
    scaler.step(opt_d)
    # 2. generator: fool the (frozen) discriminator and stay close to the true ab
    discriminator.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with autocast:
        loss_g_gan = gan_loss(discriminator(l_norm, fake), True)
        loss_g_l1 = F.l1_loss(fake.float(), ab_norm) * lambda_l1
    scaler.scale(loss_g_gan + loss_g_l1).backward()
    scaler.step(opt_g)
    scaler.update()
    return torch.stack([loss_d.float(), loss_g_gan.float(), loss_g_l1]).detach()


@torch.no_grad()
def validate(
    generator: UNetGenerator,
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    lambda_l1: float,
    n_samples: int,
) -> tuple[float, np.ndarray]:
    """Validation L1 (scaled by lambda_L1, like the train loss) and a sample grid.

    The grid is uint8 RGB: rows gray input / output / truth, one column per sample.
    """
    generator.eval()
    total, count = torch.zeros((), device=device), 0
    rows: list[list[torch.Tensor]] = [[], [], []]
    for batch in loader:
        l_norm, ab_norm = color.uint8_to_model_io(batch.to(device))
        fake = generator(l_norm).float()
        total += F.l1_loss(fake, ab_norm, reduction="sum") / ab_norm[0].numel()
        count += len(batch)
        if len(rows[0]) < n_samples:
            k = n_samples - len(rows[0])
            for row, ab in zip(rows, (torch.zeros_like(fake), fake, ab_norm)):
                row.extend(color.rgb_to_uint8(color.colorized_rgb(l_norm[:k], ab[:k])).cpu())
    generator.train()
    grid = np.concatenate([np.concatenate([img.numpy() for img in row], axis=1) for row in rows], axis=0)
    return float(total) / count * lambda_l1, grid


def build_models(params: RunParams, device: torch.device) -> tuple[UNetGenerator, PatchDiscriminator]:
    generator = UNetGenerator(pretrained=params.pretrained).to(device)
    discriminator = PatchDiscriminator().to(device)
    return generator, discriminator


def train(params: RunParams, run_dir: str | Path, domain: str, show_progress: bool = True) -> pd.DataFrame:
    """Train one model (``domain`` in cartoon, movie, mixed) in ``run_dir/models/<domain>/``.

    Resumes from ``checkpoint_last.pt`` when present and ``params.resume``; writes
    ``history.csv``, ``samples/epoch_NN.png``, ``checkpoint_last.pt`` and ``best.pt``.

    Returns:
        The training history, one row per epoch.
    """
    check_domain(domain)
    out_dir = model_dir(run_dir, domain)
    (out_dir / "samples").mkdir(parents=True, exist_ok=True)
    device = select_device(params)
    seed_everything(params.seed)
    amp_dtype, use_scaler = amp_settings(device)

    def autocast() -> AbstractContextManager:
        return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()

    # data: uint8 batches; Lab happens on the device, per batch
    train_set, val_set = training_sets(run_dir, domain, params)
    if len(train_set) < params.batch_size:
        raise ValueError(
            f"parameter 'batch_size' = {params.batch_size}: larger than the {len(train_set)} "
            f"training images of model {domain!r}"
        )
    loader_args = dict(num_workers=params.num_workers, pin_memory=device.type == "cuda")
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=params.eval_batch_size, **loader_args)

    generator, discriminator = build_models(params, device)
    gan_loss = GANLoss().to(device)
    betas = (params.beta1, params.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=params.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=params.lr, betas=betas)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)

    start_epoch, step, best_val = 1, 0, float("inf")
    history: list[dict[str, Any]] = []
    last_path, best_path, history_path = out_dir / "checkpoint_last.pt", out_dir / "best.pt", out_dir / "history.csv"
    if params.resume and last_path.is_file():
        ckpt = load_checkpoint(last_path, device)
        if ckpt["image_size"] != params.image_size or ckpt["model"] != domain:
            raise ValueError(
                f"{last_path}: trained for model {ckpt['model']!r} at {ckpt['image_size']} px; "
                f"this run asks for {domain!r} at {params.image_size} px (set resume=False to start over)"
            )
        generator.load_state_dict(ckpt["generator"])
        discriminator.load_state_dict(ckpt["discriminator"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_states(ckpt["rng"])
        start_epoch, step, best_val = ckpt["epoch"] + 1, ckpt["step"], ckpt["best_val"]
        if history_path.is_file():
            history = [r for r in pd.read_csv(history_path).to_dict("records") if r["epoch"] < start_epoch]
        print(f"resumed {domain} from {last_path} at epoch {ckpt['epoch']}")

    for epoch in range(start_epoch, params.epochs + 1):
        started = time.perf_counter()
        # the data order is a function of (seed, epoch): a resumed run sees the same batches
        order = torch.Generator().manual_seed(params.seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(
            train_set,
            batch_size=params.batch_size,
            shuffle=True,
            drop_last=True,
            generator=order,
            **loader_args,
        )
        sums = torch.zeros(3, device=device)
        bar = tqdm(loader, desc=f"{domain} epoch {epoch}/{params.epochs}", disable=not show_progress)
        for i, batch in enumerate(bar, 1):
            l_norm, ab_norm = color.uint8_to_model_io(batch.to(device, non_blocking=True))
            sums += gan_step(
                generator, discriminator, gan_loss, opt_g, opt_d, scaler, l_norm, ab_norm, params.lambda_l1, autocast()
            )
            step += 1
            if i % 10 == 0 or i == len(loader):  # one host sync per logging interval
                d, g_gan, g_l1 = (sums / i).tolist()
                bar.set_postfix(D=f"{d:.3f}", G_GAN=f"{g_gan:.3f}", G_L1=f"{g_l1:.3f}")
        means = (sums / len(loader)).tolist()
        if not all(np.isfinite(means)):
            raise FloatingPointError(
                f"model {domain}: non-finite loss in epoch {epoch} (by step {step}): D, G_GAN, G_L1 = "
                f"{means}; the last good checkpoint {last_path} is kept"
            )
        val_l1, grid = validate(generator, val_loader, device, params.lambda_l1, params.n_examples)
        Image.fromarray(grid).save(out_dir / "samples" / f"epoch_{epoch:02d}.png")
        is_best = val_l1 < best_val
        best_val = min(best_val, val_l1)
        loss_d, loss_g_gan, loss_g_l1 = means
        history.append(
            {"epoch": epoch, "step": step, "loss_D": loss_d, "loss_G_GAN": loss_g_gan, "loss_G_L1": loss_g_l1,
             "loss_G": loss_g_gan + loss_g_l1, "val_loss_G_L1": val_l1,
             "seconds": time.perf_counter() - started, "best": is_best}
        )  # fmt: skip
        # history first: a crash before the checkpoint resumes from the previous one and drops this row
        write_csv_atomic(history_path, pd.DataFrame(history, columns=HISTORY_COLUMNS))
        # the generator and its record: all that evaluation needs (best.pt)
        checkpoint = {
            "format": CHECKPOINT_FORMAT, "model": domain, "image_size": params.image_size, "epoch": epoch,
            "step": step, "val_loss_G_L1": val_l1, "best_val": best_val, "params": params.to_dict(),
            "generator": generator.state_dict(),
        }  # fmt: skip
        if is_best:
            save_atomic(checkpoint, best_path)
        save_atomic(
            {**checkpoint, "discriminator": discriminator.state_dict(), "opt_g": opt_g.state_dict(),
             "opt_d": opt_d.state_dict(), "scaler": scaler.state_dict(), "rng": rng_states()},
            last_path,
        )  # fmt: skip
    if start_epoch > params.epochs:
        print(f"model {domain}: {last_path} already holds all {params.epochs} epochs; nothing to train")
    return pd.read_csv(history_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m utils.train", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--domain", required=True)
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    params = stage_params("train", args.profile, args.run_dir, parse_overrides(args.param))
    history = train(params, args.run_dir, check_domain(args.domain))
    print(history.to_string(index=False))


if __name__ == "__main__":
    main()
