"""Training speed: the kit's loop vs a plain fp32 reference loop, same networks, one run.

    python benchmarks/bench_train.py [--size 256] [--batch-sizes 16,32,64,128] [--compile]
                                     [--compile-batch-sizes 16,B] [--window-s 5] [--warmup 5] [--repeats 3]
                                     [--workers 2] [--time-limit S] [--shard-images N] [--json PATH]

Kit: the loop ``train()`` runs, set up by the same functions (``train.build_gan``,
``train.training_loader``, ``train.train_on_batch``): uint8 shard batches, pinned, to the device;
flip, Lab and normalisation on the device per batch; mixed precision (fp16 + GradScaler on a T4,
bf16 from Ampere on; fp32 on the CPU); channels_last; fused Adam; losses read every
``training.LOG_EVERY`` steps and at an epoch's end (the loop's sync points). Measured at each
``--batch-sizes`` value (the paper's is 16), one process for all of them.
Reference (the tutorial recipe the paper follows): a Dataset that flips and converts every sample
with ``skimage.color.rgb2lab`` on the CPU in DataLoader workers; fp32; contiguous tensors; every
loss read with ``.item()`` each step. Same UNetGenerator and PatchDiscriminator. Measured at the
paper's batch only: at large batches its per-sample CPU work would take minutes.
With ``--compile`` the kit is also measured compiled (``compile=True``) at each
``--compile-batch-sizes`` value (default: the paper's batch and the best eager batch), each in its
own process (one static compilation each): the compilation time, and whether it pays over a paper run.

Order: the kit eager, the reference, the kit compiled. Each loop runs in a fresh process, which
sends every row the moment it is measured; a batch that runs out of memory is a row (without a
value) and the larger ones are not tried. ``--time-limit`` ends a loop that outlives it, and the
rows it had not measured say so; a process that dies is named with its exit code.

Every figure is timed in windows of at least ``--window-s`` seconds (median of ``--repeats``, after
``--warmup`` steps), each ending right after a sync point, so every window holds the loop's host
syncs (by default the shard holds ``LOG_EVERY`` batches of the largest batch size, so an epoch
holds the training's sync points as a paper epoch does). Each figure is printed as soon as it is measured
(benchmarks/results.py; ``--json`` for gpu_check). Also printed: peak memory (CUDA: max allocated
per batch size; CPU: peak RSS of the process), FLOPs per training image (torch's FlopCounterMode
over one kit step), the fraction of the GPU's dense half-precision peak (a row says so when the
card is not in ``GPU_PEAK_FLOPS``), the paper profile's training time at the measured speed, and
a Kaggle T4 x2 projection: from a measured GPU, its speed scaled by the two cards' peak ratio, and, as a bracket,
at an assumed 10% and 25% of the T4's fp16 peak.

Targets, on a GPU at 256 px: the kit at least 3 times the reference at the paper's batch of 16; compiled, at
least 10% of the card's dense half-precision peak. Defaults: on a GPU 256 px and batches 16, 32, 64 and 128; on a
CPU 128 px and batch 16, where the targets do not apply and the figures are reported only.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import utils.train.gan  # noqa: E402
from benchmarks import children  # noqa: E402
from benchmarks.harness import Deadline, TutorialDataset, gpu_name, synchronizer  # noqa: E402
from benchmarks.results import Results, add_json_argument  # noqa: E402
from utils.core import config
from utils.core.parameters import RunParams
from utils.data.datasets import ShardDataset  # noqa: E402
from utils.data.demo import demo_cartoon_frames  # noqa: E402
from utils.nets import distributed, environment
from utils.nets.models import PatchDiscriminator, UNetGenerator  # noqa: E402
from utils.train import (
    batches,
    training,  # noqa: E402
)
from utils.train.gan import build_gan, train_on_batch  # noqa: E402

# Dense fp16/bf16 tensor-core peak, FLOP/s, by normalised device name (normalised_gpu_name). From NVIDIA's
# data sheets, without the 2:4 sparsity they quote first: T4 65 (mixed precision), P100 PCIe 18.7 (plain
# fp16: no tensor cores), V100 SXM2 125 / PCIe 112, A10 125, A100 (SXM4 and PCIe) 312, L4 121, L40 181,
# L40S 362, H100 SXM 989, H100 PCIe 756, H100 NVL 835, H200 989, H200 NVL 835 TFLOPS.
GPU_PEAK_FLOPS = {
    "t4": 65e12,
    "p100-pcie-16gb": 18.7e12,
    "v100-sxm2-16gb": 125e12,
    "v100-sxm2-32gb": 125e12,
    "v100-pcie-16gb": 112e12,
    "v100-pcie-32gb": 112e12,
    "a10": 125e12,
    "a100-sxm4-40gb": 312e12,
    "a100-sxm4-80gb": 312e12,
    "a100-pcie-40gb": 312e12,
    "a100 80gb pcie": 312e12,
    "l4": 121e12,
    "l40": 181e12,
    "l40s": 362e12,
    "h100 80gb hbm3": 989e12,  # the SXM card
    "h100 pcie": 756e12,
    "h100 nvl": 835e12,
    "h200": 989e12,
    "h200 nvl": 835e12,
}
T4_PEAK_FLOPS = GPU_PEAK_FLOPS["t4"]
PAPER_BATCH = 16
PAPER_IMAGES_PER_MODEL = 20 * 7200  # the paper profile: 20 epochs x 7,200 training images (8,000 less validation)
UNIQUE_FRAMES = 256  # a larger shard repeats them: the loop's speed does not depend on the pictures


def normalised_gpu_name(name: str) -> str:
    """``"NVIDIA H100 80GB HBM3"`` -> ``"h100 80gb hbm3"``, ``"Tesla T4"`` -> ``"t4"``: lower case, single
    spaces, without the vendor and brand words torch's device names start with."""
    return re.sub(r"^((nvidia|tesla)\s+)+", "", " ".join(name.lower().split()))


