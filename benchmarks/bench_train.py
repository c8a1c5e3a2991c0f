"""Training speed: the kit's loop vs a plain fp32 reference loop, same networks, one run.

    python benchmarks/bench_train.py [--size 256] [--batch-sizes 16,32,64,128] [--compile]
                                     [--window-s 5] [--warmup 5] [--repeats 3] [--workers 2] [--json PATH]

Kit: the loop ``train()`` runs, set up by the same functions (``train.build_gan``,
``train.training_loader``, ``train.train_on_batch``): uint8 shard batches, pinned, to the device;
flip, Lab and normalisation on the device per batch; mixed precision (fp16 + GradScaler on a T4,
bf16 from Ampere on; fp32 on the CPU); channels_last; fused Adam; losses read every
``train.LOG_EVERY`` steps. Measured at each ``--batch-sizes`` value (the paper's is 16), one
process for all of them.
Reference (the tutorial recipe the paper follows): a Dataset that flips and converts every sample
with ``skimage.color.rgb2lab`` on the CPU in DataLoader workers; fp32; contiguous tensors; every
loss read with ``.item()`` each step. Same UNetGenerator and PatchDiscriminator. Measured at the
paper's batch only: at large batches its per-sample CPU work would take minutes.
With ``--compile`` the kit is also measured compiled (``compile=True``) at the paper's batch and
at the best eager batch: the compilation time, and whether it pays over a paper run.

Every figure is timed in windows of ``--window-s`` seconds (median of ``--repeats``, after
``--warmup`` steps), so the whole benchmark takes a bounded time, and printed as soon as it is
measured (benchmarks/results.py; ``--json`` for gpu_check). Also printed: peak memory (CUDA: max
allocated per batch size; CPU: peak RSS of the process), FLOPs per training image (torch's
FlopCounterMode over one kit step), the fraction of the GPU's dense half-precision peak, the
paper profile's training time at the measured speed, and a Kaggle T4 x2 projection.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import rgb2lab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results import Results, add_json_argument  # noqa: E402
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


def reference_loop(images: np.ndarray, batch_size: int, workers: int, device: torch.device) -> Iterator[int]:
    """The tutorial's training loop, fp32, one step per yielded item."""
    torch.manual_seed(0)
    generator, discriminator = UNetGenerator().to(device), PatchDiscriminator().to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    loader = torch.utils.data.DataLoader(
        TutorialDataset(images), batch_size=batch_size, shuffle=True, drop_last=True,
        num_workers=workers, pin_memory=device.type == "cuda",
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


PAPER_BATCH = 16
PAPER_IMAGES_PER_MODEL = 20 * 7200  # the paper profile: 20 epochs x 7,200 training images (8,000 less validation)


def kit_params(size: int, batch_size: int, workers: int, compile: bool) -> config.RunParams:
    return config.resolve_params(
        "demo", {"image_size": size, "batch_size": batch_size, "num_workers": workers, "compile": compile}
    )


def kit_loop(images: np.ndarray, params: config.RunParams, device: torch.device) -> Iterator[int]:
    """The kit's training loop, set up by the functions ``train()`` uses; one step per yielded item."""
    gan = train.build_gan(params, device)
    loader, sampler = train.training_loader(ShardDataset(images, np.arange(len(images))), params, train.Processes(),
                                            device)  # fmt: skip
    sums = torch.zeros(3, device=device)
    epoch = 0
    while True:
        epoch += 1
        sampler.set_position(epoch, 0)
        for i, (batch, flips) in enumerate(loader, 1):
            sums += train.train_on_batch(gan, batch, flips)
            if i % train.LOG_EVERY == 0:
                sums.tolist()  # the loop's sync point
            yield len(batch)


def kit_flops_per_image(size: int, device: torch.device) -> float:
    """FLOPs of one training step (G forward, three D forwards, both backwards) per image."""
    from torch.utils.flop_counter import FlopCounterMode

    params = kit_params(size, PAPER_BATCH, 0, False)
    gan = train.build_gan(params, device)
    batch = torch.from_numpy(np.stack([c.rgb for c in demo_cartoon_frames(PAPER_BATCH, size, seed=1)]))
    counter = FlopCounterMode(display=False)
    with counter:
        train.train_on_batch(gan, batch, torch.zeros(PAPER_BATCH, dtype=torch.bool))
    return counter.get_total_flops() / PAPER_BATCH


def timed_rate(loop: Iterator[int], args: argparse.Namespace, sync: Callable[[], None]) -> tuple[float, float]:
    """(images/s, median of ``repeats`` windows of ``window_s`` seconds; seconds the warm-up steps took)."""
    sync()
    started = time.perf_counter()
    for _ in range(args.warmup):
        next(loop)
    sync()
    warmup_s = time.perf_counter() - started
    rates = []
    for _ in range(args.repeats):
        started, n = time.perf_counter(), 0
        while time.perf_counter() - started < args.window_s or n == 0:
            n += next(loop)
        sync()
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates), warmup_s


