"""Near-duplicate groups: both error rates per scheme and threshold, the grouping's speed, prepare's cost.

    python benchmarks/bench_near_duplicates.py [--seed 0] [--distinct 600] [--group-hashes 20000]
        [--prepare-images 0] [--baseline-kit DIR] [--workers 0] [--json PATH]

1. Error rates (offline images only, written as files and read as the prepare's hash pass reads them: a JPEG
   decoded at reduced scale, other files in full). Distinct images: the colour photographs of scikit-image and
   matplotlib with the quarters of each, ``--distinct`` demo cartoon frames (PNG) and as many generated clip-art
   images (shapes on white, PNG). Copies: ``FRAMES_PER_ORIGINAL`` frames of each of those photographs, of 10
   cartoon frames and of 10 clip-art images, each a pan (a window of 90% of each side, anywhere: moved by up to
   10% of each side), rescaled to 50-100% and saved as JPEG at quality 70-95 (:func:`panned_frame`). The kit (the
   hash within the default bits, and the thumbnail check) groups each set as the prepare does: the pairs of frames
   of one photograph in different groups (target 0), the share of all copies missed (outside the largest group of
   their original), and per distinct set the share of images merged with another (in a group of two or more;
   clip art: target <= 5%). For contrast, each hash alone per threshold: copies and photograph pairs missed,
   images merged, and the share of pairs within the threshold. A missed copy leaks across the split; a false merge
   only makes a group larger. ``--seed`` draws other frames, clip art, pans and qualities (held-out sets).
2. Grouping speed: ``--group-hashes`` generated images (cartoon frames, clip art, crops of the photographs),
   hashed and thumbnailed, grouped by the kit at its default (near_duplicates.near_duplicate_groups, median of 3;
   target: < 10 s for 20,000 images on 2 cores); its hash search alone beside a pure-Python n^2 loop over a subset
   (extrapolated) and a vectorised numpy n^2 comparison, both of which must find the search's pairs.
3. Prepare (with ``--prepare-images N``): N JPEGs per domain in flat folders (cartoon frames 512x384, crops of
   the photographs 640x360), prepared at 256 px with N/5 test and the rest train images, each run in a fresh
   process: with the default near_duplicate_bits, with 0 (no hash pass: folder groups only) and, with
   ``--baseline-kit DIR`` (another checkout, e.g. ``git worktree add DIR <commit>``), that kit's prepare.
   Target: <= 1.3x the time without near-duplicate groups. The paper's size: ``--prepare-images 10000``. With
   ``--workers 1`` all the work runs in the prepare's own process, and its CPU time is compared too: on a
   machine others are loading, the CPU time moves far less than the wall time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageDraw
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

KIT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT_ROOT))

from benchmarks.harness import cpu_count, median_seconds, timed  # noqa: E402
from benchmarks.results import Figure, Results, add_json_argument  # noqa: E402
from utils.core.domains import DEMO_DOMAINS  # noqa: E402
from utils.core.parameters import RunParams  # noqa: E402
from utils.data.demo import DEMO_PHOTOS, demo_photos, draw_cartoon_frame  # noqa: E402
from utils.data.near_duplicates import (  # noqa: E402
    HASH_SIDE,
    content_box,
    hash_array,
    near_duplicate_groups,
    near_pairs,
    near_signature,
    perceptual_hash,
    shrink_to_hash_side,
)
from utils.imaging.images import is_jpeg, load_rgb  # noqa: E402

DEFAULT_BITS = RunParams.near_duplicate_bits
GROUPING_TARGET_S = 10.0
PREPARE_TARGET_X = 1.3
CLIP_ART_MERGED_TARGET = 0.05
PAN = 0.10  # of each side: a frame is a window of 1 - PAN of each side, anywhere in the original
RESCALE = (0.5, 1.0)
JPEG_QUALITY = (70, 95)
FRAMES_PER_ORIGINAL = 6
PALETTE = [(230, 40, 40), (250, 140, 20), (250, 220, 40), (60, 180, 60), (40, 90, 220), (150, 60, 200),
           (250, 120, 180), (40, 200, 220), (140, 80, 30), (25, 25, 25)]  # fmt: skip


# --- images ------------------------------------------------------------------------------------


def clip_art(rng: np.random.Generator, width: int = 400, height: int = 300) -> np.ndarray:
    """A few outlined flat shapes around one point on white, like a clip-art object."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    cx, cy = rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height
    span, line = rng.uniform(0.25, 0.45) * min(width, height), max(1, width // 150)
    for _ in range(rng.integers(2, 6)):
        x, y = cx + rng.normal() * span * 0.4, cy + rng.normal() * span * 0.4
        r, fill = span * rng.uniform(0.2, 0.6), PALETTE[rng.integers(len(PALETTE))]
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse((x - r, y - r * rng.uniform(0.5, 1.5), x + r, y + r * rng.uniform(0.5, 1.5)), fill=fill,
                         outline=(20, 20, 20), width=line)  # fmt: skip
        elif kind == 1:
            draw.rectangle((x - r, y - r * 0.7, x + r, y + r * 0.7), fill=fill, outline=(20, 20, 20), width=line)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 7)))
            draw.polygon([(x + r * np.cos(a), y + r * np.sin(a)) for a in angles], fill=fill, outline=(20, 20, 20))
    return np.asarray(image)


