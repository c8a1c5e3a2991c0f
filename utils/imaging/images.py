"""The one image loader: a file becomes RGB uint8, or a reason it was rejected; never an exception.

Rejection reasons (the ``reason`` column of ``rejected.csv`` starts with one of these words):
``empty-file``, ``not-an-image``, ``corrupt``, ``too-many-pixels``, ``grayscale``, ``too-small``,
``near-grayscale``; the shard writer adds ``duplicate``; a folder's listing, ``outside-folder`` (a link that
leads out of it).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from utils.core.parameters import RESIZE_MODES
from utils.imaging import metrics

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_SINGLE_CHANNEL_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "P;L"})


@dataclass(frozen=True)
class ImageListing:
    """What :func:`find_images` found under a folder: its image files, and the links it did not follow."""

    root: Path
    images: list[Path]
    outside: list[tuple[Path, Path]]  # (a link under the folder, where it resolves: outside the folder)

    def outside_reasons(self) -> list[tuple[Path, str]]:
        """Each link not followed, with its rejection reason."""
        return [(link, f"outside-folder: links to {target}, outside {self.root}") for link, target in self.outside]

    def describe_outside(self, shown: int = 3) -> str:
        """One line on the links not followed ('' when there are none)."""
        if not self.outside:
            return ""
        examples = ", ".join(f"{link} -> {target}" for link, target in self.outside[:shown])
        more = f" and {len(self.outside) - shown} more" if len(self.outside) > shown else ""
        return (
            f"{self.root}: {len(self.outside)} link(s) lead outside the folder and are not followed: {examples}{more}"
        )


def find_images(directory: str | Path) -> ImageListing:
    """Image files under ``directory``, recursively and sorted; hidden files and folders skipped.

    Symlinks are followed while they resolve inside ``directory`` (each folder once: a symlink loop cannot make
    the walk hang); a link to a folder or an image outside it is not followed, and listed in ``outside``.
    """
    root = Path(os.path.realpath(directory))
    found: list[Path] = []
    outside: list[tuple[Path, Path]] = []
    seen_dirs: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(directory, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen_dirs:
            dirs[:] = []
            continue
        seen_dirs.add((stat.st_dev, stat.st_ino))
        dirs[:] = _inside(Path(folder), sorted(d for d in dirs if not d.startswith(".")), root, outside)
        images = [name for name in files if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES]
        found += [Path(folder) / name for name in _inside(Path(folder), images, root, outside)]
    return ImageListing(root, sorted(found), sorted(outside))


def _inside(folder: Path, names: list[str], root: Path, outside: list[tuple[Path, Path]]) -> list[str]:
    """The ``names`` in ``folder`` that are not symlinks resolving outside ``root``; those go to ``outside``."""
    kept = []
    for name in names:
        path = folder / name
        target = Path(os.path.realpath(path)) if path.is_symlink() else None
        if target is None or target.is_relative_to(root):
            kept.append(name)
        else:
            outside.append((path, target))
    return kept


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode -> H x W x 3 uint8; transparency composited on white."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16/32-bit single channel: scale to 8 bits rather than clip at 255
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colorfulness of one H x W x 3 uint8 image (the metric's definition)."""
    batch = torch.from_numpy(np.array(rgb, dtype=np.float64)).permute(2, 0, 1)[None] / 255.0
    return float(metrics.colorfulness(batch)[0])


def is_jpeg(path: str | Path) -> bool:
    """Whether the file is a JPEG, by its content (its header is read, nothing decoded)."""
    try:
        with Image.open(path) as image:
            return image.format == "JPEG"
    except Exception:  # noqa: BLE001 - not an image, unreadable: load_rgb says why
        return False


def load_rgb(
    path: str | Path,
    min_side: int = 1,
    max_pixels: int = 50_000_000,
    accept_gray: bool = False,
    draft_side: int = 0,
) -> tuple[np.ndarray | None, str | None]:
    """Decode one image file (first frame; EXIF orientation applied).

    Args:
        path: the file.
        min_side: shorter sides below this are rejected (``too-small``).
        max_pixels: a pixel-count guard against decompression bombs, checked before decoding.
        accept_gray: keep grayscale images (as three equal channels) instead of rejecting them:
            training needs colour, colorizing does not.
        draft_side: a JPEG is decoded at the smallest of its reduced scales (1/2, 1/4, 1/8: PIL's ``draft``)
            that keeps its longer side at least this long, several times faster than in full; 0: in full.

    Returns:
        ``(rgb, None)`` with an H x W x 3 uint8 array, or ``(None, reason)``.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return None, "empty-file"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return None, f"too-many-pixels: {width}x{height} > {max_pixels} (decompression bomb guard)"
                if draft_side and image.format == "JPEG":
                    image.draft("RGB", (draft_side, 1) if width >= height else (1, draft_side))
                image.load()
                single_channel = image.mode in _SINGLE_CHANNEL_MODES
                try:
                    ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of a large image
                except Exception:  # noqa: BLE001 - a malformed EXIF block leaves the pixels usable
                    pass
                rgb = _to_rgb(image)
    except UnidentifiedImageError:
        return None, "not-an-image: no decoder recognises the content"
    except Image.DecompressionBombError as err:
        return None, f"too-many-pixels: {err}"
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        return None, f"corrupt: {type(err).__name__}: {err}"
    if not accept_gray and (single_channel or _channels_equal(rgb)):
        return None, "grayscale: no colour to learn"
    if min(rgb.shape[:2]) < min_side:
        return None, f"too-small: {rgb.shape[1]}x{rgb.shape[0]}, shorter side < {min_side}"
    return rgb, None


def pixel_count(path: str | Path) -> int:
    """Width x height from an image file's header, nothing decoded; 0 for a file no decoder recognises
    (:func:`load_rgb` then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size[0] * image.size[1]
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return 0


def _channels_equal(rgb: np.ndarray, tolerance: int = 2) -> bool:
    as_int = rgb.astype(np.int16)
    return bool(
        np.abs(as_int[..., 0] - as_int[..., 1]).max() <= tolerance
        and np.abs(as_int[..., 1] - as_int[..., 2]).max() <= tolerance
    )


def resize_square(rgb: np.ndarray, size: int, mode: str = "crop") -> np.ndarray:
    """Antialiased resize to ``size`` x ``size``.

    ``crop``: shorter side to ``size``, then the centre square. ``stretch``: both sides to
    ``size``, ignoring the aspect ratio (the tutorial's way).
    """
    image = Image.fromarray(rgb)
    if mode == "stretch":
        return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
    if mode != "crop":
        raise ValueError(f"parameter 'resize' = {mode!r}: must be one of {', '.join(RESIZE_MODES)}")
    height, width = rgb.shape[:2]
    scale = size / min(height, width)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    resized = image.resize((new_w, new_h), Image.Resampling.LANCZOS)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)
