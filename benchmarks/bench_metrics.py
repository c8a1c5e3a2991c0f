"""Evaluation speed: the kit's CIEDE2000 + SSIM (torch, batched) vs scikit-image's, same pairs, one run.

    python benchmarks/bench_metrics.py [--images 64] [--size 256] [--repeats 3] [--devices cpu,cuda]
                                       [--no-compile] [--compile-all-threads] [--time-limit 150] [--json PATH]

Pairs: real images (scikit-image's photographs, cropped and scaled, and demo cartoon frames) as
the truth, and a plausible colorization of each (its own lightness with the chroma scaled by 0.6
and a little noise on a and b) as the prediction; RGB in [0, 1]. Both sides start from RGB: Lab
conversion (kornia / ``skimage.color.rgb2lab``), per-image mean CIEDE2000
(``skimage.color.deltaE_ciede2000``) and SSIM with Wang et al.'s settings
(``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1.0, channel_axis=-1)``).

Prints each figure the moment it is measured (benchmarks/results.py): images/s (median of
``--repeats``) for scikit-image (single-threaded) and the kit on the CPU at one thread, eager and
through ``torch.compile`` (what evaluation runs with ``compile_metrics=True``), eager with every
thread; on the GPU (``--gpu-images`` pairs, the same pairs repeated), eager and compiled; each as a
ratio to scikit-image with its target (>= 5x on the CPU at the same thread count, >= 200x on a
GPU); the compilation times; and the largest difference between the kit's and scikit-image's
per-image values (float32 per device, float64).

Bounded time: each scorer compiles once per device (torch.compile's CPU kernels are specialised
to the thread count, so a compiled row at every thread is a second compilation: opt in with
``--compile-all-threads``). ``--time-limit`` is checked between rows and between repeats: a
compilation starts only with ``COMPILE_ALLOWANCE_S`` left, a timed row only with time left; a
skipped row is printed and listed under ``skipped`` in the JSON context. A reduced run for a smoke check:
``--images 8 --size 64 --repeats 1 --no-compile``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Deadline, gpu_name, no_sync, synchronizer, timed  # noqa: E402
from benchmarks.results import Results, add_json_argument  # noqa: E402
from utils.core.parameters import RunParams  # noqa: E402
from utils.data.demo import demo_cartoon_frames, skimage_photos  # noqa: E402
from utils.imaging import (
    color,
    metrics,  # noqa: E402
)
from utils.imaging.images import resize_square  # noqa: E402

CPU_TARGET_X = 5.0  # the kit compiled vs scikit-image, both on one thread
GPU_TARGET_X = 200.0  # the kit compiled on a GPU vs scikit-image on one CPU thread
# What a compilation may take: a cold torch.compile of the scoring took 45 s on the loaded 2-core CPU
# (4 s from inductor's on-disk cache); the time limit starts none with less than this left.
COMPILE_ALLOWANCE_S = 45.0

Scores = tuple[np.ndarray, np.ndarray]  # per-image mean CIEDE2000, SSIM
T = TypeVar("T")


def image_pairs(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(truth, prediction): n x size x size x 3 float64 RGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    photos = list(skimage_photos().values())
    frames = demo_cartoon_frames(n, size, seed)
    truths = []
    for i in range(n):
        if i % 2:
            truths.append(next(frames).rgb)
        else:
            photo = photos[(i // 2) % len(photos)]
            h, w = photo.shape[:2]
            top, left = rng.integers(0, h // 4 + 1), rng.integers(0, w // 4 + 1)
            truths.append(resize_square(photo[top:, left:], size, "crop"))
    truth = np.stack(truths).astype(np.float64) / 255.0
    lab = rgb2lab(truth)
    lab[..., 1:] = 0.6 * lab[..., 1:] + rng.normal(0, 3.0, lab[..., 1:].shape)
    return truth, np.clip(lab2rgb(lab), 0, 1)


def skimage_scores(truth: np.ndarray, pred: np.ndarray) -> Scores:
    de, ss = [], []
    for t, p in zip(truth, pred):
        de.append(deltaE_ciede2000(rgb2lab(t), rgb2lab(p)).mean())
        ss.append(structural_similarity(p, t, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1.0, channel_axis=-1))  # fmt: skip
    return np.array(de), np.array(ss)


def kit_pair_scores(truth: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean CIEDE2000 and SSIM of one batch, from RGB: the kit's functions."""
    de = metrics.ciede2000(color.rgb_to_lab(truth), color.rgb_to_lab(pred)).mean(dim=(1, 2))
    return de, metrics.ssim(pred, truth, data_range=1.0)


def kit_scores(truth: torch.Tensor, pred: torch.Tensor, score: Callable, batch: int) -> Scores:
    parts = [score(truth[s : s + batch], pred[s : s + batch]) for s in range(0, len(truth), batch)]
    return torch.cat([p[0] for p in parts]).cpu().numpy(), torch.cat([p[1] for p in parts]).cpu().numpy()


