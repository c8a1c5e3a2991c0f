"""Where images come from: the demo generators, folders and Kaggle datasets, and the split.

Every source yields, per split, a stream of :class:`Candidate` images (decoded and resized, or
rejected with a reason). File sources assign whole groups (the parent folder: a film, a show, joined
with the folders of its near-duplicates: utils/near_duplicates.py) to one split, so frames of one film
never straddle train and test; the demo's movie crops are grouped and split by photograph in the same
way (``DEMO_MOVIE_TEST_PHOTOS``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import multiprocessing.process
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError  # the built-in TimeoutError from Python 3.11 on
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image, ImageDraw

from utils.config import DOMAINS, RunParams, exit_code_meaning
from utils.images import colorfulness, find_images, is_jpeg, load_rgb, resize_square
from utils.near_duplicates import HASH_SIDE, perceptual_hash
from utils.run_dir import write_text_atomic

SPLITS: tuple[str, ...] = ("test", "train")  # test first: its images win any duplicate


@dataclass(frozen=True)
class Candidate:
    """One image offered by a source: resized pixels and the sha1 of its decoded pixels, or a reason.

    ``group`` is the group it is split and evaluated by; ``folder_group`` the one its source gave it (the folder,
    the photograph), "" when the two are the same. ``hash``: its perceptual hash (utils/near_duplicates.py), ""
    when not taken. The hash pass leaves a JPEG undecided (neither pixels nor a reason): see ``decided``.
    """

    source: str
    group: str
    rgb: np.ndarray | None
    reason: str | None = None
    sha1: str = ""
    width: int = 0
    height: int = 0
    folder_group: str = ""
    hash: str = ""

    @classmethod
    def accepted(
        cls, source: str, group: str, rgb: np.ndarray, decoded_shape: tuple[int, ...], hash: str = ""
    ) -> Candidate:
        """A generated (demo) image: there is no file to decode, so its sha1 is of the pixels it holds."""
        sha1 = hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).hexdigest()
        return cls(source, group, rgb, None, sha1, decoded_shape[1], decoded_shape[0], hash=hash)

    @property
    def decided(self) -> bool:
        """Accepted (pixels) or rejected (a reason); a JPEG the hash pass only hashed is neither."""
        return self.rgb is not None or self.reason is not None


def near_grayscale_reason(rgb: np.ndarray, min_colorfulness: float) -> str | None:
    """Why an image is too gray to learn colour from (colorfulness below ``min_colorfulness``; 0 disables), or None."""
    if min_colorfulness <= 0:
        return None
    score = colorfulness(rgb)  # one torch thread in the prepare (DecodePool) and its workers: see DecodePool
    if score < min_colorfulness:
        return f"near-grayscale: colorfulness {score:.1f} < min_colorfulness {min_colorfulness:g}"
    return None


# --- demo sources ------------------------------------------------------------------------------

# The demo's "movie" photographs: the colour photographs that scikit-image and matplotlib ship inside their
# packages (checked with scikit-image 0.26, matplotlib 3.11), so nothing is downloaded; name -> the package.
# Left out: scikit-image's hubble_deep_field (black sky with small galaxies: at the demo's 64 px half its crops
# are near-gray, rejected by min_colorfulness, and the rest teach little colour), colorwheel and logo (synthetic
# drawings), cat (the same photograph as chelsea), camera, coins and its other gray images, skin, lily, eagle and
# the other colour images it downloads on first use; matplotlib's logo2.png (a logo) and
# Minduka_Present_Blue_Pack.png (a 128 px drawing).
DEMO_PHOTOS: dict[str, str] = {
    "astronaut": "scikit-image",
    "chelsea": "scikit-image",
    "coffee": "scikit-image",
    "rocket": "scikit-image",
    "stereo_motorcycle": "scikit-image",  # its left view: the right one is the same scene
    "grace_hopper": "matplotlib",
    # photographs, though not of everyday scenes (a fundus camera's, a microscope's): train only, for variety
    "retina": "scikit-image",
    "immunohistochemistry": "scikit-image",
}
# Split by photograph, as a real dataset is split by film: the test crops come from these photographs only,
# the train crops from the others. Both splits hold everyday scenes.
DEMO_MOVIE_TEST_PHOTOS: tuple[str, ...] = ("chelsea", "coffee")
DEMO_CANDIDATES_PER_IMAGE = 4  # crops offered per image wanted: rejected ones are replaced, yet the stream ends


def demo_movie_photos(split: str) -> tuple[str, ...]:
    """The photographs whose crops make the demo's movie ``split``, in a fixed order."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: must be one of {', '.join(SPLITS)}")
    return tuple(name for name in DEMO_PHOTOS if (name in DEMO_MOVIE_TEST_PHOTOS) == (split == "test"))


