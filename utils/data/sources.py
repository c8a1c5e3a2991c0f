"""Where images come from: folders and Kaggle datasets, the split, and the :class:`Candidate` every source offers.

Every source (these, and the demo's generators in utils/data/demo.py) yields, per split, a stream of :class:`Candidate` images (decoded and resized, or
rejected with a reason). File sources assign whole groups (the parent folder, or the name ``group_pattern`` finds in
the file's path: a film, a show, joined with the groups of its near-duplicates: utils/data/near_duplicates.py) to one
split, so frames of one film never straddle train and test; the demo's movie crops are grouped and split by
photograph in the same way (``DEMO_MOVIE_TEST_PHOTOS``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.core.domains import location_parameter
from utils.core.grouping import pattern_groups
from utils.core.parameters import RunParams
from utils.core.run_dir import write_text_atomic
from utils.imaging.images import colorfulness, find_images

SPLITS: tuple[str, ...] = ("test", "train")  # test first: its images win any duplicate


@dataclass(frozen=True)
class Candidate:
    """One image offered by a source: resized pixels and the sha1 of its decoded pixels, or a reason.

    ``group`` is the group it is split and evaluated by; ``folder_group`` the one its source gave it (the folder,
    the photograph), "" when the two are the same. ``hash`` and ``thumbnail``: its perceptual hash and thumbnail
    (utils/data/near_duplicates.py), "" when not taken. The hash pass leaves a JPEG undecided (neither pixels nor a reason): see ``decided``.
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
    thumbnail: str = ""

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


# --- files: folders and Kaggle datasets ----------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """An image file and its group; ``folder_group``: the group its folder gave it, "" when that is ``group``;
    ``named``: whether ``group_pattern`` named its group."""

    path: str
    group: str
    folder_group: str = ""
    named: bool = False


def list_source_files(root: str | Path, group_pattern: str = "") -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Every image file under ``root`` with its group, and the links that lead out of ``root`` with their reason
    (``outside-folder: ...``): not followed, and one line says so (:func:`utils.imaging.images.find_images`).

    A file's group is the name ``group_pattern`` finds in its path relative to ``root`` (utils/core/grouping.py), else its
    folder group: the parent folder relative to ``root``; in a flat folder (one folder group only), the file itself.
    """
    root = Path(root)
    listing = find_images(root)
    if listing.outside:
        print(listing.describe_outside(), flush=True)
    paths = listing.images
    relative = [p.relative_to(root) for p in paths]
    groups = [str(r.parent) for r in relative]
    if len(set(groups)) < 2:
        groups = [str(r) for r in relative]
    named = pattern_groups([r.as_posix() for r in relative], group_pattern)
    outside = [(str(link), reason) for link, reason in listing.outside_reasons()]
    return [SourceFile(str(p), name or g, named=name is not None) for p, g, name in zip(paths, groups, named)], outside


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
    handle = params.location(domain)
    attached = find_attached_dataset(handle, params.kaggle_input_root)
    if attached is not None:
        return attached
    if kaggle_credentials_present():
        return download_kaggle_dataset(handle, params.kaggle_cache)
    raise DataSourceError(
        f"parameter {location_parameter('kaggle', domain)} = {handle!r}: not attached under {params.kaggle_input_root} and no "
        "Kaggle credentials found. Supply the images one of these ways: (1) on Kaggle, attach the dataset "
        "to the notebook (Add Input); (2) put your API credentials in ~/.kaggle/kaggle.json (or set "
        "KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN) and the kit downloads it; (3) use "
        "source='folder' with domains naming your own image folders."
    )


def source_root(params: RunParams, domain: str) -> Path:
    """The directory holding one domain's image files (folder or Kaggle source)."""
    if params.source == "folder":
        return Path(params.location(domain))
    if params.source == "kaggle":
        return locate_kaggle_dataset(params, domain)
    raise ValueError(f"parameter 'source' = {params.source!r} has no files")
