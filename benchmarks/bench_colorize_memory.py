"""Colorize's peak memory: the kit (a pixel budget) against the previous way (each file whole, one at a time).

    python benchmarks/bench_colorize_memory.py [--images 16] [--side 7000] [--budgets 8] [--model-size 256]
                                               [--device cpu] [--work-dir DIR] [--json PATH]

Writes ``--images`` flat-coloured PNGs of ``--side`` x ``--side`` pixels (7000: 49 Mpx, just under the 50 Mpx
decompression-bomb guard; a few hundred KB each), and a checkpoint of an untrained generator. Then, each in a
fresh process (its peak resident memory is its own ``ru_maxrss``), colorizes the folder:

1. idle: imports, the generator loaded, no image: the floor every run starts from;
2. the kit, once per budget of ``--budgets`` (megapixels; ``utils.colorize.colorize_path``, ``--batch-size`` 16):
   its peak, and the peak above idle per budget megapixel (what sizes the default budget);
3. the previous way: every file decoded and colorized whole, one file at a time (batches of one: what the kit did
   at ``--batch-size 1``; its default batch of 16 such files would hold 16 at once).

Each row: peak RSS in MiB, and seconds for the folder; the ratio of the previous way's peak to the kit's (at the
default budget, or the first of ``--budgets``). On ``--device cuda``, also each process's peak GPU memory
(``torch.cuda.max_memory_allocated``). A reduced run for a smoke check: ``--images 2 --side 600 --budgets 0.1``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results import Results, add_json_argument  # noqa: E402
from utils import colorize  # noqa: E402
from utils.imaging import color
from utils.imaging.images import find_images, load_rgb  # noqa: E402
from utils.nets.checkpoints import (
    CHECKPOINT_FORMAT,  # noqa: E402
    load_generator,  # noqa: E402
)

BATCH_SIZE = 16  # colorize's default --batch-size


def write_inputs(folder: Path, images: int, side: int) -> None:
    """``images`` flat PNGs of ``side`` squared (one encoded once, its bytes copied: PNG encoding is the slow part)."""
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "flat_00.png"
    if not first.is_file():
        Image.new("RGB", (side, side), (120, 150, 90)).save(first)
    for index in range(1, images):
        path = folder / f"flat_{index:02d}.png"
        if not path.is_file():
            path.write_bytes(first.read_bytes())


def write_checkpoint(path: Path, model_size: int) -> None:
    """An untrained generator as a checkpoint of this kit (memory does not depend on the weights)."""
    from utils.nets.models import UNetGenerator

    torch.manual_seed(0)
    generator = UNetGenerator(pretrained=False)
    torch.save({"format": CHECKPOINT_FORMAT, "generator": generator.state_dict(), "image_size": model_size}, path)


@torch.no_grad()
def previous_way(generator: torch.nn.Module, rgb: np.ndarray, model_size: int, device: torch.device) -> np.ndarray:
    """One file colorized whole, as the kit did before its pixel budget: Lab of every pixel at once, ab resized
    to the full size at once, then Lab -> RGB of every pixel at once."""
    lab = color.rgb_to_lab(color.uint8_to_rgb(torch.tensor(rgb)[None].to(device)))
    l_small = F.interpolate(lab[:, :1], size=(model_size, model_size), mode="bilinear", antialias=True)
    ab_small = generator(l_small / color.L_SCALE - 1.0).float() * color.AB_SCALE
    ab = F.interpolate(ab_small, size=lab.shape[-2:], mode="bilinear", align_corners=False)
    return color.rgb_to_uint8(color.lab_to_rgb(torch.cat([lab[:, :1], ab], dim=1)))[0].cpu().numpy()


def run_worker(args: argparse.Namespace) -> None:
    """In a fresh process: one way over the folder; prints its peak memory and time as one JSON line."""
    device = torch.device(args.device)
    folder, out = Path(args.work_dir) / "inputs", Path(args.work_dir) / f"out_{args.worker}"
    started = time.perf_counter()
    if args.worker == "previous":
        generator, record = load_generator(args.checkpoint, device)
        for source in find_images(folder).images:
            rgb = load_rgb(source, accept_gray=True)[0]
            colorize.save_image(previous_way(generator, rgb, record["image_size"], device), out / source.name, False)
    elif args.worker.startswith("kit"):
        colorize.colorize_path(args.checkpoint, folder, out, batch_size=BATCH_SIZE, overwrite=True, device=args.device,
                               show_progress=False, pixel_budget=round(args.budget * 1e6))  # fmt: skip
    else:
        load_generator(args.checkpoint, device)
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"peak_mib": peak, "peak_gpu_mib": peak_gpu, "seconds": time.perf_counter() - started}))


def measure(args: argparse.Namespace, worker: str, checkpoint: Path, budget: float = 0.0) -> dict[str, float]:
    """One way, run in a fresh process; its peak memory and time."""
    command = [sys.executable, __file__, "--worker", worker, "--checkpoint", str(checkpoint), "--budget", str(budget),
               "--work-dir", str(args.work_dir), "--device", args.device]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{worker} exited with code {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def add_rows(results: Results, label: str, measured: dict[str, float], idle: float | None = None) -> None:
    results.add(f"{label}: peak RSS", measured["peak_mib"], "MiB")
    if idle is not None:
        results.add(f"{label}: peak above idle", measured["peak_mib"] - idle, "MiB")
    if not np.isnan(measured["peak_gpu_mib"]):
        results.add(f"{label}: peak GPU memory", measured["peak_gpu_mib"], "MiB")
    results.add(f"{label}: time for the folder", measured["seconds"], "s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="PNG files in the folder colorized")
    parser.add_argument("--side", type=int, default=7000, help="each image's width and height in pixels")
    parser.add_argument("--budgets", default=f"{colorize.DEFAULT_PIXEL_BUDGET / 1e6:g}",
                        help="the kit's pixel budgets to measure, in megapixels, comma-separated")  # fmt: skip
    parser.add_argument("--model-size", type=int, default=256, help="the generator's input size")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--work-dir", default=None, help="where the images go (default: a temporary folder)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one measured process
    parser.add_argument("--checkpoint", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, default=0.0, help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args(argv)
    if args.images < 1 or args.side < 1:
        parser.error("--images and --side must be at least 1")
    args.budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    if not args.budgets or min(args.budgets) <= 0:
        parser.error("--budgets: one or more positive numbers of megapixels")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-colorize-") as scratch:
        args.work_dir = Path(args.work_dir or scratch)
        results = Results("bench_colorize_memory", args.json)
        results.describe(images=args.images, side=args.side, megapixels_per_image=args.side**2 / 1e6,
                         device=args.device, batch_size=BATCH_SIZE, model_size=args.model_size,
                         cpu_threads=torch.get_num_threads())  # fmt: skip
        write_inputs(args.work_dir / "inputs", args.images, args.side)
        checkpoint = args.work_dir / "untrained.pt"
        write_checkpoint(checkpoint, args.model_size)
        idle = measure(args, "idle", checkpoint)
        add_rows(results, "idle (imports and the generator)", idle)
        kit_peaks = []
        for budget in args.budgets:
            kit = measure(args, "kit", checkpoint, budget)
            add_rows(results, f"kit, budget {budget:g} Mpx", kit, idle["peak_mib"])
            results.add(f"kit, budget {budget:g} Mpx: peak above idle per budget pixel",
                        (kit["peak_mib"] - idle["peak_mib"]) * 2**20 / (budget * 1e6), "bytes")  # fmt: skip
            kit_peaks.append(kit["peak_mib"])
        previous = measure(args, "previous", checkpoint)
        add_rows(results, "previous way (each file whole, one at a time)", previous, idle["peak_mib"])
        results.add(f"previous way / kit (budget {args.budgets[0]:g} Mpx): peak RSS", previous["peak_mib"] / kit_peaks[0],
                    "x")  # fmt: skip
        results.write()


if __name__ == "__main__":
    main()
