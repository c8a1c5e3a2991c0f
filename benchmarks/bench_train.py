"""Training speed: the kit's loop vs a plain fp32 reference loop, same model and batch size, one run.

    python benchmarks/bench_train.py [--size 256] [--batch-size 16] [--steps 20] [--warmup 5]
                                     [--repeats 3] [--workers 2] [--compile]

Kit (utils.train): uint8 shard batches, pinned, to the device; flip, Lab conversion and
normalisation on the device per batch; mixed precision (fp16 + GradScaler on a T4, bf16 from
Ampere on; fp32 on the CPU); channels_last; losses kept on the device (``build_gan`` +
``batch_to_model_io`` + ``gan_step``, what ``train()`` runs).
Reference (the tutorial recipe the paper follows): a Dataset that flips and converts every sample
with ``skimage.color.rgb2lab`` on the CPU in DataLoader workers; fp32; contiguous tensors; every
loss read with ``.item()`` each step for the loss meters. Same UNetGenerator and PatchDiscriminator.

Each loop runs in its own process, so each peak memory is its own (CUDA: max allocated; CPU: peak
RSS of the training process). Prints images/s (median of ``--repeats`` timed windows after
``--warmup`` steps), peak memory and the ratio; FLOPs per training image (torch's FlopCounterMode
over one kit step) and, on a GPU of known peak, the fraction of it reached; and the wall time the
paper profile (3 models) would take at the measured speed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import rgb2lab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils import config, train  # noqa: E402
from utils.data import ShardDataset  # noqa: E402
from utils.models import PatchDiscriminator, UNetGenerator  # noqa: E402
from utils.sources import demo_cartoon_frames  # noqa: E402

# dense fp16/bf16 tensor-core peak, FLOP/s, from the vendors' data sheets
GPU_PEAK_FLOPS = {"T4": 65e12, "A100": 312e12, "H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "L4": 121e12,
                  "A10G": 70e12, "V100": 125e12, "P100": 18.7e12}  # fmt: skip
T4_PEAK_FLOPS = GPU_PEAK_FLOPS["T4"]


def write_shard(path: Path, n_images: int, size: int) -> None:
    """Demo cartoon frames as a uint8 .npy shard, read back memory-mapped like the kit's data."""
    np.save(path, np.stack([c.rgb for c in demo_cartoon_frames(n_images, size, seed=0)]))


class TutorialDataset(torch.utils.data.Dataset):
    """Per sample, on the CPU: random horizontal flip, rgb2lab, normalise (L/50 - 1, ab/110)."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = np.array(self.images[i])
        if np.random.rand() < 0.5:
            image = image[:, ::-1]
        lab = torch.from_numpy(rgb2lab(image).astype("float32")).permute(2, 0, 1)
        return lab[[0]] / 50.0 - 1.0, lab[[1, 2]] / 110.0


def reference_loop(images: np.ndarray, args: argparse.Namespace, device: torch.device):
    """The tutorial's training loop, fp32, one step per yielded item."""
    torch.manual_seed(0)
    generator, discriminator = UNetGenerator().to(device), PatchDiscriminator().to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    loader = torch.utils.data.DataLoader(
        TutorialDataset(images), batch_size=args.batch_size, shuffle=True, drop_last=True,
        num_workers=args.workers, pin_memory=device.type == "cuda",
    )  # fmt: skip
    meters: dict[str, list[float]] = {"D": [], "G_GAN": [], "G_L1": []}
    while True:
        for l_norm, ab_norm in loader:
            l_norm, ab_norm = l_norm.to(device), ab_norm.to(device)
            fake = generator(l_norm)
            discriminator.requires_grad_(True)
            opt_d.zero_grad()
            fake_logits, real_logits = discriminator(l_norm, fake.detach()), discriminator(l_norm, ab_norm)
            loss_d = 0.5 * (
                bce(fake_logits, torch.zeros_like(fake_logits)) + bce(real_logits, torch.ones_like(real_logits))
            )
            loss_d.backward()
            opt_d.step()
            discriminator.requires_grad_(False)
            opt_g.zero_grad()
            logits = discriminator(l_norm, fake)
            loss_g_gan, loss_g_l1 = bce(logits, torch.ones_like(logits)), F.l1_loss(fake, ab_norm) * 100.0
            (loss_g_gan + loss_g_l1).backward()
            opt_g.step()
            for name, loss in zip(meters, (loss_d, loss_g_gan, loss_g_l1)):
                meters[name].append(loss.item())
            yield len(l_norm)


def kit_params(args: argparse.Namespace) -> config.RunParams:
    return config.resolve_params(
        "demo",
        {"image_size": args.size, "batch_size": args.batch_size, "num_workers": args.workers, "compile": args.compile},
    )


def kit_loop(images: np.ndarray, args: argparse.Namespace, device: torch.device):
    """The kit's step exactly as ``train()`` runs it."""
    params = kit_params(args)
    gan = train.build_gan(params, device)
    dataset = ShardDataset(images, np.arange(len(images)))
    sampler = train.EpochSampler(dataset, train.Processes(), params.seed, params.batch_size, params.flip)
    loader = torch.utils.data.DataLoader(
        train.FlippableImages(dataset), batch_size=params.batch_size, sampler=sampler, num_workers=params.num_workers,
        pin_memory=device.type == "cuda", persistent_workers=params.num_workers > 0,
    )  # fmt: skip
    sums = torch.zeros(3, device=device)
    epoch = 0
    while True:
        epoch += 1
        sampler.set_position(epoch, 0)
        for i, (batch, flips) in enumerate(loader, 1):
            sums += train.gan_step(gan, *train.batch_to_model_io(batch, flips, device, gan.memory_format))
            if i % train.LOG_EVERY == 0:
                sums.tolist()
            yield len(batch)


