"""Input pipeline: prepare's scaling over worker counts, and the kit's shards vs the tutorial's per-file Dataset.

    python benchmarks/bench_data.py [--images 512] [--size 256] [--prepare-workers 1,2,0] [--batch-size 16]
                                    [--workers 2] [--repeats 3] [--no-loaders] [--time-limit 600] [--json PATH]

Writes ``--images`` JPEG files per domain (640x360 stills, 512x384 cartoon frames, in 8 group
folders), then, each figure printed the moment it is measured (benchmarks/results.py):

1. Decoding processes (on 2+ cores): the forkserver's start (it imports the decoder and torch,
   once per Python process); a pool of every core forked from it, until each worker has decoded
   one image (once per prepare); and, for comparison, the way before: spawned workers that each
   import torch (once per domain and split).
2. Prepare, once per worker count of ``--prepare-workers`` (0 = every core; deduplicated; 1 always
   runs first, in this process), with the forkserver already running: images/s over both domains,
   the speed-up over 1 worker (its note: counting the server's start too) and the parallel
   efficiency (speed-up / workers). Targets: 2 workers >= 1.7x 1 worker (on 2+ cores); every core
   >= 6x 1 worker (on 16+ cores). Every count must give the same shards, bit for bit (checked; a
   difference stops the benchmark).
3. Loaders (skipped with ``--no-loaders``), ``--repeats`` passes, median: batches/s of the
   tutorial's per-file Dataset (PIL open + resize + ``skimage.color.rgb2lab`` per sample, in
   ``--workers`` DataLoader processes) and of the kit's memory-mapped uint8 shard batches: the
   CPU's share when Lab runs on a GPU (target >= 10x the tutorial), with Lab on the CPU as well,
   and, with CUDA, uint8 batches -> GPU -> Lab. Same images, same batch size.

Bounded time: ``--time-limit`` is checked before every row; a row that would start after it is
printed as skipped and listed under ``skipped`` in the JSON context. A reduced run for a smoke
check: ``--images 16 --size 64 --repeats 1``.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

# Imports needed only by the loader rows (kornia, scikit-image's colour module) sit in the functions that use
# them: decoding workers re-run this script's top-level imports (Python 3.11's forkserver does not preload it).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Deadline, TutorialDataset, cpu_count, timed  # noqa: E402
from benchmarks.results import Results, add_json_argument  # noqa: E402
from utils.core import config
from utils.core.domains import DEMO_DOMAINS  # noqa: E402
from utils.core.parameters import RunParams
from utils.data import (
    datasets,
    prepare,  # noqa: E402
)
from utils.data.decoding import DecodeSettings, decode_executor, decode_files, decode_process_context  # noqa: E402
from utils.data.demo import demo_cartoon_frames, skimage_photos  # noqa: E402
from utils.data.shards import load_shard  # noqa: E402
from utils.data.sources import list_source_files  # noqa: E402

TWO_WORKER_TARGET_X = 1.7  # prepare with 2 workers vs 1, on a machine with 2 or more cores
ALL_CORES_TARGET_X = 6.0  # prepare on every core vs 1 worker, on a machine with 16 or more cores
ALL_CORES_TARGET_MIN_CORES = 16
LOADER_TARGET_X = 10.0  # the kit's CPU share (uint8 shard batches) vs the tutorial's per-file Dataset


def write_jpegs(root: Path, count: int, seed: int = 0) -> None:
    """``count`` JPEG files per domain at typical still sizes: the cartoon frames in 8 group folders, the movie
    stills (crops of a few photographs) in one folder per photograph, since the crops of one photograph are
    near-duplicates that the prepare keeps in one group."""
    rng = np.random.default_rng(seed)
    photos = list(skimage_photos().values())
    frames = demo_cartoon_frames(count, 384, seed)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        top, left = rng.integers(0, h // 4), rng.integers(0, w // 4)
        still = Image.fromarray(photo[top:, left:]).resize((640, 360))
        cartoon = Image.fromarray(next(frames).rgb).resize((512, 384))
        for domain, image, group in (("movie", still, i % len(photos)), ("cartoon", cartoon, i % 8)):
            folder = root / domain / f"group_{group}"
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:05d}.jpg", quality=90)


def lab_on_gpu(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from utils.imaging import color

    out = color.uint8_to_model_io(batch.cuda(non_blocking=True))
    torch.cuda.synchronize()  # count the conversion, not just its launch
    return out


def batches_per_second(loader: torch.utils.data.DataLoader, to_model_io: Callable | None = None) -> float:
    def one_pass() -> int:
        n = 0
        for batch in loader:
            if to_model_io is not None:
                to_model_io(batch)
            n += 1
        return n

    seconds, n = timed(one_pass)
    return n / seconds


def worker_counts(spec: str, cores: int) -> list[int]:
    """``"1,2,0"`` -> [1, 2, cores]: 0 is every core; deduplicated, ascending, 1 always included."""
    try:
        counts = {int(part) or cores for part in spec.split(",") if part.strip()}
    except ValueError:
        raise SystemExit(f"--prepare-workers {spec!r}: expected comma-separated integers, e.g. 1,2,0") from None
    if any(n < 1 for n in counts):
        raise SystemExit(f"--prepare-workers {spec!r}: counts must be >= 0 (0 = every core)")
    return sorted(counts | {1})


def folder_params(root: Path, images: int, size: int, workers: int) -> RunParams:
    n_test = max(1, images // 8)
    return config.resolve_params(
        "demo",
        {"source": "folder", "cartoon_dir": str(root / "cartoon"), "movie_dir": str(root / "movie"), "image_size": size,
         "train_per_domain": images - n_test, "test_per_domain": n_test, "prepare_workers": workers},
    )  # fmt: skip


def first_image_per_worker(make_executor: Callable[[], ProcessPoolExecutor], files: list, size: int) -> float:
    """Seconds from creating a pool until each of its workers has decoded one image."""
    settings = DecodeSettings(size, "crop", 0.0, 50_000_000)

    def first_images() -> None:
        with make_executor() as executor:
            for future in [executor.submit(decode_files, [f], settings) for f in files]:
                future.result()

    return timed(first_images)[0]


def spawned_executor(workers: int) -> ProcessPoolExecutor:
    """The way before: spawned workers, each importing the decoder (and torch) itself."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def shard_hashes(run_dir: Path) -> dict[str, str]:
    """sha1 of every shard's pixels: equal hashes, bit-identical shards."""
    shards = {(d, s): load_shard(run_dir, d, s) for d in DEMO_DOMAINS for s in ("test", "train")}
    return {f"{d}_{s}": hashlib.sha1(np.ascontiguousarray(shard)).hexdigest() for (d, s), shard in shards.items()}


