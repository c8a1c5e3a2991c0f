"""Data: sources (demo, folder), splits, uint8 shards with a manifest, and the torch Dataset.

A prepared run holds ``data/<domain>_<split>.npy`` (N x S x S x 3 uint8 RGB, opened with mmap),
``data/manifest.csv`` (one row per shard image, in shard order) and ``data/rejected.csv``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import skimage.data
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from utils.config import DOMAINS, RunParams, write_csv_atomic
from utils.images import find_images, load_rgb, resize_center_crop

SPLITS: tuple[str, ...] = ("train", "test")
MANIFEST_COLUMNS = ["domain", "split", "index", "source", "sha1", "group", "width", "height"]
REJECTED_COLUMNS = ["domain", "source", "reason"]


@dataclass(frozen=True)
class Candidate:
    """One image offered by a source: decoded pixels, or the reason it was rejected."""

    source: str
    group: str
    rgb: np.ndarray | None
    reason: str | None = None


# --- demo sources ------------------------------------------------------------------------------

_SKIMAGE_PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")


def skimage_photos() -> dict[str, np.ndarray]:
    """The colour photographs that ship inside scikit-image (those that load without network)."""
    photos = {}
    for name in _SKIMAGE_PHOTOS:
        try:
            image = getattr(skimage.data, name)()
        except Exception:  # noqa: BLE001 - a photo that needs a download is simply not used
            continue
        image = image[0] if isinstance(image, tuple) else image
        if image.ndim == 3 and image.shape[2] == 3:
            photos[name] = np.ascontiguousarray(image, dtype=np.uint8)
    if not photos:
        raise RuntimeError("none of scikit-image's bundled colour photographs could be loaded")
    return photos


def demo_movie_stills(count: int, size: int, seed: int) -> Iterator[Candidate]:
    """Random crops, scales and horizontal flips of scikit-image's photographs ("movie" domain)."""
    photos = skimage_photos()
    names = sorted(photos)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        name = names[rng.integers(len(names))]
        photo = photos[name]
        height, width = photo.shape[:2]
        side = int(rng.uniform(0.35, 1.0) * min(height, width))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crop = photo[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        rgb = resize_center_crop(np.ascontiguousarray(crop), size)
        yield Candidate(f"skimage:{name}[{top}:{top + side},{left}:{left + side}]", name, rgb)


_SKIES = [(120, 190, 250), (250, 170, 90), (250, 150, 190), (30, 40, 110), (170, 220, 250)]
_GROUNDS = [(70, 170, 60), (230, 200, 120), (120, 120, 130), (40, 120, 60), (200, 110, 60)]
_PALETTE = [
    (230, 40, 40),
    (250, 140, 20),
    (250, 220, 40),
    (60, 180, 60),
    (40, 90, 220),
    (150, 60, 200),
    (250, 120, 180),
    (40, 200, 220),
    (140, 80, 30),
    (245, 245, 245),
]
_SKIN = [(255, 214, 170), (230, 170, 120), (160, 100, 60), (120, 220, 120)]
_OUTLINE = (25, 25, 25)


def draw_cartoon_frame(rng: np.random.Generator, size: int) -> np.ndarray:
    """One cel-style frame: flat sky and ground, outlined flat shapes, a small saturated palette."""
    canvas = 2 * size  # drawn at twice the size, then downsampled: clean antialiased outlines
    image = Image.new("RGB", (canvas, canvas), _SKIES[rng.integers(len(_SKIES))])
    draw = ImageDraw.Draw(image)
    line = max(2, canvas // 80)

    def colour() -> tuple[int, ...]:
        return _PALETTE[rng.integers(len(_PALETTE))]

    def ellipse(cx: float, cy: float, rx: float, ry: float, fill: tuple[int, ...]) -> None:
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill, outline=_OUTLINE, width=line)

    horizon = int(canvas * rng.uniform(0.5, 0.75))
    draw.rectangle((0, horizon, canvas, canvas), fill=_GROUNDS[rng.integers(len(_GROUNDS))])
    draw.line((0, horizon, canvas, horizon), fill=_OUTLINE, width=line)

    # sun or moon, clouds
    ellipse(
        rng.uniform(0.1, 0.9) * canvas,
        rng.uniform(0.08, 0.3) * canvas,
        canvas * 0.08,
        canvas * 0.08,
        ((250, 210, 30), (250, 120, 20), (240, 240, 220))[rng.integers(3)],
    )
    for _ in range(rng.integers(0, 3)):
        cx, cy = rng.uniform(0, canvas), rng.uniform(0.05, 0.35) * canvas
        ellipse(cx, cy, canvas * rng.uniform(0.08, 0.15), canvas * 0.04, (250, 250, 250))

    # houses: wall, roof, door, window
    for _ in range(rng.integers(0, 3)):
        w = canvas * rng.uniform(0.18, 0.3)
        h = w * rng.uniform(0.6, 1.0)
        x0 = rng.uniform(0, canvas - w)
        y1 = horizon + rng.uniform(0, 0.1) * canvas
        draw.rectangle((x0, y1 - h, x0 + w, y1), fill=colour(), outline=_OUTLINE, width=line)
        roof = [(x0 - w * 0.1, y1 - h), (x0 + w * 1.1, y1 - h), (x0 + w / 2, y1 - h - w * 0.5)]
        draw.polygon(roof, fill=colour(), outline=_OUTLINE, width=line)
        draw.rectangle((x0 + w * 0.4, y1 - h * 0.45, x0 + w * 0.6, y1), fill=colour(), outline=_OUTLINE, width=line)
        draw.rectangle(
            (x0 + w * 0.1, y1 - h * 0.8, x0 + w * 0.3, y1 - h * 0.55),
            fill=(170, 220, 250),
            outline=_OUTLINE,
            width=line,
        )

    # trees: trunk and crown
    for _ in range(rng.integers(0, 4)):
        cx = rng.uniform(0, canvas)
        base = horizon + rng.uniform(0, 0.15) * canvas
        tw, th = canvas * 0.03, canvas * rng.uniform(0.1, 0.2)
        draw.rectangle((cx - tw, base - th, cx + tw, base), fill=(140, 80, 30), outline=_OUTLINE, width=line)
        crown = ((60, 180, 60), (30, 130, 50), (250, 140, 20), (230, 40, 40))[rng.integers(4)]
        ellipse(cx, base - th, canvas * rng.uniform(0.06, 0.1), canvas * rng.uniform(0.06, 0.12), crown)

    # characters: body, head, eyes
    for _ in range(rng.integers(1, 3)):
        cx = rng.uniform(0.15, 0.85) * canvas
        base = rng.uniform(0.8, 0.98) * canvas
        scale = canvas * rng.uniform(0.1, 0.18)
        ellipse(cx, base - scale * 0.6, scale * 0.45, scale * 0.6, colour())
        head_y = base - scale * 1.45
        ellipse(cx, head_y, scale * 0.38, scale * 0.38, _SKIN[rng.integers(len(_SKIN))])
        for dx in (-0.14, 0.14):
            ellipse(cx + dx * scale, head_y - 0.05 * scale, scale * 0.09, scale * 0.11, (255, 255, 255))
            r = scale * 0.04
            draw.ellipse((cx + dx * scale - r, head_y - r, cx + dx * scale + r, head_y + r), fill=_OUTLINE)

    return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def demo_cartoon_frames(count: int, size: int, seed: int) -> Iterator[Candidate]:
    """Seeded procedural cel-style frames ("cartoon" domain): same seed, same images."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        yield Candidate(f"procedural:seed{seed}:{i}", f"frame{i}", draw_cartoon_frame(rng, size))


# --- folder source -----------------------------------------------------------------------------


def folder_images(directory: str | Path, size: int, seed: int) -> Iterator[Candidate]:
    """Every image under ``directory`` (recursively), in a seeded order, decoded and resized.

    The group is the parent folder (a film, a show), recorded in the manifest.
    """
    directory = Path(directory)
    paths = find_images(directory)
    order = np.random.default_rng(seed).permutation(len(paths))
    for i in order:
        path = paths[i]
        rgb, reason = load_rgb(path)
        group = str(path.parent.relative_to(directory))
        if rgb is None:
            yield Candidate(str(path), group, None, reason)
        else:
            yield Candidate(str(path), group, resize_center_crop(rgb, size), None)


# --- shards ------------------------------------------------------------------------------------


def shard_path(run_dir: str | Path, domain: str, split: str) -> Path:
    return Path(run_dir) / "data" / f"{domain}_{split}.npy"


def load_shard(run_dir: str | Path, domain: str, split: str) -> np.ndarray:
    """A shard as a read-only memory map (N x S x S x 3 uint8)."""
    path = shard_path(run_dir, domain, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the prepare stage for this run directory")
    return np.load(path, mmap_mode="r")


def _write_npy_atomic(path: Path, images: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=images.shape)
    for start in range(0, len(images), 512):  # chunked: the source may be a large memory map
        out[start : start + 512] = images[start : start + 512]
    out.flush()
    del out
    os.replace(tmp, path)


def split_sizes(n_accepted: int, n_train: int, n_test: int, domain: str) -> tuple[int, int]:
    """Requested train/test counts, or the same ratio when fewer images were usable."""
    if n_accepted >= n_train + n_test:
        return n_train, n_test
    test = max(1, round(n_accepted * n_test / (n_train + n_test)))
    train = n_accepted - test
    if train < 2:
        raise ValueError(f"domain {domain!r}: only {n_accepted} usable images; need at least 3 (2 to train, 1 to test)")
    return train, test


def write_domain_shards(
    candidates: Iterator[Candidate],
    data_dir: Path,
    domain: str,
    size: int,
    n_train: int,
    n_test: int,
) -> tuple[list[dict], list[dict]]:
    """Accept candidates until ``n_train + n_test`` images, then write the train and test shards.

    Decoded images go straight into a memory-mapped pool, so memory stays flat. Exact pixel
    duplicates are kept once. Returns the manifest rows and the rejected rows.
    """
    wanted = n_train + n_test
    pool_path = data_dir / f".{domain}_pool.npy"
    pool = np.lib.format.open_memmap(pool_path, mode="w+", dtype=np.uint8, shape=(wanted, size, size, 3))
    accepted: list[dict] = []
    rejected: list[dict] = []
    seen: dict[str, str] = {}
    progress = tqdm(total=wanted, desc=f"prepare {domain}", unit="img")
    for cand in candidates:
        if cand.rgb is None:
            rejected.append({"domain": domain, "source": cand.source, "reason": cand.reason})
            continue
        sha1 = hashlib.sha1(cand.rgb.tobytes()).hexdigest()
        if sha1 in seen:
            rejected.append({"domain": domain, "source": cand.source, "reason": f"duplicate of {seen[sha1]}"})
            continue
        seen[sha1] = cand.source
        pool[len(accepted)] = cand.rgb
        accepted.append(
            {
                "domain": domain,
                "source": cand.source,
                "sha1": sha1,
                "group": cand.group,
                "width": cand.rgb.shape[1],
                "height": cand.rgb.shape[0],
            }
        )
        progress.update(1)
        if len(accepted) == wanted:
            break
    progress.close()
    train, test = split_sizes(len(accepted), n_train, n_test, domain)
    rows = []
    for split, start, count in (("train", 0, train), ("test", train, test)):
        _write_npy_atomic(shard_path(data_dir.parent, domain, split), pool[start : start + count])
        rows += [{**row, "split": split, "index": i} for i, row in enumerate(accepted[start : start + count])]
    del pool
    pool_path.unlink()
    return rows, rejected


def domain_candidates(params: RunParams, domain: str) -> Iterator[Candidate]:
    """The configured source's images for one domain."""
    seed = params.seed * 1000 + DOMAINS.index(domain)
    count = params.train_per_domain + params.test_per_domain
    if params.source == "demo":
        make = demo_cartoon_frames if domain == "cartoon" else demo_movie_stills
        return make(count, params.image_size, seed)
    if params.source == "folder":
        return folder_images(getattr(params, f"{domain}_dir"), params.image_size, seed)
    raise ValueError(f"parameter 'source' = {params.source!r}: unknown source")


def prepare_data(params: RunParams, run_dir: str | Path) -> pd.DataFrame:
    """Write every domain's train/test shards, ``manifest.csv`` and ``rejected.csv``.

    Returns:
        The manifest.
    """
    data_dir = Path(run_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest_rows: list[dict] = []
    rejected_rows: list[dict] = []
    for domain in DOMAINS:
        rows, rejected = write_domain_shards(
            domain_candidates(params, domain),
            data_dir,
            domain,
            params.image_size,
            params.train_per_domain,
            params.test_per_domain,
        )
        manifest_rows += rows
        rejected_rows += rejected
    manifest = pd.DataFrame(manifest_rows, columns=MANIFEST_COLUMNS)
    write_csv_atomic(data_dir / "rejected.csv", pd.DataFrame(rejected_rows, columns=REJECTED_COLUMNS))
    write_csv_atomic(data_dir / "manifest.csv", manifest)
    return manifest


def load_manifest(run_dir: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / "data" / "manifest.csv")


# --- the torch Dataset -------------------------------------------------------------------------


class ShardDataset(torch.utils.data.Dataset):
    """Selected rows of a shard, as H x W x 3 uint8 tensors; Lab conversion happens per batch."""

    def __init__(self, images: np.ndarray, indices: np.ndarray) -> None:
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.images[self.indices[i]]))


def train_val_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded held-out validation slice of a train shard: (train indices, val indices)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
    return order[n_val:], order[:n_val]


def training_sets(
    run_dir: str | Path,
    model: str,
    params: RunParams,
) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """(train, validation) datasets for one model.

    ``cartoon`` and ``movie`` use their own domain's train shard; ``mixed`` takes equal halves of
    both domains' training (and validation) rows, the same total count as a single domain.
    """
    splits = {}
    for domain in DOMAINS:
        shard = load_shard(run_dir, domain, "train")
        splits[domain] = (shard, *train_val_indices(len(shard), params.val_fraction, params.seed))
    if model in DOMAINS:
        shard, train_idx, val_idx = splits[model]
        return ShardDataset(shard, train_idx), ShardDataset(shard, val_idx)
    half_train = min(len(s[1]) for s in splits.values()) // 2
    half_val = max(1, min(len(s[2]) for s in splits.values()) // 2)
    train = [ShardDataset(s, t[:half_train]) for s, t, _ in splits.values()]
    val = [ShardDataset(s, v[:half_val]) for s, _, v in splits.values()]
    return torch.utils.data.ConcatDataset(train), torch.utils.data.ConcatDataset(val)