@functools.cache
def load_demo_photo(name: str) -> np.ndarray:
    """One of ``DEMO_PHOTOS`` as H x W x 3 uint8 (read-only: it is cached), loaded from its package's files."""
    if name not in DEMO_PHOTOS:
        raise ValueError(f"demo photograph {name!r}: must be one of {', '.join(DEMO_PHOTOS)}")
    try:
        if DEMO_PHOTOS[name] == "matplotlib":
            from matplotlib.cbook import get_sample_data

            with Image.open(get_sample_data(f"{name}.jpg")) as image:
                photo = np.asarray(image.convert("RGB"))
        else:
            photo = getattr(skimage.data, name)()
    except Exception as err:  # noqa: BLE001 - whatever the package raises, the message names the photograph
        raise RuntimeError(
            f"demo photograph {name!r} ({DEMO_PHOTOS[name]}) cannot be loaded ({type(err).__name__}: {err}); the "
            "demo's split names it, so it is needed: install the package's full data, or use source='folder'"
        ) from err
    photo = np.ascontiguousarray(photo[0] if isinstance(photo, tuple) else photo, dtype=np.uint8)
    photo.flags.writeable = False
    return photo


def demo_photos(names: Iterable[str] = tuple(DEMO_PHOTOS)) -> dict[str, np.ndarray]:
    """Photographs of ``DEMO_PHOTOS`` by name, in the order given."""
    return {name: load_demo_photo(name) for name in names}


def skimage_photos() -> dict[str, np.ndarray]:
    """The everyday scenes among scikit-image's photographs: the benchmarks' test images."""
    return demo_photos(("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle"))


def demo_candidate(
    source: str, group: str, image: np.ndarray, size: int, min_colorfulness: float, hashed: bool = False
) -> Candidate:
    """A generated image resized to ``size``, then filtered as a decoded file is (near-grayscale); ``hashed``:
    with the perceptual hash of the generated image, as a file's is of the decoded file.

    Measured on the resized image, what the model would learn from: a crop of black sky with a few
    galaxies is near-gray at 64 px even where its full-resolution noise counts as colour.
    """
    rgb = resize_square(image, size)
    reason = near_grayscale_reason(rgb, min_colorfulness)
    if reason is not None:
        return Candidate(source, group, None, reason)
    return Candidate.accepted(source, group, rgb, image.shape, perceptual_hash(image) if hashed else "")