def kit_flops_per_image(args: argparse.Namespace, device: torch.device) -> float:
    """FLOPs of one training step (G forward, three D forwards, both backwards) per image."""
    from torch.utils.flop_counter import FlopCounterMode

    gan = train.build_gan(kit_params(args), device)
    batch = torch.from_numpy(np.stack([c.rgb for c in demo_cartoon_frames(args.batch_size, args.size, seed=1)]))
    flips = torch.zeros(args.batch_size, dtype=torch.bool)
    counter = FlopCounterMode(display=False)
    with counter:
        train.gan_step(gan, *train.batch_to_model_io(batch, flips, device, gan.memory_format))
    return counter.get_total_flops() / args.batch_size


def measure(which: str, shard: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run in a fresh process: warm up, then ``repeats`` timed windows of ``steps`` steps."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = np.load(shard, mmap_mode="r")
    loop = (kit_loop if which == "kit" else reference_loop)(images, args, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        next(loop)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rates = []
    for _ in range(args.repeats):
        sync()
        started, n = time.perf_counter(), 0
        for _ in range(args.steps):
            n += next(loop)
        sync()
        rates.append(n / (time.perf_counter() - started))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {"images_per_s": statistics.median(rates), "peak_mib": peak, "device": str(device)}
    if which == "kit":
        result["flops_per_image"] = kit_flops_per_image(args, device)
        result["gpu"] = torch.cuda.get_device_name() if device.type == "cuda" else None
        result["precision"] = str(train.amp_settings(device)[0] or "fp32")
    return result


def _measure_into(queue: multiprocessing.Queue, which: str, shard: str, args: argparse.Namespace) -> None:
    queue.put(measure(which, shard, args))


def in_fresh_process(which: str, shard: str, args: argparse.Namespace) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure_into, args=(queue, which, shard, args))
    process.start()
    result = queue.get()
    process.join()
    return result


def peak_flops(gpu: str | None) -> float | None:
    if gpu is None:
        return None
    return next((flops for name, flops in GPU_PEAK_FLOPS.items() if name in gpu), None)


def paper_hours(images_per_s: float) -> float:
    """Three models x (epochs x training images) of the paper profile, at ``images_per_s``."""
    paper = config.resolve_params("paper", {"cartoon_dataset": "a/b", "movie_dataset": "a/b"})
    train_images = paper.train_per_domain * (1 - paper.val_fraction)
    return 3 * paper.epochs * train_images / images_per_s / 3600


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256 if cuda else 128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20 if cuda else 3, help="steps per timed window")
    parser.add_argument("--warmup", type=int, default=10 if cuda else 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers, the same for both loops")
    parser.add_argument("--compile", action="store_true", help="the kit's loop with torch.compile")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        shard = str(Path(tmp) / "train.npy")
        needed = args.batch_size * (args.warmup + args.steps * args.repeats)
        write_shard(Path(shard), min(max(needed, 4 * args.batch_size), 2048), args.size)
        reference = in_fresh_process("reference", shard, args)
        kit = in_fresh_process("kit", shard, args)

    print(f"device: {kit['gpu'] or 'CPU'} ({kit['device']}), {torch.get_num_threads()} torch threads; "
          f"{args.size} px, batch {args.batch_size}, {args.workers} DataLoader workers, "
          f"median of {args.repeats} windows of {args.steps} steps after {args.warmup} warm-up steps")  # fmt: skip
    memory = "peak CUDA memory" if cuda else "peak RSS"
    for name, r in (("reference (fp32, per-sample CPU Lab, .item())", reference), (f"kit ({kit['precision']})", kit)):
        print(f"{name:48s} {r['images_per_s']:8.1f} images/s   {memory} {r['peak_mib']:8.0f} MiB")
    ratio = kit["images_per_s"] / reference["images_per_s"]
    print(f"ratio kit / reference: {ratio:.2f}x speed, {kit['peak_mib'] / reference['peak_mib']:.2f}x memory"
          f"{'   (target on a GPU: >= 2.5x)' if cuda else '   (CPU: reported only; the target is for a GPU)'}")  # fmt: skip
    flops = kit["flops_per_image"]
    print(f"FLOPs per training image (kit step, {args.size} px): {flops / 1e9:.1f} GFLOP")
    peak = peak_flops(kit["gpu"])
    if peak:
        print(f"fraction of the GPU's peak ({peak / 1e12:.0f} TFLOP/s): {flops * kit['images_per_s'] / peak:.1%}")
    if args.size == 256:
        print(f"paper profile (3 models x 20 epochs x 7200 images) at the kit's speed here: "
              f"{paper_hours(kit['images_per_s']):.1f} h")  # fmt: skip
    t4_flops_256 = flops * (256 / args.size) ** 2
    for utilisation in (0.10, 0.25):
        images_per_s = 2 * utilisation * T4_PEAK_FLOPS / t4_flops_256
        print(f"projection, Kaggle T4 x2 at {utilisation:.0%} of fp16 peak each: {images_per_s:.0f} images/s, "
              f"paper profile {paper_hours(images_per_s):.1f} h")  # fmt: skip


if __name__ == "__main__":
    main()