def peak_flops(gpu: str) -> float | None:
    return GPU_PEAK_FLOPS.get(normalised_gpu_name(gpu))


def write_shard(path: Path, n_images: int, size: int) -> None:
    """Demo cartoon frames as a uint8 .npy shard, read back memory-mapped like the kit's data."""
    frames = np.stack([c.rgb for c in demo_cartoon_frames(min(n_images, UNIQUE_FRAMES), size, seed=0)])
    np.save(path, np.resize(frames, (n_images, *frames.shape[1:])))


def reference_loop(
    images: np.ndarray, batch_size: int, workers: int, device: torch.device
) -> Iterator[tuple[int, bool]]:
    """The tutorial's training loop, fp32, one step per yielded (images, synced): it syncs every step."""
    torch.manual_seed(0)
    generator, discriminator = UNetGenerator().to(device), PatchDiscriminator().to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    loader = torch.utils.data.DataLoader(
        TutorialDataset(images, flip=True), batch_size=batch_size, shuffle=True, drop_last=True,
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
            yield len(l_norm), True


def kit_params(size: int, batch_size: int, workers: int, compile: bool) -> RunParams:
    return config.resolve_params(
        "demo", {"image_size": size, "batch_size": batch_size, "num_workers": workers, "compile": compile}
    )


def kit_loop(images: np.ndarray, params: RunParams, device: torch.device) -> Iterator[tuple[int, bool]]:
    """The kit's training loop, set up by the functions ``train()`` uses; one step per yielded
    (images, synced), syncing where ``train()`` does: every LOG_EVERY batches and at an epoch's end."""
    gan = build_gan(params, device)
    loader, sampler = batches.training_loader(ShardDataset(images, np.arange(len(images))), params, distributed.Processes(),
                                            device)  # fmt: skip
    sums = torch.zeros(3, device=device)
    epoch = 0
    while True:
        epoch += 1
        sampler.set_position(epoch, 0)
        for i, (batch, flips) in enumerate(loader, 1):
            sums += train_on_batch(gan, batch, flips)
            synced = i % training.LOG_EVERY == 0 or i == sampler.batches_per_epoch
            if synced:
                sums.tolist()  # the loop's sync point
            yield len(batch), synced


def kit_flops_per_image(size: int, device: torch.device) -> float:
    """FLOPs of one training step (G forward, three D forwards, both backwards) per image: counted over a
    batch of two (they grow with the batch in proportion; BatchNorm needs two), so counting is quick anywhere."""
    from torch.utils.flop_counter import FlopCounterMode

    n = 2
    gan = build_gan(kit_params(size, n, 0, False), device)
    batch = torch.from_numpy(np.stack([c.rgb for c in demo_cartoon_frames(n, size, seed=1)]))
    counter = FlopCounterMode(display=False)
    with counter:
        train_on_batch(gan, batch, torch.zeros(n, dtype=torch.bool))
    del gan
    if device.type == "cuda":  # the loops run in their own processes: leave them the memory
        torch.cuda.empty_cache()
    return counter.get_total_flops() / n


def timed_rate(loop: Iterator[tuple[int, bool]], args: argparse.Namespace, sync: Callable[[], None]) -> dict:
    """images/s (median of ``repeats`` windows of at least ``window_s`` seconds, each ending right after a
    sync point), and the warm-up's seconds and images."""
    sync()
    started, warmup_images = time.perf_counter(), 0
    for _ in range(args.warmup):
        warmup_images += next(loop)[0]
    sync()
    warmup_s = time.perf_counter() - started
    rates = []
    for _ in range(args.repeats):
        started, n = time.perf_counter(), 0
        while True:
            images, synced = next(loop)
            n += images
            if synced and time.perf_counter() - started >= args.window_s:
                break
        sync()
        rates.append(n / (time.perf_counter() - started))
    return {"images_per_s": statistics.median(rates), "warmup_s": warmup_s, "warmup_images": warmup_images}


def measure(which: str, shard: str, args: argparse.Namespace, batch_size: int, compile: bool) -> dict:
    """One row: images/s, the warm-up, peak memory (CUDA: of this batch size; CPU: of the process)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = np.load(shard, mmap_mode="r")
    sync = synchronizer(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if which == "kit":
        loop = kit_loop(images, kit_params(args.size, batch_size, args.workers, compile), device)
    else:
        loop = reference_loop(images, batch_size, args.workers, device)
    try:
        row = {"batch_size": batch_size, **timed_rate(loop, args, sync)}
    finally:
        loop.close()
    if compile:
        row["backend"] = utils.train.gan.COMPILE_BACKEND
    if device.type == "cuda":
        row["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        row["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return row


def measure_into(queue: Any, which: str, shard: str, args: argparse.Namespace, batch_sizes: list[int],
                 compile: bool, backend: str) -> None:  # fmt: skip
    """A fresh process: one ("row", row) message per batch size as it is measured, then ("done", None);
    a batch out of memory is a row with its "error", and the larger ones are not tried."""
    utils.train.gan.COMPILE_BACKEND = backend  # the parent's (tests switch it)
    try:
        for batch_size in batch_sizes:
            try:
                queue.put(("row", measure(which, shard, args, batch_size, compile)))
            except torch.OutOfMemoryError as err:
                queue.put(
                    ("row", {"batch_size": batch_size, "error": f"out of memory: {(str(err).splitlines() or [''])[0]}"})
                )
                gc.collect()
                torch.cuda.empty_cache()
                break
        queue.put(("done", None))
    except BaseException as err:  # reported by the parent, which names the loop
        queue.put(("error", f"{type(err).__name__}: {err}"))
        raise


def rows_from_fresh_process(
    which: str, shard: str, args: argparse.Namespace, batch_sizes: list[int], compile: bool, deadline: Deadline
) -> Iterator[dict]:
    """Each row of ``measure_into`` as it comes; raises children.ChildFailed when the process fails, dies,
    or outlives ``deadline``, and ends the process either way."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=measure_into, args=(queue, which, shard, args, batch_sizes, compile, utils.train.gan.COMPILE_BACKEND)
    )
    process.start()
    try:
        while True:
            kind, payload = children.receive(queue, [process], deadline.left(), f"the {which} loop")
            if kind == "done":
                return
            if kind == "error":
                raise children.ChildFailed(f"the {which} loop failed: {payload}")
            yield payload
    finally:
        children.end_workers([process])
        queue.close()