def warm_up_shapes(truth: torch.Tensor, pred: torch.Tensor, score: Callable, batch: int) -> Scores:
    """Score the first batch and, if it is shorter, the last: every batch shape of a pass, so a
    compiled scorer compiles before the timing, not inside it."""
    n = len(truth)
    picked = [*range(min(batch, n)), *(range(n - n % batch, n) if n > batch else ())]
    return kit_scores(truth[picked], pred[picked], score, batch)


def images_per_second(
    run: Callable[[], T], n: int, repeats: int, deadline: Deadline, sync: Callable[[], None] = no_sync
) -> tuple[float, T]:
    """Median images/s of up to ``repeats`` runs (at least one, none started past the deadline), and
    the first run's result."""
    seconds, first = timed(run, sync)
    rates = [n / seconds]
    while len(rates) < repeats and deadline.left() > 0:
        rates.append(n / timed(run, sync)[0])
    return statistics.median(rates), first


@dataclass
class MetricsBench:
    """The rows of one run: rates with their ratio to scikit-image, compilations, skips, accuracy."""

    results: Results
    deadline: Deadline
    args: argparse.Namespace
    reference: Scores | None = None
    reference_rate: float = 0.0
    skipped: list[str] = field(default_factory=list)

    def skip(self, row: str, why: str) -> None:
        print(f"{'skipped: ' + row:56s} ({why})", flush=True)
        self.skipped.append(f"{row} ({why})")
        self.results.context["skipped"] = "; ".join(self.skipped)
        self.results.write()

    def can_compile(self, row: str) -> bool:
        if self.args.no_compile:
            self.skip(row, "--no-compile")
            return False
        if self.deadline.left() < COMPILE_ALLOWANCE_S:
            self.skip(
                row,
                f"{max(self.deadline.left(), 0):.0f} s of --time-limit left, a compilation may take {COMPILE_ALLOWANCE_S:.0f} s",
            )
            return False
        return True

    def can_time(self, row: str) -> bool:
        if self.deadline.left() <= 0:
            self.skip(row, "--time-limit reached")
            return False
        return True

    def rate(self, row: str, rate: float, target_x: float | None = None) -> None:
        self.results.add(row, rate, "images/s")
        ratio = rate / self.reference_rate
        target = f">= {target_x:g}x" if target_x else None
        met = ratio >= target_x if target_x else None
        self.results.add(f"{row} vs scikit-image", ratio, "x", target, met)

    def compile_for(self, device: str, warm_up: Callable[[Callable], object]) -> Callable | None:
        """One ``torch.compile`` per device, timed over its first batch; None if compiling failed."""
        compiled = torch.compile(kit_pair_scores, dynamic=False)  # as evaluation runs it (compile_metrics=True)
        try:
            seconds, _ = timed(lambda: warm_up(compiled))
        except Exception as err:  # noqa: BLE001 - no C++ compiler, say: report it and go on with the other rows
            self.skip(
                f"kit, compiled, {device}",
                f"torch.compile failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}",
            )
            return None
        self.results.add(f"compilation, {device}", seconds, "s", note="once per batch shape and thread count")
        return compiled

    def accuracy_of_last(self, label: str, scores: dict[str, Scores]) -> None:
        """Accuracy of the scorer evaluation runs: the compiled one when it ran, else the eager one."""
        if scores:
            kind, kit = list(scores.items())[-1]
            self.accuracy(f"{label}, {kind}", kit)

    def accuracy(self, label: str, kit: Scores) -> None:
        """Largest per-image difference from scikit-image, over the pairs both scored."""
        assert self.reference is not None
        n = len(self.reference[0])
        for metric, unit, ours, theirs in zip(("CIEDE2000", "SSIM"), ("dE00", "SSIM"), kit, self.reference):
            self.results.add(f"max |kit - scikit-image| {metric}, {label}", np.abs(ours[:n] - theirs).max(), unit)


def run_reference(bench: MetricsBench, truth: np.ndarray, pred: np.ndarray) -> None:
    rate, bench.reference = images_per_second(
        lambda: skimage_scores(truth, pred), len(truth), bench.args.repeats, bench.deadline
    )
    bench.reference_rate = bench.results.add("scikit-image, 1 thread", rate, "images/s")