def demo_movie_stills(
    count: int, size: int, seed: int, photos: Iterable[str], min_colorfulness: float = 0.0, hashed: bool = False
) -> Iterator[Candidate]:
    """Random crops, scales and horizontal flips of ``photos`` ("movie" domain), one photograph after the
    other in turn; same seed, same images. Each candidate's group is its photograph's name."""
    photos = demo_photos(photos)
    names = list(photos)
    rng = np.random.default_rng(seed)
    for i in range(count):
        name = names[i % len(names)]
        photo = photos[name]
        height, width = photo.shape[:2]
        side = int(rng.uniform(0.35, 1.0) * min(height, width))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crop = photo[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        source = f"{DEMO_PHOTOS[name]}:{name}[{top}:{top + side},{left}:{left + side}]"
        yield demo_candidate(source, name, np.ascontiguousarray(crop), size, min_colorfulness, hashed)


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


def demo_cartoon_frames(
    count: int, size: int, seed: int, min_colorfulness: float = 0.0, hashed: bool = False
) -> Iterator[Candidate]:
    """Seeded procedural cel-style frames ("cartoon" domain): same seed, same images; each its own group."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        frame = draw_cartoon_frame(rng, size)
        group = f"seed{seed}:frame{i}"
        yield demo_candidate(f"procedural:seed{seed}:{i}", group, frame, size, min_colorfulness, hashed)


def demo_stream(params: RunParams, domain: str, split: str, start: int = 0) -> Iterator[Candidate]:
    """The demo source: one seeded generator per domain and split; ``start`` skips that many.

    It offers ``DEMO_CANDIDATES_PER_IMAGE`` candidates per image wanted, so near-grayscale ones can be
    replaced; the prepare stops taking them when the split is full. Accepted candidates carry their perceptual
    hash unless ``near_duplicate_bits`` is 0.
    """
    seed = (params.seed * 1000 + DOMAINS.index(domain)) * 2 + SPLITS.index(split)
    count = (params.test_per_domain if split == "test" else params.train_per_domain) * DEMO_CANDIDATES_PER_IMAGE
    hashed = params.near_duplicate_bits > 0
    if domain == "cartoon":
        stream = demo_cartoon_frames(count, params.image_size, seed, params.min_colorfulness, hashed)
    else:
        photos = demo_movie_photos(split)
        stream = demo_movie_stills(count, params.image_size, seed, photos, params.min_colorfulness, hashed)
    yield from itertools.islice(stream, start, None)


# --- files: folders and Kaggle datasets ----------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """An image file and its group; ``folder_group``: the group its folder gave it, "" when that is ``group``."""

    path: str
    group: str
    folder_group: str = ""


def list_source_files(root: str | Path) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Every image file under ``root`` with its folder group (the parent folder relative to ``root``), and the
    links that lead out of ``root`` with their reason (``outside-folder: ...``): not followed, and one line says so
    (:func:`utils.images.find_images`).

    In a flat folder (one group only) each file is its own group.
    """
    root = Path(root)
    listing = find_images(root)
    if listing.outside:
        print(listing.describe_outside(), flush=True)
    paths = listing.images
    groups = [str(p.parent.relative_to(root)) for p in paths]
    if len(set(groups)) < 2:
        groups = [str(p.relative_to(root)) for p in paths]
    outside = [(str(link), reason) for link, reason in listing.outside_reasons()]
    return [SourceFile(str(p), g) for p, g in zip(paths, groups)], outside


def assign_splits(files: list[SourceFile], n_train: int, n_test: int, seed: int) -> dict[str, list[SourceFile]]:
    """Whole groups to one split, in a seeded order, keeping the file counts near n_test : n_train.

    Every file gets a split (so rejected files can be replaced from the same split); within a
    split the files come in a seeded random order, mixing groups.
    """
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[SourceFile]] = {}
    for f in files:
        by_group.setdefault(f.group, []).append(f)
    names = sorted(by_group)
    assigned: dict[str, list[SourceFile]] = {"test": [], "train": []}
    for i in rng.permutation(len(names)):
        group = by_group[names[i]]
        # the split that is proportionally emptier takes the next group
        split = "test" if len(assigned["test"]) * n_train <= len(assigned["train"]) * n_test else "train"
        assigned[split].extend(group)
    return {split: [fs[i] for i in rng.permutation(len(fs))] for split, fs in assigned.items()}


@dataclass(frozen=True)
class DecodeSettings:
    size: int
    resize: str
    min_colorfulness: float
    max_pixels: int
    hash_only: bool = False  # the hash pass: see hash_source_file