@dataclass
class TrainBench:
    """The rows of one run: each loop's rows as they come, and those it could not measure."""

    results: Results
    args: argparse.Namespace
    shard: str
    deadline: Deadline  # --time-limit
    memory: str  # how peak memory is measured here

    def rows(self, which: str, name: Callable[[int], str], batch_sizes: list[int], compile: bool = False) -> dict:
        """batch size -> row, for the rows measured; every other batch size is a row saying why not."""
        measured: dict[int, dict] = {}
        reported: set[int] = set()
        try:
            if self.deadline.passed():  # no process started only to be ended
                raise children.ChildFailed("--time-limit reached")
            for row in rows_from_fresh_process(which, self.shard, self.args, batch_sizes, compile, self.deadline):
                reported.add(row["batch_size"])
                if "error" in row:
                    self.results.not_measured(name(row["batch_size"]), "images/s", row["error"])
                    continue
                measured[row["batch_size"]] = row
                backend = f"; torch.compile backend {row['backend']}" if "backend" in row else ""
                self.results.add(name(row["batch_size"]), row["images_per_s"], "images/s",
                                 note=f"{self.memory} {row['peak_mib']:.0f} MiB{backend}")  # fmt: skip
            why = "a smaller batch ran out of memory"
        except children.ChildFailed as err:
            why = "--time-limit reached" if self.deadline.passed() else str(err)
        for batch_size in batch_sizes:
            if batch_size not in reported:
                self.results.not_measured(name(batch_size), "images/s", why)
        return measured