def run_cpu(bench: MetricsBench, truth: torch.Tensor, pred: torch.Tensor) -> None:
    args, n, all_threads = bench.args, len(truth), torch.get_num_threads()

    def score_all(score: Callable) -> Callable[[], Scores]:
        return lambda: kit_scores(truth, pred, score, args.batch)

    def warm_up(score: Callable) -> object:
        return warm_up_shapes(truth, pred, score, args.batch)

    torch.set_num_threads(1)  # scikit-image is single-threaded: the target compares at the same thread count
    warm_up(kit_pair_scores)
    scores: dict[str, Scores] = {}
    if bench.can_time("kit, eager, 1 thread"):
        rate, scores["eager"] = images_per_second(score_all(kit_pair_scores), n, args.repeats, bench.deadline)
        bench.rate("kit, eager, 1 thread", rate)
    if bench.can_compile("kit, compiled, 1 thread") and (compiled := bench.compile_for("CPU, 1 thread", warm_up)):
        rate, scores["compiled"] = images_per_second(score_all(compiled), n, args.repeats, bench.deadline)
        bench.rate("kit, compiled, 1 thread", rate, CPU_TARGET_X)
    bench.accuracy_of_last("CPU float32", scores)
    torch.set_num_threads(all_threads)
    if all_threads == 1:
        return
    if bench.can_time(f"kit, eager, {all_threads} threads"):
        rate, _ = images_per_second(score_all(kit_pair_scores), n, args.repeats, bench.deadline)
        bench.rate(f"kit, eager, {all_threads} threads", rate)
    row = f"kit, compiled, {all_threads} threads"
    if not args.compile_all_threads:
        bench.skip(row, "a second compilation: opt in with --compile-all-threads")
    elif bench.can_compile(row) and (compiled := bench.compile_for(f"CPU, {all_threads} threads", warm_up)):
        bench.rate(row, images_per_second(score_all(compiled), n, args.repeats, bench.deadline)[0])


def run_gpu(bench: MetricsBench, truth: torch.Tensor, pred: torch.Tensor) -> None:
    """The same pairs repeated to ``--gpu-images``: 64 pairs are a few milliseconds' work for a GPU."""
    args = bench.args
    copies = -(-args.gpu_images // len(truth))
    truth_g, pred_g = (t.repeat(copies, 1, 1, 1)[: args.gpu_images].cuda() for t in (truth, pred))
    n = len(truth_g)

    def score_all(score: Callable) -> Callable[[], Scores]:
        return lambda: kit_scores(truth_g, pred_g, score, args.batch)

    def warm_up(score: Callable) -> object:
        return warm_up_shapes(truth_g, pred_g, score, args.batch)

    warm_up(kit_pair_scores)
    scores: dict[str, Scores] = {}
    sync = synchronizer("cuda")
    if bench.can_time("kit, eager, GPU"):
        rate, scores["eager"] = images_per_second(score_all(kit_pair_scores), n, args.repeats, bench.deadline, sync)
        bench.rate("kit, eager, GPU", rate)
    if bench.can_compile("kit, compiled, GPU") and (compiled := bench.compile_for("GPU", warm_up)):
        rate, scores["compiled"] = images_per_second(score_all(compiled), n, args.repeats, bench.deadline, sync)
        bench.rate("kit, compiled, GPU", rate, GPU_TARGET_X)
    bench.accuracy_of_last("GPU float32", scores)


def parse_devices(text: str) -> list[str]:
    devices = [d.strip() for d in text.split(",") if d.strip()]
    unknown = sorted(set(devices) - {"cpu", "cuda"})
    if unknown or not devices:
        raise SystemExit(f"--devices: expected a comma-separated list of cpu and cuda, got {text!r}")
    if "cuda" in devices and not torch.cuda.is_available():
        raise SystemExit("--devices: cuda was asked for but no GPU is visible")
    return devices


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="pairs scored on the CPU (and by scikit-image)")
    parser.add_argument("--gpu-images", type=int, default=512, help="pairs scored on the GPU (the same, repeated)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=RunParams().eval_batch_size, help="pairs per scoring call")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per row (the median is reported)")
    parser.add_argument(
        "--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu", help="the kit's rows: cpu, cuda"
    )
    parser.add_argument("--no-compile", action="store_true", help="eager rows only (no torch.compile)")
    parser.add_argument("--compile-all-threads", action="store_true", help="also compile at every CPU thread")
    parser.add_argument("--time-limit", type=float, default=150.0, help="seconds; checked between rows")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    for name in ("images", "gpu_images", "size", "batch", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.size < 11:
        parser.error("--size must be at least 11 (SSIM's 11 x 11 window)")
    args.devices = parse_devices(args.devices)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    bench = MetricsBench(Results("bench_metrics", args.json), Deadline(args.time_limit), args)
    gpu = (gpu_name() or "none") if "cuda" in args.devices else "none"
    bench.results.describe(
        devices=",".join(args.devices), gpu=gpu, cpu_threads=torch.get_num_threads(),
        pairs=f"{args.images} at {args.size} x {args.size}", gpu_pairs=args.gpu_images, batch=args.batch,
        repeats=args.repeats, time_limit_s=args.time_limit,
    )  # fmt: skip
    truth, pred = image_pairs(args.images, args.size)
    truth_t, pred_t = (torch.from_numpy(a).permute(0, 3, 1, 2).float().contiguous() for a in (truth, pred))
    run_reference(bench, truth, pred)
    if "cpu" in args.devices:
        run_cpu(bench, truth_t, pred_t)
    if "cuda" in args.devices:
        run_gpu(bench, truth_t, pred_t)
    bench.accuracy("float64, eager", kit_scores(truth_t.double(), pred_t.double(), kit_pair_scores, args.batch))
    bench.results.write()


if __name__ == "__main__":
    main()