def decode_in_full(file: SourceFile, settings: DecodeSettings) -> tuple[Candidate, np.ndarray | None]:
    """One file -> (a resized Candidate or a rejection, the full decoded pixels where there are any)."""
    rgb, reason = load_rgb(file.path, min_side=max(1, settings.size // 2), max_pixels=settings.max_pixels)
    if rgb is None:
        return Candidate(file.path, file.group, None, reason, folder_group=file.folder_group), None
    reason = near_grayscale_reason(rgb, settings.min_colorfulness)
    if reason is not None:
        return Candidate(file.path, file.group, None, reason, folder_group=file.folder_group), rgb
    sha1 = hashlib.sha1(rgb.tobytes()).hexdigest()
    resized = resize_square(rgb, settings.size, settings.resize)
    return Candidate(file.path, file.group, resized, None, sha1, rgb.shape[1], rgb.shape[0], file.folder_group), rgb


def hash_source_file(file: SourceFile, settings: DecodeSettings) -> Candidate:
    """The hash pass's work on one file: a JPEG is decoded at reduced scale (PIL's draft, at least ``HASH_SIDE``
    px a side) and only hashed, left undecided for the accept pass; any other file (or a JPEG that fails so) is
    decoded in full once, here: its Candidate is final, with the hash of its full pixels when accepted."""
    if is_jpeg(file.path):
        small, _ = load_rgb(file.path, max_pixels=settings.max_pixels, accept_gray=True, draft_side=HASH_SIDE)
        if small is not None:
            return Candidate(file.path, file.group, None, folder_group=file.folder_group, hash=perceptual_hash(small))
    candidate, rgb = decode_in_full(file, settings)
    return replace(candidate, hash=perceptual_hash(rgb)) if candidate.rgb is not None else candidate


def decode_source_file(task: tuple[SourceFile, DecodeSettings]) -> Candidate:
    """One file -> a resized Candidate or a rejection (``hash_only``: the hash pass's Candidate)."""
    file, settings = task
    if settings.hash_only:
        return hash_source_file(file, settings)
    return decode_in_full(file, settings)[0]


# Test-only: makes a decoding worker (never the prepare's own process) misbehave on purpose. "kill:<file>": it
# SIGKILLs itself on that file; "hang:<file>": it sleeps forever on it (<file>: the file's name, or the end of its
# path, "movie/a.jpg"); "slow:<seconds>": it sleeps that long before each file. Read by the prepare when it starts
# workers and handed to each (a forkserver's worker inherits the server's environment, fixed when the server started).
DECODE_FAULT_ENV = "COLORIZATION_TEST_DECODE_FAULT"
_decode_fault = ""  # in a decoding worker: the DECODE_FAULT_ENV value it was handed


def decode_fault_from_env() -> str:
    """The test-only fault of ``DECODE_FAULT_ENV``, checked; "" when unset."""
    fault = os.environ.get(DECODE_FAULT_ENV, "")
    action, _, argument = fault.partition(":")
    if fault and not ((action in ("kill", "hang") and argument) or (action == "slow" and _is_number(argument))):
        raise ValueError(f"{DECODE_FAULT_ENV}={fault!r}: expected kill:<file>, hang:<file> or slow:<seconds>")
    return fault


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _misbehave_for_a_test(file: SourceFile) -> None:
    action, _, argument = _decode_fault.partition(":")
    path = Path(file.path).as_posix()
    if action == "slow":
        time.sleep(float(argument))
    elif path == argument or path.endswith("/" + argument):
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        while True:  # hang
            time.sleep(3600)


def decode_files(files: list[SourceFile], settings: DecodeSettings) -> list[Candidate]:
    """Worker task: a chunk of files, decoded in order."""
    candidates = []
    for file in files:
        if _decode_fault:
            _misbehave_for_a_test(file)
        candidates.append(decode_source_file((file, settings)))
    return candidates


def crash_reason(exit_code: int | None) -> str:
    """Why a file was rejected whose decoding process died: its exit code (negative: the signal that killed it)."""
    if exit_code is None:
        return "decoder crashed: its process ended with an unknown exit code"
    if exit_code < 0:
        return f"decoder crashed: {exit_code_meaning(exit_code)}"
    return f"decoder crashed: its process exited with code {exit_code} before returning a result"


def timeout_reason(timeout_s: float) -> str:
    return f"decoder timed out after {timeout_s:g} s (decode_timeout_s)"


TASKS_PER_WORKER = 8  # chunks per worker over a job: a slow chunk near the end leaves the others little to wait for
MAX_CHUNK_FILES = 16  # bounds the memory in flight and the wait for the first image
IN_FLIGHT_PER_WORKER = 3  # chunks submitted ahead per worker: one decoding, the next ones queued


def decode_chunk_size(n_files: int, workers: int) -> int:
    """Files per task, sized to the job: about ``TASKS_PER_WORKER`` tasks per worker, 1 to ``MAX_CHUNK_FILES``."""
    return max(1, min(MAX_CHUNK_FILES, math.ceil(n_files / (workers * TASKS_PER_WORKER))))


# Which process imported this module: in a decoding worker it is the forkserver's, not the worker's own
# (the worker was forked with torch and the decoders already imported).
IMPORTED_IN_PID = os.getpid()


def _init_decode_worker(fault: str = "") -> None:
    global _decode_fault
    _decode_fault = fault
    # Parallelism comes from the processes: more torch threads per process only fight over the same cores
    # (colorfulness of one image: 5-8 ms with 1 thread, 27-140 ms with 2, on the shared 2-core machine).
    torch.set_num_threads(1)
    # Ctrl-C reaches the whole process group: the parent stops the pool; workers need not print tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def decode_process_context() -> multiprocessing.context.BaseContext:
    """A forkserver that imported the prepare's modules (torch included) once, where available; else spawn.

    Workers forked from it start in milliseconds instead of each importing torch (seconds). Unlike
    plain ``fork``, the server is a fresh interpreter, so it is safe inside a Jupyter kernel that
    holds threads.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # utils.data imports this module (torch included). Python 3.11's server does not preload a script's
    # __main__ (each worker re-runs it), so it also imports the prepare's modules such a script needs.
    context.set_forkserver_preload(["__main__", "utils.data"])  # takes effect when the server first starts
    return context


def decode_executor(workers: int, fault: str = "") -> ProcessPoolExecutor:
    """``workers`` decoding processes: forked from the preloaded forkserver, one torch thread each
    (``fault``: see ``DECODE_FAULT_ENV``)."""
    return ProcessPoolExecutor(
        workers, mp_context=decode_process_context(), initializer=_init_decode_worker, initargs=(fault,)
    )


def kill_workers(executor: ProcessPoolExecutor) -> None:
    """SIGKILL every worker of ``executor``: a worker stuck inside a decoder cannot be cancelled, only killed.
    The executor then reports itself broken, and its unfinished futures raise BrokenProcessPool."""
    kill = getattr(executor, "kill_workers", None)  # Python 3.14 and later
    if kill is not None:
        kill()
        return
    for process in list((executor._processes or {}).values()):  # before 3.14: pid -> Process, its own record
        process.kill()


def _decode_alone(sender: multiprocessing.connection.Connection, file: SourceFile, settings: DecodeSettings,
                  fault: str) -> None:  # fmt: skip
    """A lone decoding process's whole work: one file, its Candidate sent back."""
    _init_decode_worker(fault)
    sender.send(decode_files([file], settings)[0])
    sender.close()


@dataclass
class LoneDecode:
    """One file decoded in a fresh process of its own, which may die or hang without harm to any other file."""

    file: SourceFile
    process: multiprocessing.process.BaseProcess
    receiver: multiprocessing.connection.Connection
    deadline: float  # time.monotonic()
    timeout_s: float

    @classmethod
    def start(cls, file: SourceFile, settings: DecodeSettings, timeout_s: float, fault: str) -> LoneDecode:
        context = decode_process_context()
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_decode_alone, args=(sender, file, settings, fault), daemon=True)
        process.start()
        sender.close()  # the child holds its own copy: the receiver sees EOF when the child dies
        return cls(file, process, receiver, time.monotonic() + timeout_s, timeout_s)

    def outcome(self) -> Candidate | None:
        """Its Candidate, or a rejection naming the signal or the timeout once the process died or ran out of
        time; None while it is still decoding."""
        alive = self.process.is_alive()  # asked before the pipe: a result sent just before exiting is not lost
        if self.receiver.poll():
            try:
                candidate = self.receiver.recv()
            except EOFError:  # closed without a result: the process died
                pass
            else:
                self.stop()
                return candidate
        elif alive:
            if time.monotonic() < self.deadline:
                return None
            self.stop()
            return Candidate(self.file.path, self.file.group, None, timeout_reason(self.timeout_s))
        self.process.join()
        self.receiver.close()
        return Candidate(self.file.path, self.file.group, None, crash_reason(self.process.exitcode))

    def stop(self) -> None:
        """Kill the process if it still runs (a no-op once it has ended) and reap it."""
        self.process.kill()
        self.process.join()
        self.receiver.close()


def decode_alone(
    files: list[SourceFile], settings: DecodeSettings, workers: int, timeout_s: float, fault: str = ""
) -> list[Candidate]:
    """Each file in a fresh process of its own, ``workers`` at a time, in file order: a file that kills its
    process, or makes it take longer than ``timeout_s``, is rejected with the reason; the others decode as usual."""
    waiting = deque(enumerate(files))
    running: dict[int, LoneDecode] = {}
    decided: dict[int, Candidate] = {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                index, file = waiting.popleft()
                running[index] = LoneDecode.start(file, settings, timeout_s, fault)
            for index, lone in list(running.items()):
                candidate = lone.outcome()
                if candidate is not None:
                    decided[index] = candidate
                    del running[index]
            if running:
                first_deadline = min(lone.deadline for lone in running.values())
                ready = [e for lone in running.values() for e in (lone.receiver, lone.process.sentinel)]
                multiprocessing.connection.wait(ready, timeout=max(0.0, first_deadline - time.monotonic()))
    finally:
        for lone in running.values():
            lone.stop()
    return [decided[index] for index in range(len(files))]


def finished_future(candidates: list[Candidate]) -> Future[list[Candidate]]:
    future: Future[list[Candidate]] = Future()
    future.set_result(candidates)
    return future


def succeeded(future: Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


# a chunk of files submitted to the pool, and its future
InFlight = tuple[list[SourceFile], Future[list[Candidate]]]


class DecodePool:
    """The decoding processes of a whole prepare: started on first use, reused for every domain and
    split, shut down by :meth:`close` (a ``with`` block closes it on error and on KeyboardInterrupt too).

    A worker that dies (killed by a signal: the out-of-memory killer, a crashing native decoder) or
    hangs (no result within ``timeout_s`` per file) costs at most its files, never the prepare: see
    :meth:`decode`. ``workers`` <= 1 decodes in this process, with one torch thread while the pool is
    open, and without that protection.
    """

    def __init__(self, workers: int, timeout_s: float) -> None:
        self.workers = max(1, workers)
        self.timeout_s = timeout_s
        self.fault = decode_fault_from_env()
        self.executor: ProcessPoolExecutor | None = None
        self._abandoned: list[Future[list[Candidate]]] = []  # decoding a stream closed early left running
        self._threads_before: int | None = None

    def __enter__(self) -> DecodePool:
        # The prepare's own process decodes (one worker) or scores the demo's generated images: one image is too
        # little work to share, and more torch threads only contend (10x slower with 2 on a busy 2-core machine).
        self._threads_before = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self.close(interrupted=exc_type is not None)

    def close(self, interrupted: bool = False) -> None:
        """Shut the workers down; ``interrupted`` (an error or Ctrl-C), or work nobody will read still running
        (it may hang), kills them instead of waiting."""
        if self.executor is not None:
            if interrupted or not all(future.done() for future in self._abandoned):
                kill_workers(self.executor)
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
        self._abandoned = []
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None

    def start(self) -> ProcessPoolExecutor:
        """The worker processes, started on first call (and after :meth:`recover`)."""
        if self.executor is None:
            self.executor = decode_executor(self.workers, self.fault)
        return self.executor

    def submit(self, chunk: list[SourceFile], settings: DecodeSettings) -> Future[list[Candidate]]:
        try:
            return self.start().submit(decode_files, chunk, settings)
        except BrokenProcessPool as err:  # a worker died since the last result: recover() decodes these alone
            failed: Future[list[Candidate]] = Future()
            failed.set_exception(err)
            return failed

    def oldest_result(self, in_flight: deque[InFlight], settings: DecodeSettings) -> list[Candidate]:
        """The candidates of the oldest chunk in flight, which leaves it; waited for at most its files x
        ``timeout_s`` (from now: the oldest chunk is decoding, or is next), then its pool counts as hung."""
        chunk, future = in_flight[0]
        try:
            candidates = future.result(timeout=len(chunk) * self.timeout_s)
        except BrokenProcessPool:
            self.recover(in_flight, settings, hung=False)
        except FutureTimeoutError:
            self.recover(in_flight, settings, hung=True)
        else:
            in_flight.popleft()
            return candidates
        return in_flight.popleft()[1].result()

    def recover(self, in_flight: deque[InFlight], settings: DecodeSettings, hung: bool) -> None:
        """After a worker died, or the oldest chunk found no result in time (``hung``: its workers are killed,
        the one way to stop a stuck decoder): the next chunk starts a fresh pool, and the files of every chunk
        in flight that did not finish are decoded again, each in a process of its own, so a file that kills or
        hangs its process again is rejected with the reason and costs no other file. A one-file chunk that hung
        is rejected at once: its file is known. Their results replace their futures in ``in_flight``."""
        broken = self.start()
        if hung:
            kill_workers(broken)
        self.executor = None
        broken.shutdown(wait=True, cancel_futures=True)  # after it, every future it held is settled
        head, head_future = in_flight[0]
        known_hang = hung and len(head) == 1 and not succeeded(head_future)
        if known_hang:
            in_flight[0] = (head, finished_future([Candidate(head[0].path, head[0].group, None,
                                                             timeout_reason(self.timeout_s))]))  # fmt: skip
        redo = [i for i, (_, future) in enumerate(in_flight) if not succeeded(future)]
        files = [file for i in redo for file in in_flight[i][0]]
        what = "a decoding process died"
        if hung:
            what = f"no result for {len(head)} file(s) in {len(head) * self.timeout_s:g} s (decode_timeout_s per file)"
        rejected = f", {head[0].path} is rejected" if known_hang else ""
        print(f"prepare: {what}; a fresh pool goes on{rejected}, and the {len(files)} file(s) left unfinished are "
              "decoded again, each in a process of its own", flush=True)  # fmt: skip
        decided = iter(decode_alone(files, settings, self.workers, self.timeout_s, self.fault))
        for i in redo:
            chunk = in_flight[i][0]
            in_flight[i] = (chunk, finished_future([next(decided) for _ in chunk]))

    def decode(
        self,
        files: list[SourceFile],
        settings: DecodeSettings,
        still_needed: Callable[[], int] | None = None,
    ) -> Iterator[Candidate]:
        """Candidates in file order, whatever the worker count.

        Decoding runs ahead of the consumer by at most ``IN_FLIGHT_PER_WORKER`` chunks per worker and,
        with ``still_needed``, by at most that many files, so a split that fills up leaves almost
        nothing decoded for nothing. Closing the stream early cancels the chunks not yet started.
        A worker that dies or hangs is replaced, and its files are retried alone (:meth:`recover`):
        the candidates are those of a run without the death, but for a file that kills or hangs its
        process again, rejected with the signal or the timeout.

        Args:
            files: decoded in this order.
            settings: how to decode and resize.
            still_needed: how many more images the consumer will take; asked before each submission.
        """
        if self.workers == 1:
            for file in files:
                yield decode_source_file((file, settings))
            return
        size = decode_chunk_size(len(files), self.workers)
        max_chunks = self.workers * IN_FLIGHT_PER_WORKER
        # (chunk, future) pairs, oldest first: the files of each task stay known to the consumer
        in_flight: deque[InFlight] = deque()
        files_ahead = 0  # submitted and not yet yielded
        next_file = 0
        try:
            while in_flight or next_file < len(files):
                room = (still_needed() if still_needed else len(files)) - files_ahead
                while next_file < len(files) and len(in_flight) < max_chunks and (room > 0 or not in_flight):
                    # near the end of a split, smaller chunks keep every worker busy on what is still needed
                    take = max(1, min(size, room // self.workers))
                    chunk = files[next_file : next_file + take]
                    in_flight.append((chunk, self.submit(chunk, settings)))
                    next_file += len(chunk)
                    files_ahead += len(chunk)
                    room -= len(chunk)
                for candidate in self.oldest_result(in_flight, settings):
                    files_ahead -= 1
                    yield candidate
        finally:
            running = [future for _, future in in_flight if not future.cancel() and not future.done()]
            # left running, nobody will read them: close() must not wait for them (they may hang)
            self._abandoned = [future for future in self._abandoned if not future.done()] + running


def prepare_workers(params: RunParams) -> int:
    """Decoding processes for a prepare: ``prepare_workers``, 0 meaning every core (1: in this process)."""
    return params.prepare_workers or os.cpu_count() or 1


# --- Kaggle --------------------------------------------------------------------------------------


class DataSourceError(RuntimeError):
    """The configured images cannot be found or fetched; the message lists the ways to supply them."""


def kaggle_credentials_present() -> bool:
    """Whether the kaggle client would find credentials in one of its standard places."""
    if os.environ.get("KAGGLE_API_TOKEN") or (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")):
        return True
    dirs = [os.environ.get("KAGGLE_CONFIG_DIR"), "~/.kaggle", "~/.config/kaggle"]
    return any(
        Path(d).expanduser().joinpath(name).is_file() for d in dirs if d for name in ("kaggle.json", "access_token")
    )


def find_attached_dataset(handle: str, input_root: str | Path) -> Path | None:
    """An attached dataset under Kaggle's input mount, found by searching for its slug.

    Both ``<root>/<slug>/`` and ``<root>/datasets/<owner>/<slug>/`` occur, depending on the date.
    """
    owner, _, slug = handle.partition("/")
    root = Path(input_root)
    if not slug or not root.is_dir():
        return None
    for candidate in (root / "datasets" / owner / slug, root / slug, root / owner / slug):
        if candidate.is_dir():
            return candidate
    for dirpath, dirnames, _ in os.walk(root):
        if len(Path(dirpath).relative_to(root).parts) >= 3:  # bounded search depth
            dirnames[:] = []
        if slug in dirnames:
            return Path(dirpath) / slug
    return None


def download_kaggle_dataset(handle: str, cache_dir: str | Path) -> Path:
    """Download (once) and unzip a Kaggle dataset into ``cache_dir/<owner>/<slug>``."""
    target = Path(cache_dir).expanduser() / handle
    done = target / ".download-complete"
    if done.is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    # imported here: `import kaggle` authenticates as a side effect
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()
    api.dataset_download_files(handle, path=str(target), unzip=True, quiet=False)
    write_text_atomic(done, handle + "\n")
    return target


def locate_kaggle_dataset(params: RunParams, domain: str) -> Path:
    """Attached under /kaggle/input, else downloaded with credentials, else a clear error."""
    handle = getattr(params, f"{domain}_dataset")
    attached = find_attached_dataset(handle, params.kaggle_input_root)
    if attached is not None:
        return attached
    if kaggle_credentials_present():
        return download_kaggle_dataset(handle, params.kaggle_cache)
    raise DataSourceError(
        f"parameter '{domain}_dataset' = {handle!r}: not attached under {params.kaggle_input_root} and no "
        "Kaggle credentials found. Supply the images one of these ways: (1) on Kaggle, attach the dataset "
        "to the notebook (Add Input); (2) put your API credentials in ~/.kaggle/kaggle.json (or set "
        "KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN) and the kit downloads it; (3) use "
        "source='folder' with cartoon_dir and movie_dir pointing at your own image folders."
    )


def source_root(params: RunParams, domain: str) -> Path:
    """The directory holding one domain's image files (folder or Kaggle source)."""
    if params.source == "folder":
        return Path(getattr(params, f"{domain}_dir"))
    if params.source == "kaggle":
        return locate_kaggle_dataset(params, domain)
    raise ValueError(f"parameter 'source' = {params.source!r} has no files")
