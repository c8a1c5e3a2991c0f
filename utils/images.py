"""The one image loader: a file becomes RGB uint8, or a reason it was rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def find_images(directory: str | Path) -> list[Path]:
    """Image files under ``directory``, recursively, sorted, hidden files and folders skipped."""
    directory = Path(directory)
    found = []
    for path in directory.rglob("*"):
        rel = path.relative_to(directory)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found)


def load_rgb(path: str | Path) -> tuple[np.ndarray | None, str | None]:
    """Decode one image file.

    Returns:
        ``(rgb, None)`` with an H x W x 3 uint8 array (EXIF orientation applied), or
        ``(None, reason)`` when the file cannot be used.
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return None, f"unreadable: {type(err).__name__}: {err}"
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        return None, "unreadable: empty image"
    return rgb, None


def resize_center_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """Shorter side to ``size`` (antialiased), then the centre ``size`` x ``size`` square."""
    height, width = rgb.shape[:2]
    scale = size / min(height, width)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    resized = Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.LANCZOS)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.uint8)
