"""Gamut mapping's cost: ``color.lab_to_rgb`` with ``gamut="chroma"`` vs ``"clip"``, beside scoring and colorize.

    python benchmarks/bench_gamut.py [--images 32] [--size 256] [--colorize-size 512] [--repeats 5]
                                     [--devices cpu,cuda] [--compile] [--json PATH]

Two batches of predicted Lab, ``--images`` x 3 x ``--size`` x ``--size``: a plausible prediction
(bench_metrics' photographs and cartoon frames, their true ab plus N(0, 5) noise: about 15% of the pixels
outside sRGB; the demo's trained models put 2 to 4% there) and the worst case (L uniform in [0, 100],
a and b uniform in [-110, 110]: about 80% outside). For each: the share outside sRGB, and milliseconds
per image (median of ``--repeats``) of the clipping, of the mapping as run eagerly (bisection on the
pixels outside only) and of the same bisection on every pixel, eagerly (what ``torch.compile`` traces);
with ``--compile``, also compiled (fused, as evaluation's compiled scorer runs it; about 20 s to compile
on a 2-core CPU).

Where it shows up: the mapping's extra time per image (chroma minus clip) beside evaluation's eager
scoring per image (``scoring.score_batch`` on the plausible batch, which includes a conversion) and
colorize's per-image time (``colorize_full_resolution``, an untrained generator at ``--size``, images of
``--colorize-size`` squared, the conversion at full resolution).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_metrics import image_pairs, parse_devices  # noqa: E402
from benchmarks.harness import gpu_name, synchronizer, timed  # noqa: E402
from benchmarks.results import Results, add_json_argument  # noqa: E402
from utils import colorize  # noqa: E402
from utils.imaging import color
from utils.imaging.scoring import score_batch  # noqa: E402

NOISE_AB = 5.0  # the plausible prediction's error on a and b


def plausible_prediction(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(true RGB, predicted Lab): the truth's L, its ab plus N(0, NOISE_AB)."""
    truth = torch.from_numpy(image_pairs(n, size, seed)[0]).permute(0, 3, 1, 2).float().contiguous()
    lab = color.rgb_to_lab(truth)
    noise = torch.randn(lab[:, 1:].shape, generator=torch.Generator().manual_seed(seed)) * NOISE_AB
    return truth, torch.cat([lab[:, :1], lab[:, 1:] + noise], dim=1)