def paper_hours(images_per_s: float) -> float:
    """Three models x (epochs x training images) of the paper profile, at ``images_per_s``."""
    paper = config.resolve_params("paper", {"cartoon_dataset": "a/b", "movie_dataset": "a/b"})
    train_images = paper.train_per_domain * (1 - paper.val_fraction)
    return 3 * paper.epochs * train_images / images_per_s / 3600


def batch_list(text: str) -> list[int]:
    sizes = sorted({int(b) for b in text.split(",") if b.strip()})
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated positive batch sizes")
    return sizes


def parse_args(argv: list[str] | None, cuda: bool) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256 if cuda else 128)
    parser.add_argument("--batch-sizes", type=batch_list, default="16,32,64,128" if cuda else "16",
                        help="comma-separated; the kit is measured at each, the reference at 16 (the paper's)")  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="also the kit compiled")
    parser.add_argument("--compile-batch-sizes", type=batch_list, default=None,
                        help="compiled at these (default: 16 and the best eager batch), one process each")  # fmt: skip
    parser.add_argument("--window-s", type=float, default=5.0 if cuda else 20.0, help="seconds per timed window")
    parser.add_argument("--warmup", type=int, default=10 if cuda else 1, help="steps before timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers, the same for both loops")
    parser.add_argument("--time-limit", type=float, default=math.inf, help="seconds, for the whole benchmark")
    parser.add_argument("--shard-images", type=int, default=None,
                        help=f"images in the shard (default: {training.LOG_EVERY} batches of the largest batch size, so an "
                             "epoch holds the loop's sync points; fewer, for a quick smoke run: each epoch's end syncs)")  # fmt: skip
    add_json_argument(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    largest = max(args.batch_sizes + (args.compile_batch_sizes or []))
    args.shard_images = args.shard_images or training.LOG_EVERY * largest
    if args.shard_images < largest:
        parser.error(f"--shard-images {args.shard_images}: fewer than one batch of {largest}")
    return args


def compiled_rows(bench: TrainBench, eager: dict[int, dict], paper_batch: int) -> dict[int, float]:
    """The kit compiled, one process (one compilation) per batch size; compilation times, and whether it pays."""
    best = max(eager, key=lambda b: eager[b]["images_per_s"]) if eager else paper_batch
    compiled: dict[int, dict] = {}
    for batch_size in bench.args.compile_batch_sizes or sorted({paper_batch, best}):
        compiled |= bench.rows("kit", lambda b: f"kit compiled images/s, batch {b}", [batch_size], compile=True)
    compile_s = {}
    for batch_size, row in compiled.items():  # its warm-up holds the compilation
        compile_s[batch_size] = max(0.0, row["warmup_s"] - row["warmup_images"] / row["images_per_s"])
        bench.results.add(f"compilation time, batch {batch_size} (warm-up less its steps)", compile_s[batch_size], "s")
    if paper_batch in compiled and paper_batch in eager:
        eager_s, compiled_s = (1 / rows[paper_batch]["images_per_s"] for rows in (eager, compiled))
        saved = PAPER_IMAGES_PER_MODEL * (eager_s - compiled_s) - compile_s[paper_batch]
        bench.results.add(f"compile: time saved per paper model at batch {paper_batch}, less compilation", saved,
                          "s", note=f"pays if > 0 ({PAPER_IMAGES_PER_MODEL} images per model)")  # fmt: skip
    return {b: row["images_per_s"] for b, row in compiled.items()}


def peak_fraction(results: Results, gpu: str | None, flops: float, rates: dict[int, float], kind: str,
                  target: float | None = None) -> None:  # fmt: skip
    """The fraction of the card's dense half-precision peak at the best of ``rates``, or a row saying why not."""
    if gpu is None:
        return
    peak, goal = peak_flops(gpu), f">= {target:g}%" if target else None
    name = f"fraction of {gpu}'s dense half-precision peak"
    if peak is None:
        results.not_measured(f"{name}, {kind}", "%", f"peak unknown for {gpu}: not in bench_train.GPU_PEAK_FLOPS", goal)
    elif not rates:
        results.not_measured(f"{name}, {kind}", "%", f"no {kind} row was measured", goal)
    else:
        best = max(rates, key=rates.get)
        fraction = 100 * flops * rates[best] / peak
        results.add(f"{name}, batch {best}, {kind}", fraction, "%", goal, fraction >= target if target else None)


def projections(results: Results, args: argparse.Namespace, gpu: str | None, flops: float, rate: float | None,
                batch: int) -> None:  # fmt: skip
    """The paper profile here at ``rate`` (images/s at ``batch``), and on Kaggle's two T4s (from that speed, and
    from assumed utilisations)."""
    if args.size == 256 and rate:
        results.add(f"paper profile (3 models x {PAPER_IMAGES_PER_MODEL} images) here, batch {batch}",
                    paper_hours(rate), "h")  # fmt: skip
    peak = peak_flops(gpu) if gpu else None
    if peak and rate:  # measured on a GPU: scale this card's speed by the peak ratio, then two T4s, one model each
        t4_images_per_s = rate * (T4_PEAK_FLOPS / peak) * (args.size / 256) ** 2
        results.add("projection, Kaggle T4 x2 (measured speed x peak ratio), paper profile",
                    paper_hours(2 * t4_images_per_s), "h", note=f"{t4_images_per_s:.0f} images/s per T4")  # fmt: skip
    t4_flops_256 = flops * (256 / args.size) ** 2
    for utilisation in (0.10, 0.25):
        images_per_s = 2 * utilisation * T4_PEAK_FLOPS / t4_flops_256
        results.add(f"projection, Kaggle T4 x2 at an assumed {utilisation:.0%} of fp16 peak, paper profile",
                    paper_hours(images_per_s), "h", note=f"{images_per_s:.0f} images/s")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    args = parse_args(argv, cuda)
    deadline = Deadline(args.time_limit)
    batch_sizes = args.batch_sizes
    paper_batch = PAPER_BATCH if PAPER_BATCH in batch_sizes else batch_sizes[0]
    device = torch.device("cuda" if cuda else "cpu")
    gpu = gpu_name() if cuda else None
    results = Results("bench_train", args.json)
    results.describe(device=gpu or "CPU", precision=str(environment.amp_settings(device)[0] or "fp32"), size=args.size,
                     batch_sizes=",".join(map(str, batch_sizes)), workers=args.workers, threads=torch.get_num_threads(),
                     timing=f"median of {args.repeats} windows of at least {args.window_s:g} s after {args.warmup} "
                            f"warm-up steps, each ending at a sync point (every {training.LOG_EVERY} steps)")  # fmt: skip
    flops = 1e9 * results.add(
        f"FLOPs per training image, {args.size} px", kit_flops_per_image(args.size, device) / 1e9, "GFLOP"
    )
    with tempfile.TemporaryDirectory() as tmp:
        shard = str(Path(tmp) / "train.npy")
        write_shard(Path(shard), args.shard_images, args.size)
        bench = TrainBench(results, args, shard, deadline, "peak CUDA memory" if cuda else "peak RSS")
        eager = bench.rows("kit", lambda b: f"kit images/s, batch {b}", batch_sizes)
        reference = bench.rows("reference", lambda b: f"reference images/s, batch {b} (fp32, CPU Lab, .item())",
                               [paper_batch]).get(paper_batch)  # fmt: skip
        ratio_name, target = f"kit vs reference, batch {paper_batch}", ">= 3x" if cuda else None
        if reference and paper_batch in eager:
            ratio = eager[paper_batch]["images_per_s"] / reference["images_per_s"]
            results.add(ratio_name, ratio, "x", target, ratio >= 3 if cuda else None,
                        note="" if cuda else "CPU: reported only, the target is for a GPU")  # fmt: skip
        else:
            results.not_measured(ratio_name, "x", "the kit's or the reference's row was not measured", target)
        rates = {b: row["images_per_s"] for b, row in eager.items()}
        if rates:
            best = max(rates, key=rates.get)
            results.add("best batch (eager)", best, "images", note=f"{rates[best]:.1f} images/s")
        peak_fraction(results, gpu, flops, rates, "eager")
        if args.compile:
            peak_fraction(results, gpu, flops, compiled_rows(bench, eager, paper_batch), "compiled", 10)
    projections(results, args, gpu, flops, rates.get(paper_batch), paper_batch)
    results.write()


if __name__ == "__main__":
    main()