def measure(which: str, shard: str, args: argparse.Namespace, batch_sizes: list[int], compile: bool) -> list[dict]:
    """Run in a fresh process: one row per batch size (images/s, warm-up seconds, peak memory)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = np.load(shard, mmap_mode="r")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = []
    for batch_size in batch_sizes:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        if which == "kit":
            loop = kit_loop(images, kit_params(args.size, batch_size, args.workers, compile), device)
        else:
            loop = reference_loop(images, batch_size, args.workers, device)
        rate, warmup_s = timed_rate(loop, args, sync)
        loop.close()
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        rows.append({"batch_size": batch_size, "images_per_s": rate, "warmup_s": warmup_s, "peak_mib": peak})
        del loop
    return rows


def _measure_into(queue: multiprocessing.Queue, *args: Any) -> None:
    try:
        queue.put(measure(*args))
    except BaseException as err:  # noqa: BLE001 - reported by the parent, which names the loop
        queue.put(err)
        raise


def in_fresh_process(which: str, shard: str, args: argparse.Namespace, batch_sizes: list[int], compile: bool = False):
    """Each loop in its own process: its peak memory is its own, and a crash names the loop."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure_into, args=(queue, which, shard, args, batch_sizes, compile))
    process.start()
    result = queue.get()
    process.join()
    if isinstance(result, BaseException):
        raise RuntimeError(f"bench_train: the {which} loop failed: {type(result).__name__}: {result}") from result
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
    parser.add_argument("--batch-sizes", default="16,32,64,128" if cuda else "16",
                        help="comma-separated; the kit is measured at each, the reference at 16 (the paper's)")  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="also the kit compiled, at 16 and the best batch")
    parser.add_argument("--window-s", type=float, default=5.0 if cuda else 20.0, help="seconds per timed window")
    parser.add_argument("--warmup", type=int, default=10 if cuda else 1, help="steps before timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers, the same for both loops")
    add_json_argument(parser)
    args = parser.parse_args()
    batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",")})
    paper_batch = PAPER_BATCH if PAPER_BATCH in batch_sizes else batch_sizes[0]
    device = torch.device("cuda" if cuda else "cpu")
    gpu = torch.cuda.get_device_name() if cuda else None
    results = Results("bench_train", args.json)
    results.describe(device=gpu or "CPU", torch=torch.__version__, precision=str(config.amp_settings(device)[0] or "fp32"),
                     size=args.size, batch_sizes=args.batch_sizes, workers=args.workers, threads=torch.get_num_threads(),
                     timing=f"median of {args.repeats} windows of {args.window_s:g} s after {args.warmup} warm-up steps")  # fmt: skip
    memory = "peak CUDA memory" if cuda else "peak RSS"
    peak = peak_flops(gpu)
    flops = results.add(
        f"FLOPs per training image, {args.size} px", kit_flops_per_image(args.size, device) / 1e9, "GFLOP"
    )
    flops *= 1e9

    with tempfile.TemporaryDirectory() as tmp:
        shard = str(Path(tmp) / "train.npy")
        write_shard(Path(shard), min(max(8 * max(batch_sizes), 64), 2048), args.size)
        reference = in_fresh_process("reference", shard, args, [paper_batch])[0]
        results.add(f"reference images/s, batch {paper_batch} (fp32, CPU Lab, .item())", reference["images_per_s"],
                    "images/s", note=f"{memory} {reference['peak_mib']:.0f} MiB")  # fmt: skip
        eager = {}
        for row in in_fresh_process("kit", shard, args, batch_sizes):
            eager[row["batch_size"]] = row["images_per_s"]
            results.add(f"kit images/s, batch {row['batch_size']}", row["images_per_s"], "images/s",
                        note=f"{memory} {row['peak_mib']:.0f} MiB")  # fmt: skip
        ratio = eager[paper_batch] / reference["images_per_s"]
        results.add(f"kit vs reference, batch {paper_batch}", ratio, "x", *((">= 3x", ratio >= 3) if cuda else ()),
                    note="" if cuda else "CPU: reported only, the target is for a GPU")  # fmt: skip
        best = max(eager, key=eager.get)
        results.add("best batch (eager)", best, "images", note=f"{eager[best]:.1f} images/s")
        if peak:
            results.add(f"fraction of {gpu}'s dense half-precision peak, batch {best}, eager",
                        100 * flops * eager[best] / peak, "%")  # fmt: skip
        if args.compile:
            compiled_sizes = sorted({paper_batch, best})
            rows = in_fresh_process("kit", shard, args, compiled_sizes, compile=True)
            compiled = {r["batch_size"]: r["images_per_s"] for r in rows}
            for row in rows:
                results.add(f"kit compiled images/s, batch {row['batch_size']}", row["images_per_s"], "images/s",
                            note=f"{memory} {row['peak_mib']:.0f} MiB")  # fmt: skip
            first = rows[0]  # the paper's batch: its warm-up holds the compilation
            compile_s = max(0.0, first["warmup_s"] - args.warmup * first["batch_size"] / compiled[first["batch_size"]])
            results.add(f"compilation time, batch {first['batch_size']} (warm-up less its steps)", compile_s, "s")
            saved = PAPER_IMAGES_PER_MODEL * (1 / eager[paper_batch] - 1 / compiled[paper_batch])
            results.add(f"compile: time saved per paper model at batch {paper_batch}, less compilation",
                        saved - compile_s, "s", note=f"pays if > 0 ({PAPER_IMAGES_PER_MODEL} images per model)")  # fmt: skip
            best_compiled = max(compiled, key=compiled.get)
            if peak:
                fraction = 100 * flops * compiled[best_compiled] / peak
                results.add(f"fraction of {gpu}'s dense half-precision peak, batch {best_compiled}, compiled",
                            fraction, "%", ">= 10%", fraction >= 10)  # fmt: skip

    if args.size == 256:
        results.add(f"paper profile (3 models x {PAPER_IMAGES_PER_MODEL} images) here, batch {paper_batch}",
                    paper_hours(eager[paper_batch]), "h")  # fmt: skip
    t4_flops_256 = flops * (256 / args.size) ** 2
    if peak:  # measured on a GPU: scale this card's speed by the peak ratio, then two T4s, one model each
        t4_images_per_s = eager[paper_batch] * (T4_PEAK_FLOPS / peak) * (args.size / 256) ** 2
        results.add("projection, Kaggle T4 x2 (measured speed x peak ratio), paper profile",
                    paper_hours(2 * t4_images_per_s), "h", note=f"{t4_images_per_s:.0f} images/s per T4")  # fmt: skip
    for utilisation in (0.10, 0.25):
        images_per_s = 2 * utilisation * T4_PEAK_FLOPS / t4_flops_256
        results.add(f"projection, Kaggle T4 x2 at an assumed {utilisation:.0%} of fp16 peak, paper profile",
                    paper_hours(images_per_s), "h", note=f"{images_per_s:.0f} images/s")  # fmt: skip
    results.write()


if __name__ == "__main__":
    main()
