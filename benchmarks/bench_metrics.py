"""Evaluation speed: the kit's CIEDE2000 + SSIM (torch, batched) vs scikit-image's, same pairs, one run.

    python benchmarks/bench_metrics.py [--images 64] [--size 256] [--repeats 3]

Pairs: real images (scikit-image's photographs, cropped and scaled, and demo cartoon frames) as
the truth, and a plausible colorization of each (its own lightness with the chroma scaled by 0.6
and a little noise on a and b) as the prediction; RGB in [0, 1]. Both sides start from RGB: Lab
conversion (kornia / ``skimage.color.rgb2lab``), per-image mean CIEDE2000
(``skimage.color.deltaE_ciede2000``) and SSIM with Wang et al.'s settings
(``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1.0, channel_axis=-1)``).

Prints images/s (median of ``--repeats``) for scikit-image and the kit at one thread (the same
thread count: scikit-image is single-threaded), eager and through ``torch.compile`` (what
evaluation runs with ``compile_metrics=True``); the kit compiled with every CPU thread; the kit
on the GPU when present; the ratios; the compilation time; and the largest difference between
the kit's and scikit-image's per-image values (float32 and float64).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils import color, metrics  # noqa: E402
from utils.images import resize_square  # noqa: E402
from utils.sources import demo_cartoon_frames, skimage_photos  # noqa: E402


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


def skimage_scores(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def kit_scores(
    truth: torch.Tensor, pred: torch.Tensor, score: Callable = kit_pair_scores, batch: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [score(truth[s : s + batch], pred[s : s + batch]) for s in range(0, len(truth), batch)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def images_per_second(
    run: Callable[[], object], n: int, repeats: int, sync: Callable[[], None] = lambda: None
) -> float:
    rates = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        run()
        sync()
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    truth, pred = image_pairs(args.images, args.size)
    truth_t = torch.from_numpy(truth).permute(0, 3, 1, 2).float().contiguous()
    pred_t = torch.from_numpy(pred).permute(0, 3, 1, 2).float().contiguous()
    n, all_threads = args.images, torch.get_num_threads()

    rows = {"scikit-image (1 thread)": images_per_second(lambda: skimage_scores(truth, pred), n, args.repeats)}
    compiled = torch.compile(kit_pair_scores, dynamic=False)  # as evaluation runs it (compile_metrics=True)
    torch.set_num_threads(1)
    kit_scores(truth_t[:32], pred_t[:32])  # warm-up
    rows["kit, eager (1 thread)"] = images_per_second(lambda: kit_scores(truth_t, pred_t), n, args.repeats)
    started = time.perf_counter()
    kit_scores(truth_t[:32], pred_t[:32], compiled)
    compile_s = time.perf_counter() - started
    rows["kit, compiled (1 thread)"] = images_per_second(lambda: kit_scores(truth_t, pred_t, compiled), n, args.repeats)
    torch.set_num_threads(all_threads)
    rows[f"kit, compiled ({all_threads} threads)"] = images_per_second(
        lambda: kit_scores(truth_t, pred_t, compiled), n, args.repeats
    )
    if torch.cuda.is_available():
        truth_g, pred_g = truth_t.cuda(), pred_t.cuda()
        for label, score in (("eager", kit_pair_scores), ("compiled", compiled)):
            kit_scores(truth_g, pred_g, score)
            rows[f"kit, {label}, {torch.cuda.get_device_name()}"] = images_per_second(
                lambda score=score: kit_scores(truth_g, pred_g, score), n, args.repeats, torch.cuda.synchronize
            )

    de_ref, ss_ref = skimage_scores(truth, pred)
    de_kit, ss_kit = (v.numpy() for v in kit_scores(truth_t, pred_t, compiled))
    de64, ss64 = (v.numpy() for v in kit_scores(truth_t.double(), pred_t.double()))
    print(f"{n} image pairs at {args.size} x {args.size}, CIEDE2000 + SSIM from RGB, median of {args.repeats}")
    reference = rows["scikit-image (1 thread)"]
    for name, rate in rows.items():
        print(f"{name:38s} {rate:10.1f} images/s   {rate / reference:7.1f}x scikit-image")
    print(f"compilation (once per batch shape; cached on disk afterwards): {compile_s:.1f} s")
    print("targets: >= 5x scikit-image on the CPU (same thread count), >= 200x on a GPU")
    print(f"max |kit (compiled) - scikit-image| per image, float32: CIEDE2000 {np.abs(de_kit - de_ref).max():.2e}, "
          f"SSIM {np.abs(ss_kit - ss_ref).max():.2e}; float64: CIEDE2000 {np.abs(de64 - de_ref).max():.2e}, "
          f"SSIM {np.abs(ss64 - ss_ref).max():.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
