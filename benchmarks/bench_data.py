"""Input pipeline: the kit's shards vs the tutorial's per-file Dataset, same images, one run.

    python benchmarks/bench_data.py [--images 512] [--size 256] [--batch-size 16] [--workers 2]

Kit: prepare once (decode, resize, uint8 shards), then memory-mapped uint8 batches read in the
main process; the Lab conversion runs on the whole batch on the training device (kornia).
Tutorial: every sample opens its JPEG with PIL, resizes it and converts it with
``skimage.color.rgb2lab``, in ``--workers`` DataLoader processes. Same images, same batch size.

Prints batches/s (median of ``--repeats`` passes) for the tutorial; for the kit's CPU share when
Lab runs on a GPU (uint8 batches: what the CPU must sustain on Kaggle); for the kit with Lab on
the CPU as well (training without a GPU); and, when CUDA is present, for uint8 batches -> GPU ->
Lab. Ratios to the tutorial, and the prepare time per 1000 images.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.color import rgb2lab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils import color, config, data  # noqa: E402
from utils.sources import demo_cartoon_frames, prepare_workers, skimage_photos  # noqa: E402


def write_jpegs(root: Path, count: int, seed: int = 0) -> None:
    """``count`` JPEG files per domain at typical still sizes, in 8 group folders."""
    rng = np.random.default_rng(seed)
    photos = list(skimage_photos().values())
    frames = demo_cartoon_frames(count, 384, seed)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        top, left = rng.integers(0, h // 4), rng.integers(0, w // 4)
        still = Image.fromarray(photo[top:, left:]).resize((640, 360))
        for domain, image in (("movie", still), ("cartoon", Image.fromarray(next(frames).rgb).resize((512, 384)))):
            folder = root / domain / f"group_{i % 8}"
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:05d}.jpg", quality=90)


class TutorialDataset(torch.utils.data.Dataset):
    """The widely used tutorial recipe: PIL open + resize + rgb2lab for every sample, every epoch."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = Image.open(self.paths[i]).convert("RGB").resize((self.size, self.size), Image.BICUBIC)
        lab = torch.from_numpy(rgb2lab(np.array(image)).astype("float32")).permute(2, 0, 1)
        return lab[[0]] / 50.0 - 1.0, lab[[1, 2]] / 110.0


def lab_on_gpu(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = color.uint8_to_model_io(batch.cuda(non_blocking=True))
    torch.cuda.synchronize()  # count the conversion, not just its launch
    return out


def batches_per_second(loader: torch.utils.data.DataLoader, to_model_io=None) -> float:
    started, n = time.perf_counter(), 0
    for batch in loader:
        if to_model_io is not None:
            to_model_io(batch)
        n += 1
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="images per domain")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers, the same for both")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, args.images)
        n_test = max(1, args.images // 8)
        params = config.resolve_params(
            "demo",
            {"source": "folder", "cartoon_dir": str(root / "cartoon"), "movie_dir": str(root / "movie"),
             "image_size": args.size, "train_per_domain": args.images - n_test, "test_per_domain": n_test},
        )  # fmt: skip
        started = time.perf_counter()
        data.prepare_data(params, root / "run")
        prepare_s = time.perf_counter() - started
        prepared = 2 * args.images

        shard = data.load_shard(root / "run", "movie", "train")
        kit_set = data.ShardDataset(shard, np.arange(len(shard)))
        files = sorted((root / "movie").rglob("*.jpg"))[: len(kit_set)]
        tutorial_set = TutorialDataset(files, args.size)
        loader_args = dict(batch_size=args.batch_size, shuffle=True, drop_last=True)
        cases = {
            "tutorial: per-file PIL + rgb2lab": (tutorial_set, args.workers, None),
            "kit: uint8 shard batches (Lab on GPU)": (kit_set, 0, None),
            "kit: uint8 shard batches + Lab on CPU": (kit_set, 0, color.uint8_to_model_io),
        }
        if torch.cuda.is_available():
            cases["kit: uint8 -> GPU -> Lab on GPU"] = (kit_set, 0, lab_on_gpu)
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, (dataset, workers, step) in cases.items():
                loader = torch.utils.data.DataLoader(dataset, num_workers=workers, **loader_args)
                results[name].append(batches_per_second(loader, step))

    print(f"images: {len(kit_set)} at {args.size} px, batch {args.batch_size}, tutorial with {args.workers} "
          f"DataLoader workers, kit with 0, {torch.get_num_threads()} torch threads, median of {args.repeats}")  # fmt: skip
    tutorial_bps = statistics.median(next(iter(results.values())))
    for name, values in results.items():
        bps = statistics.median(values)
        print(f"{name:42s} {bps:8.1f} batches/s {bps * args.batch_size:9.1f} images/s  "
              f"ratio {bps / tutorial_bps:6.1f}x")  # fmt: skip
    print("target: the kit's CPU share (uint8 batches) >= 10x the tutorial")
    print(f"prepare: {prepare_s:.1f} s for {prepared} images = {prepare_s / prepared * 1000:.1f} s per 1000 images "
          f"({prepare_workers(params)} decoding processes)")  # fmt: skip


if __name__ == "__main__":
    main()