def saturated_prediction(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """The worst case: L uniform in [0, 100], a and b uniform in [-110, 110]."""
    rng = torch.Generator().manual_seed(seed)
    lightness = torch.rand(n, 1, size, size, generator=rng) * 100
    return torch.cat([lightness, torch.rand(n, 2, size, size, generator=rng) * 220 - 110], dim=1)


def ms_per_image(run: Callable[[], object], n: int, repeats: int, sync: Callable[[], None]) -> float:
    """Median over ``repeats`` timed runs (after one untimed warm-up), in milliseconds per image."""
    run()
    return statistics.median(timed(run, sync)[0] for _ in range(repeats)) * 1000 / n


def whole_batch(lab: torch.Tensor) -> torch.Tensor:
    """The mapping as ``torch.compile`` traces it (bisection on every pixel), run eagerly."""
    with mock.patch.object(torch.compiler, "is_compiling", return_value=True):
        return color.lab_to_rgb(lab)


def mapping_extra_ms(lab: torch.Tensor, repeats: int) -> float:
    """What the mapping adds to the clipping, in ms per image."""
    sync = synchronizer(lab.device)
    chroma = ms_per_image(lambda: color.lab_to_rgb(lab), len(lab), repeats, sync)
    return chroma - ms_per_image(lambda: color.lab_to_rgb(lab, "clip"), len(lab), repeats, sync)


def time_conversions(
    results: Results, label: str, lab: torch.Tensor, args: argparse.Namespace, compiled: Callable | None
) -> float:
    """The conversion rows of one batch on its device; returns the mapping's extra ms per image (eager)."""
    sync = synchronizer(lab.device)

    def per_image(run: Callable[[], object]) -> float:
        return ms_per_image(run, len(lab), args.repeats, sync)

    name = f"{label}, {lab.device.type}"
    outside = (color.chroma_scale_in_gamut(lab) < 1).float().mean().item()
    results.add(f"{name}: pixels outside sRGB", 100 * outside, "%")
    clip = results.add(f"{name}: clip", per_image(lambda: color.lab_to_rgb(lab, "clip")), "ms/image")
    chroma = results.add(f"{name}: chroma (eager)", per_image(lambda: color.lab_to_rgb(lab)), "ms/image")
    results.add(f"{name}: chroma / clip", chroma / clip, "x")
    results.add(f"{name}: chroma, every pixel bisected (eager)", per_image(lambda: whole_batch(lab)), "ms/image")
    if compiled is not None:
        first_call = timed(lambda: compiled(lab), sync)[0]
        results.add(f"{name}: first compiled call", first_call, "s", note="compiles once per shape and device")
        results.add(f"{name}: chroma (compiled)", per_image(lambda: compiled(lab)), "ms/image")
    return chroma - clip


def time_colorize(args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    """colorize's ms per image (an untrained generator, 4 images of ``--colorize-size`` squared, clipping), and
    the mapping's extra ms per image at that size on a plausible prediction."""
    from utils.nets.models import UNetGenerator

    torch.manual_seed(0)
    generator = UNetGenerator(pretrained=False).to(device).eval()
    truth, lab = plausible_prediction(4, args.colorize_size, seed=1)
    images = list(color.rgb_to_uint8(truth).numpy())
    total = ms_per_image(
        lambda: colorize.colorize_full_resolution(generator, images, args.size, device, "clip"),
        len(images), args.repeats, synchronizer(device),
    )  # fmt: skip
    return total, mapping_extra_ms(lab.to(device), args.repeats)


def run_device(results: Results, device: torch.device, args: argparse.Namespace) -> None:
    truth, plausible = (t.to(device) for t in plausible_prediction(args.images, args.size))
    compiled = torch.compile(color.lab_to_rgb, dynamic=False) if args.compile else None
    extra = time_conversions(results, "plausible", plausible, args, compiled)
    saturated = saturated_prediction(args.images, args.size).to(device)
    time_conversions(results, "saturated", saturated, args, compiled)
    l_norm, ab_norm = color.normalize_lab(plausible)
    scoring = ms_per_image(
        lambda: score_batch(truth, l_norm, ab_norm, "clip"), len(truth), args.repeats, synchronizer(device)
    )
    results.add(f"scoring, every metric (eager), {device.type}", scoring, "ms/image", note="plausible, clip")
    results.add(f"mapping's extra time / scoring, {device.type}", 100 * extra / scoring, "%", note="plausible")
    colorize_ms, extra_full = time_colorize(args, device)
    size = f"{args.colorize_size} px"
    results.add(f"colorize, {size}, {device.type}", colorize_ms, "ms/image", note="untrained generator, clip")
    results.add(f"mapping's extra time / colorize, {size}, {device.type}", 100 * extra_full / colorize_ms, "%",
                note="plausible")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="images per batch")
    parser.add_argument("--size", type=int, default=256, help="the batch's image size (and the model's input size)")
    parser.add_argument("--colorize-size", type=int, default=512, help="colorize's image size (full resolution)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (the median is reported)")
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the conversion (slow on a CPU)")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    for name in ("images", "size", "colorize_size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.size % 32:
        parser.error("--size must be a multiple of 32 (the generator's input)")
    args.devices = parse_devices(args.devices)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = Results("bench_gamut", args.json)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").is_file() else "?"
    results.describe(
        devices=",".join(args.devices), gpu=(gpu_name() or "none") if "cuda" in args.devices else "none",
        cpu_threads=torch.get_num_threads(), load_average=load,
        batch=f"{args.images} x 3 x {args.size} x {args.size}", colorize_size=args.colorize_size, repeats=args.repeats,
    )  # fmt: skip
    for device in args.devices:
        run_device(results, torch.device(device), args)
    results.write()


if __name__ == "__main__":
    main()