def encoded(rgb: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, quality=quality)
    return buffer.getvalue()


def panned_frame(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
    """One frame of ``rgb`` as a JPEG: a window of 1 - ``PAN`` of each side placed anywhere (a pan of up to PAN of
    each side), rescaled by a factor in ``RESCALE``, saved at a quality in ``JPEG_QUALITY``."""
    height, width = rgb.shape[:2]
    window_h, window_w = round(height * (1 - PAN)), round(width * (1 - PAN))
    top, left = int(rng.integers(0, height - window_h + 1)), int(rng.integers(0, width - window_w + 1))
    scale = rng.uniform(*RESCALE)
    window = Image.fromarray(np.ascontiguousarray(rgb[top : top + window_h, left : left + window_w]))
    frame = window.resize((max(1, round(window_w * scale)), max(1, round(window_h * scale))), Image.Resampling.LANCZOS)
    return encoded(np.asarray(frame), "JPEG", int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))


def panned_frames(rgb: np.ndarray, rng: np.random.Generator, count: int = FRAMES_PER_ORIGINAL) -> list[bytes]:
    return [panned_frame(rgb, rng) for _ in range(count)]


def colour_photographs() -> dict[str, np.ndarray]:
    return demo_photos(DEMO_PHOTOS)


def quarters(photo: np.ndarray) -> list[np.ndarray]:
    h, w = photo.shape[:2]
    return [photo[i * h // 2 : (i + 1) * h // 2, j * w // 2 : (j + 1) * w // 2] for i in (0, 1) for j in (0, 1)]


def write_files(folder: Path, images: list[bytes], suffix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}{suffix}" for i in range(len(images))]
    for path, data in zip(paths, images):
        path.write_bytes(data)
    return paths


# --- hash schemes ------------------------------------------------------------------------------


def working_image(path: Path) -> Image.Image:
    """A file as the prepare's hash pass sees it: a JPEG decoded at reduced scale, other files in full, shrunk."""
    rgb, reason = load_rgb(path, accept_gray=True, draft_side=HASH_SIDE if is_jpeg(path) else 0)
    if rgb is None:
        raise RuntimeError(f"{path}: {reason}")
    return shrink_to_hash_side(Image.fromarray(rgb))


def cropped(image: Image.Image) -> Image.Image | None:
    box = content_box(np.asarray(image))
    return None if box is None else image.crop(box)


def words(*hashes: imagehash.ImageHash) -> np.ndarray:
    return hash_array(["".join(str(h) for h in hashes)])[0]


def chroma(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    _, cb, cr = image.convert("YCbCr").split()
    return cb, cr


def kit_scheme(image: Image.Image) -> np.ndarray | None:
    digest = perceptual_hash(image)
    return hash_array([digest])[0] if digest else None


def on_content(hashes: Callable[[Image.Image], np.ndarray]) -> Callable[[Image.Image], np.ndarray | None]:
    def scheme(image: Image.Image) -> np.ndarray | None:
        content = cropped(image)
        return None if content is None else hashes(content)

    return scheme


KIT = f"kit: hash <= {DEFAULT_BITS} bits + thumbnail check"
KIT_HASH = "kit's hash alone: pHash+dHash+vertical dHash, content crop"
SCHEMES: dict[str, tuple[Callable[[Image.Image], np.ndarray | None], tuple[int, ...]]] = {
    "pHash, whole image": (lambda im: words(imagehash.phash(im)), (8, 10, 12, 14, 16, 18, 20)),
    "pHash, content crop": (on_content(lambda im: words(imagehash.phash(im))), (8, 10, 12, 14, 16, 18, 20)),
    "pHash+dHash, content crop": (
        on_content(lambda im: words(imagehash.phash(im), imagehash.dhash(im))),
        (16, 20, 24, 28, 32, 36, 40),
    ),
    KIT_HASH: (kit_scheme, (24, 28, 30, 32, 34, 36, 38, 40, 42, 44, 48, 56, 64)),
    "pHash+dHash+Cb, Cr pHash, content crop": (
        on_content(lambda im: words(imagehash.phash(im), imagehash.dhash(im), *map(imagehash.phash, chroma(im)))),
        (32, 40, 48, 56, 64, 72),
    ),
}


def distances(hashes: list[np.ndarray | None]) -> np.ndarray:
    """Summed Hamming distances of every pair (brute force: the sets are small); no hash: never close."""
    width = max(len(h) for h in hashes if h is not None)
    table = np.array([h if h is not None else np.zeros(width, np.uint64) for h in hashes], dtype=np.uint64)
    matrix = np.bitwise_count(table[:, None, :] ^ table[None, :, :]).sum(axis=2, dtype=np.int32)
    missing = np.array([h is None for h in hashes])
    matrix[missing, :] = matrix[:, missing] = 1 << 20
    np.fill_diagonal(matrix, 1 << 20)
    return matrix


def components(matrix: np.ndarray, threshold: int) -> np.ndarray:
    return connected_components(csr_matrix(matrix <= threshold), directed=False)[1]


def missed_share(labels: np.ndarray, owners: np.ndarray) -> float:
    """The share of copies outside the largest group of their original's copies."""
    missed = 0
    for owner in np.unique(owners):
        mine = labels[owners == owner]
        missed += len(mine) - np.bincount(mine).max()
    return missed / len(owners)


def pairs_split(labels: np.ndarray, owners: np.ndarray, among: np.ndarray) -> tuple[int, int]:
    """(pairs of copies of one original in different groups, all pairs of copies of one original), over the
    copies ``among`` selects."""
    same = (owners[:, None] == owners[None, :]) & among[:, None] & among[None, :]
    upper = np.triu(same, 1)
    return int((upper & (labels[:, None] != labels[None, :])).sum()), int(upper.sum())


def pairs_joined(labels: np.ndarray, scenes: np.ndarray, among: np.ndarray) -> int:
    """Pairs of copies of different scenes (a photograph and its quarters are one scene) in one group."""
    other = (scenes[:, None] != scenes[None, :]) & among[:, None] & among[None, :]
    return int(np.triu(other & (labels[:, None] == labels[None, :]), 1).sum())


def merged_share(labels: np.ndarray) -> float:
    """The share of a set of distinct images in a group of two or more."""
    return float((np.bincount(labels)[labels] > 1).mean())


def kit_labels(images: list[Image.Image]) -> np.ndarray:
    """Each image's group, as the prepare groups them (hash and thumbnail from the same content crop)."""
    signatures = [near_signature(image) for image in images]
    groups = near_duplicate_groups([str(i) for i in range(len(images))], [h for h, _ in signatures], DEFAULT_BITS,
                                   [t for _, t in signatures])  # fmt: skip
    return np.unique(groups, return_inverse=True)[1]


def kit_error_rates(results: Results, images: dict[str, list[Image.Image]], owners: np.ndarray,
                    scenes: np.ndarray, photo_copies: np.ndarray) -> None:  # fmt: skip
    labels = kit_labels(images["copies"])
    missed, total = pairs_split(labels, owners, photo_copies)
    results.add(f"{KIT}: missed pairs among photographs", missed, "pairs", "0", missed == 0,
                f"of {total} pairs of frames of one photograph")  # fmt: skip
    results.add(f"{KIT}: frames of other scenes joined", pairs_joined(labels, scenes, photo_copies), "pairs",
                note="pairs of frames of different photographs (a photograph and its quarters: one scene)")  # fmt: skip
    results.add(f"{KIT}: copies missed", missed_share(labels, owners), "share",
                note="frames of photographs, cartoon frames and clip art")  # fmt: skip
    for name, ims in images.items():
        if name == "copies":
            continue
        share = merged_share(kit_labels(ims))
        clip = name == "clip art"
        results.add(f"{KIT}: {name} merged", share, "share", f"<= {CLIP_ART_MERGED_TARGET:.0%}" if clip else None,
                    share <= CLIP_ART_MERGED_TARGET if clip else None, f"of {len(ims)} distinct images")  # fmt: skip


def hash_error_rates(results: Results, images: dict[str, list[Image.Image]], owners: np.ndarray,
                     photo_copies: np.ndarray) -> None:  # fmt: skip
    """Each hash scheme alone, per threshold: what the hash can and cannot do without the thumbnail check."""
    sets = [name for name in images if name != "copies"]
    print(f"\n{'scheme':58s} {'bits':>4s} {'copies missed':>13s} {'photo pairs':>11s}  "
          + "  ".join(f"{n:>22s}" for n in sets))  # fmt: skip
    for scheme, (hash_of, thresholds) in SCHEMES.items():
        matrices = {name: distances([hash_of(im) for im in ims]) for name, ims in images.items()}
        for threshold in thresholds:
            labels = components(matrices["copies"], threshold)
            missed, split = missed_share(labels, owners), pairs_split(labels, owners, photo_copies)[0]
            merged = {name: merged_share(components(matrices[name], threshold)) for name in sets}
            within = {name: float((matrices[name][np.triu_indices(len(matrices[name]), 1)] <= threshold).mean())
                      for name in sets}  # fmt: skip
            print(f"{scheme:58s} {threshold:4d} {missed:13.3f} {split:11d}  "
                  + "  ".join(f"{merged[n]:8.3f} (pairs {within[n]:6.0e})" for n in sets), flush=True)  # fmt: skip
            label = f"{scheme}, <= {threshold} bits"
            results.figures.append(Figure(f"{label}: copies missed", missed, "share"))
            results.figures.append(Figure(f"{label}: missed pairs among photographs", split, "pairs"))
            for name in sets:
                results.figures.append(Figure(f"{label}: {name} merged", merged[name], "share"))
                results.figures.append(Figure(f"{label}: {name} pairs within", within[name], "of pairs"))
        results.write()
    print()


def error_rates(results: Results, seed: int, distinct: int, folder: Path) -> None:
    rng = np.random.default_rng(seed)
    photos = colour_photographs()
    photographs = {
        **photos,
        **{f"{name} quarter {k}": q for name, p in photos.items() for k, q in enumerate(quarters(p))},
    }
    sets = {
        "photographs": write_files(folder / "photos", [encoded(p, "JPEG") for p in photographs.values()], ".jpg"),
        "cartoon frames": write_files(folder / "cartoon", [encoded(draw_cartoon_frame(rng, 256), "PNG")
                                                           for _ in range(distinct)], ".png"),
        "clip art": write_files(folder / "clipart", [encoded(clip_art(rng), "PNG") for _ in range(distinct)], ".png"),
    }  # fmt: skip
    originals = [*photographs.values(), *(draw_cartoon_frame(rng, 640) for _ in range(10))]
    originals += [clip_art(rng, 800, 600) for _ in range(10)]
    copies = [panned_frames(original, rng) for original in originals]
    copy_paths = write_files(folder / "copies", [c for per in copies for c in per], ".jpg")
    owners = np.repeat(np.arange(len(originals)), [len(per) for per in copies])
    scene_names = [name.split(" quarter ")[0] for name in photographs] + [f"generated {i}" for i in range(20)]
    scenes = np.unique(scene_names, return_inverse=True)[1][owners]
    photo_copies = owners < len(photographs)
    results.describe(seed=seed, photographs=len(sets["photographs"]), cartoon_frames=distinct, clip_art=distinct,
                     copies=f"{len(copy_paths)} frames of {len(originals)} originals ({len(photographs)} "
                     f"photographs, 10 cartoon frames, 10 clip art)")  # fmt: skip
    images = {name: [working_image(p) for p in paths] for name, paths in [*sets.items(), ("copies", copy_paths)]}
    kit_error_rates(results, images, owners, scenes, photo_copies)
    hash_error_rates(results, images, owners, photo_copies)


# --- grouping speed ----------------------------------------------------------------------------


def generated_signature(task: tuple[int, int]) -> tuple[str, str]:
    """The hash and thumbnail of one generated image: a cartoon frame, clip art or a random crop of a photograph."""
    index, seed = task
    rng = np.random.default_rng([seed, index])
    kind = index % 3
    if kind == 0:
        return near_signature(draw_cartoon_frame(rng, 128))
    if kind == 1:
        return near_signature(clip_art(rng, 200, 150))
    photos = list(colour_photographs().values())
    photo = photos[rng.integers(len(photos))]
    side = int(rng.uniform(0.2, 1.0) * min(photo.shape[:2]))
    top, left = rng.integers(0, photo.shape[0] - side + 1), rng.integers(0, photo.shape[1] - side + 1)
    return near_signature(photo[top : top + side, left : left + side])


def python_pairs(hashes: list[int], threshold: int) -> list[tuple[int, int]]:
    """The baseline: every pair compared in a Python loop (192-bit ints)."""
    return [
        (i, j)
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if (hashes[i] ^ hashes[j]).bit_count() <= threshold
    ]


def numpy_pairs(table: np.ndarray, threshold: int, block: int = 512) -> set[tuple[int, int]]:
    """Every pair compared, vectorised in blocks of rows."""
    found = set()
    for first in range(0, len(table), block):
        rows = table[first : first + block]
        close = np.bitwise_count(rows[:, None, :] ^ table[None, :, :]).sum(axis=2) <= threshold
        for i, j in zip(*np.nonzero(close)):
            if first + i < j:
                found.add((first + int(i), int(j)))
    return found


def grouping_speed(results: Results, count: int, seed: int, workers: int) -> None:
    started = time.perf_counter()
    tasks = [(i, seed) for i in range(count)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            signatures = list(pool.map(generated_signature, tasks, chunksize=64))
    else:
        signatures = list(map(generated_signature, tasks))
    hashes, thumbnails = map(list, zip(*[s for s in signatures if s[0]]))
    print(f"{len(hashes)} hashes and thumbnails of generated images in {time.perf_counter() - started:.0f} s")
    folders = [f"{i}.png" for i in range(len(hashes))]
    kit_s, groups = median_seconds(lambda: near_duplicate_groups(folders, hashes, DEFAULT_BITS, thumbnails), 3)
    results.add(f"kit: group {len(hashes)} images, hash <= {DEFAULT_BITS} bits + thumbnail check", kit_s, "s",
                f"< {GROUPING_TARGET_S:g}", kit_s < GROUPING_TARGET_S,
                f"{len(set(groups))} groups; multi-index search, thumbnail neighbours and check, components")  # fmt: skip
    table = hash_array(hashes)
    search_s, found = median_seconds(lambda: near_pairs(table, DEFAULT_BITS), 3)
    results.add(f"kit's hash search alone, {len(hashes)} hashes", search_s, "s", note=f"{len(found)} pairs")
    subset = min(len(hashes), 2000)
    ints = [int(h, 16) for h in hashes[:subset]]
    loop_s, loop = timed(lambda: python_pairs(ints, DEFAULT_BITS))
    loop_s *= (len(hashes) / subset) ** 2
    if set(loop) != set(map(tuple, near_pairs(table[:subset], DEFAULT_BITS).tolist())):
        raise RuntimeError("the multi-index search and the n^2 loop found different pairs")
    results.add("baseline: Python n^2 loop, extrapolated", loop_s, "s",
                note=f"timed on {subset} hashes, x ({len(hashes)}/{subset})^2")  # fmt: skip
    results.add("kit's hash search vs Python n^2 loop", loop_s / search_s, "x")
    numpy_s, brute = timed(lambda: numpy_pairs(table, DEFAULT_BITS))
    if brute != set(map(tuple, found.tolist())):
        raise RuntimeError("the multi-index search and the numpy n^2 comparison found different pairs")
    results.add(f"baseline: numpy n^2 comparison, {len(hashes)} hashes", numpy_s, "s", note=f"{len(brute)} pairs")
    results.add("kit's hash search vs numpy n^2 comparison", numpy_s / search_s, "x")


# --- prepare -----------------------------------------------------------------------------------


def write_prepare_source(root: Path, count: int, seed: int) -> None:
    """``count`` JPEGs per domain in flat folders: cartoon frames 512x384, crops of the photographs 640x360."""
    rng = np.random.default_rng(seed)
    photos = list(colour_photographs().values())
    for domain in DEMO_DOMAINS:
        (root / domain).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        frame = Image.fromarray(draw_cartoon_frame(rng, 384)).resize((512, 384))
        frame.save(root / "cartoon" / f"{i:05d}.jpg", quality=90)
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        crop_h = int(h * rng.uniform(0.4, 1.0))
        crop_w = min(w, int(crop_h * 16 / 9))
        top, left = rng.integers(0, h - crop_h + 1), rng.integers(0, w - crop_w + 1)
        still = Image.fromarray(photo[top : top + crop_h, left : left + crop_w]).resize((640, 360))
        still.save(root / "movie" / f"{i:05d}.jpg", quality=90)


PREPARE_SCRIPT = """
import json, resource, sys, time
from utils.core import config
from utils.data import prepare

def cpu_seconds():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

overrides = json.loads(sys.argv[1])
params = config.resolve_params("paper", overrides)
started, cpu_started = time.perf_counter(), cpu_seconds()
manifest = prepare.prepare_data(params, sys.argv[2])
print("PREPARED", json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds() - cpu_started,
                               "images": len(manifest),
                               "groups": int(manifest.groupby("domain")["group"].nunique().sum())}))
"""


def timed_prepare(kit: Path, overrides: dict, run_dir: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PREPARE_SCRIPT, json.dumps(overrides), str(run_dir)], cwd=kit,
                          capture_output=True, text=True)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("PREPARED ")]
    if done.returncode or not lines:
        raise RuntimeError(f"prepare in {kit} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(lines[-1].removeprefix("PREPARED "))


def prepare_cost(results: Results, count: int, seed: int, workers: int, baseline_kit: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_prepare_source(root, count, seed)
        n_test = count // 5
        overrides = {"source": "folder", "cartoon_dir": str(root / "cartoon"), "movie_dir": str(root / "movie"),
                     "train_per_domain": count - n_test, "test_per_domain": n_test, "prepare_workers": workers}  # fmt: skip
        runs = {f"kit, near_duplicate_bits {DEFAULT_BITS}": (KIT_ROOT, overrides),
                "kit, near_duplicate_bits 0 (no hash pass)": (KIT_ROOT, {**overrides, "near_duplicate_bits": 0})}  # fmt: skip
        if baseline_kit is not None:
            runs[f"baseline kit {baseline_kit}"] = (baseline_kit, overrides)
        measured = {}
        for i, (name, (kit, run_overrides)) in enumerate(runs.items()):
            measured[name] = timed_prepare(kit, run_overrides, root / f"run{i}")
            run = measured[name]
            note = (f"{run['images']} images, {run['groups']} groups, {run['seconds'] / run['images'] * 1000:.2f} ms "
                    f"each; CPU {run['cpu_seconds']:.0f} s")  # fmt: skip
            results.add(f"prepare {2 * count} JPEGs: {name}", run["seconds"], "s", note=note)
        kit = next(iter(measured.values()))
        for name, run in list(measured.items())[1:]:
            ratio = kit["seconds"] / run["seconds"]
            per_image = (kit["seconds"] / kit["images"]) / (run["seconds"] / run["images"])
            results.add(f"prepare with groups vs {name}", ratio, "x", f"<= {PREPARE_TARGET_X:g}",
                        ratio <= PREPARE_TARGET_X, f"{per_image:.3f}x per image")  # fmt: skip
            if workers == 1:  # all the work in the prepare's own process: CPU time, unmoved by other load
                cpu_ratio = kit["cpu_seconds"] / run["cpu_seconds"]
                per_image = (kit["cpu_seconds"] / kit["images"]) / (run["cpu_seconds"] / run["images"])
                results.add(f"prepare CPU time with groups vs {name}", cpu_ratio, "x", f"<= {PREPARE_TARGET_X:g}",
                            cpu_ratio <= PREPARE_TARGET_X, f"{per_image:.3f}x per image")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="draws the generated sets (another seed: held-out sets)")
    parser.add_argument("--distinct", type=int, default=600, help="cartoon frames and clip-art images; 0 skips 1.")
    parser.add_argument("--group-hashes", type=int, default=20000, help="hashes grouped for the speed; 0 skips 2.")
    parser.add_argument("--prepare-images", type=int, default=0, help="JPEGs per domain for 3.; 0 skips it")
    parser.add_argument("--baseline-kit", type=Path, default=None, help="another checkout whose prepare is timed")
    parser.add_argument("--workers", type=int, default=0, help="processes for hashing and prepare; 0 = every core")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    workers = args.workers or cpu_count()
    results = Results("bench_near_duplicates", args.json)
    results.describe(cores=cpu_count(), workers=workers, default_bits=DEFAULT_BITS,
                     load_average=" ".join(f"{x:.1f}" for x in os.getloadavg()))  # fmt: skip
    if args.distinct:
        with tempfile.TemporaryDirectory() as tmp:
            error_rates(results, args.seed, args.distinct, Path(tmp))
    if args.group_hashes:
        grouping_speed(results, args.group_hashes, args.seed, workers)
    if args.prepare_images:
        prepare_cost(results, args.prepare_images, args.seed, workers, args.baseline_kit)
    results.write()


if __name__ == "__main__":
    main()