def speedup_target(workers: int, cores: int) -> tuple[str | None, float]:
    """The issue's target for this worker count on this machine, if any: (text, factor)."""
    if workers == 2:
        return f">= {TWO_WORKER_TARGET_X:g}x", TWO_WORKER_TARGET_X
    if workers == cores and cores >= ALL_CORES_TARGET_MIN_CORES:
        return f">= {ALL_CORES_TARGET_X:g}x", ALL_CORES_TARGET_X
    return None, 0.0


@dataclass
class DataBench:
    results: Results
    args: argparse.Namespace
    deadline: Deadline
    skipped: list[str] = field(default_factory=list)
    server_start_s: float = 0.0  # the forkserver's start, paid once per Python process; 0: not measured

    def time_left(self, row: str) -> bool:
        """Whether ``row`` may start; a row past ``--time-limit`` is printed and recorded as skipped."""
        if not self.deadline.passed():
            return True
        self.skipped.append(row)
        self.results.context["skipped"] = ", ".join(self.skipped)
        print(f"{row:56s} skipped: --time-limit {self.args.time_limit:g} s reached", flush=True)
        return False

    def pool_start(self, root: Path, cores: int) -> None:
        """The cost of starting decoding processes, the kit's way and the way before."""
        files = list_source_files(root / "movie")[0][:cores]
        method = decode_process_context().get_start_method()
        row = f"{method} start, once per Python process"
        if self.time_left(row):
            self.server_start_s = first_image_per_worker(lambda: decode_executor(1), files[:1], self.args.size)
            self.results.add(row, self.server_start_s, "s", note="imports the decoder and torch once")
        row = f"decode pool start + 1 image per worker, {cores} workers"
        if self.time_left(row):
            seconds = first_image_per_worker(lambda: decode_executor(cores), files, self.args.size)
            self.results.add(row, seconds, "s", note=f"workers from the running {method}; once per prepare")
        row = f"for comparison: spawned workers, each importing torch, {cores}"
        if self.time_left(row):
            seconds = first_image_per_worker(lambda: spawned_executor(cores), files, self.args.size)
            self.results.add(row, seconds, "s", note="the way before: once per domain and split")

    def prepare_sweep(self, root: Path, counts: list[int], cores: int) -> Path | None:
        """Prepare the same images once per worker count; returns a prepared run directory."""
        rate_1 = 0.0
        reference: tuple[pd.DataFrame, dict[str, str]] | None = None  # 1 worker's manifest and shard hashes
        run_dir = None
        for workers in counts:
            row = f"prepare, {workers} worker{'s' if workers > 1 else ''}"
            if not self.time_left(row):
                continue
            run_dir = root / f"run_{workers}"
            params = folder_params(root, self.args.images, self.args.size, workers)
            seconds, manifest = timed(lambda params=params, run_dir=run_dir: prepare.prepare_data(params, run_dir))
            rate = len(manifest) / seconds
            note = f"{len(manifest)} images in {seconds:.1f} s = {seconds / len(manifest) * 1000:.1f} s per 1000"
            if workers == 1:
                rate_1, reference = rate, (manifest, shard_hashes(run_dir))
            elif reference is not None:
                if not (reference[0].equals(manifest) and reference[1] == shard_hashes(run_dir)):
                    raise RuntimeError(f"prepare with {workers} workers wrote other shards than with 1 worker")
                note += "; shards bit-identical to 1 worker's"
            self.results.add(row, rate, "images/s", note=note)
            if workers == 1 or not rate_1:
                continue
            speedup = rate / rate_1
            target, factor = speedup_target(workers, cores)
            cold = len(manifest) / (seconds + self.server_start_s) / rate_1
            note = f"{cold:.2f}x counting the one-time server start" if self.server_start_s else ""
            self.results.add(f"prepare speed-up, {workers} workers vs 1", speedup, "x", target,
                             speedup >= factor if target else None, note)  # fmt: skip
            self.results.add(f"parallel efficiency, {workers} workers", speedup / workers, "of ideal",
                             note="speed-up / workers")  # fmt: skip
        return run_dir

    def loaders(self, run_dir: Path, root: Path) -> None:
        from utils.imaging import color

        args = self.args
        shard = load_shard(run_dir, "movie", "train")
        kit_set = datasets.ShardDataset(shard, np.arange(len(shard)))
        files = sorted((root / "movie").rglob("*.jpg"))[: len(kit_set)]
        batch_size = min(args.batch_size, len(kit_set))  # a reduced run still gives a batch
        loader_args = dict(batch_size=batch_size, shuffle=True, drop_last=True)
        tutorial = f"tutorial: per-file PIL + rgb2lab, {args.workers} workers"
        cases = {
            tutorial: (TutorialDataset(files, args.size), args.workers, None),
            "kit: uint8 shard batches (Lab on GPU)": (kit_set, 0, None),
            "kit: uint8 shard batches + Lab on CPU": (kit_set, 0, color.uint8_to_model_io),
        }  # fmt: skip
        if torch.cuda.is_available():
            cases["kit: uint8 -> GPU -> Lab on GPU"] = (kit_set, 0, lab_on_gpu)
        tutorial_bps = 0.0
        for name, (dataset, workers, step) in cases.items():
            if not self.time_left(name):
                continue
            rates = []
            for _ in range(args.repeats):
                loader = torch.utils.data.DataLoader(dataset, num_workers=workers, **loader_args)
                rates.append(batches_per_second(loader, step))
            bps = statistics.median(rates)
            self.results.add(name, bps * batch_size, "images/s", note=f"{bps:.1f} batches/s of {batch_size}")
            if name == tutorial:
                tutorial_bps = bps
            elif tutorial_bps:
                target, met = None, None
                if name == "kit: uint8 shard batches (Lab on GPU)":
                    target, met = f">= {LOADER_TARGET_X:g}x", bps / tutorial_bps >= LOADER_TARGET_X
                self.results.add(f"{name} vs tutorial", bps / tutorial_bps, "x", target, met)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="JPEG files per domain, all prepared")
    parser.add_argument("--size", type=int, default=256, help="image_size of the prepare (a multiple of 32)")
    parser.add_argument("--prepare-workers", default="1,2,0", help="worker counts to prepare with; 0 = every core")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the tutorial's loader")
    parser.add_argument("--repeats", type=int, default=3, help="passes per loader row (median)")
    parser.add_argument("--no-loaders", action="store_true", help="prepare rows only")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds; checked before every row")
    add_json_argument(parser)
    args = parser.parse_args()
    if args.images < 3:
        parser.error("--images must be at least 3 (a test image and two training images per domain)")

    cores = cpu_count()
    counts = worker_counts(args.prepare_workers, cores)
    bench = DataBench(Results("bench_data", args.json), args, Deadline(args.time_limit))
    bench.results.describe(
        images_per_domain=args.images, size=args.size, cores=cores, prepare_workers=counts,
        load_average=" ".join(f"{x:.1f}" for x in os.getloadavg()),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, args.images)
        if cores > 1:
            bench.pool_start(root, cores)
        run_dir = bench.prepare_sweep(root, counts, cores)
        if run_dir is not None and not args.no_loaders:
            bench.loaders(run_dir, root)
    bench.results.write()


if __name__ == "__main__":
    main()
