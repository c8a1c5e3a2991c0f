"""Generated image folders with every kind of bad input, laid out like Kaggle's input mount."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from utils.data.demo import draw_cartoon_frame

# file name -> the reason (first word) it must be rejected with; None: accepted
BAD_FILES: dict[str, str] = {
    "truncated.jpg": "corrupt",
    "truncated.png": "corrupt",
    "garbled.jpg": "corrupt",
    "empty.jpg": "empty-file",
    "notes.jpg": "not-an-image",
    "gray.png": "grayscale",
    "gray_rgb.jpg": "grayscale",
    "gray16.png": "grayscale",
    "tiny.png": "too-small",
    "bomb.png": "too-many-pixels",
    "sepia.jpg": "near-grayscale",
}
GOOD_FILES: tuple[str, ...] = ("cmyk.jpg", "palette.png", "palette_transparent.png", "rgba.png",
                               "rgb16.png", "rotated.jpg", "animated.gif", "photo.webp", "photo.bmp", "photo.tiff")  # fmt: skip


def png_bytes(pixels: np.ndarray, bit_depth: int = 16, claimed_size: tuple[int, int] | None = None) -> bytes:
    """A PNG written by hand: 16-bit (which PIL cannot write) or a header that lies about its size."""
    height, width = pixels.shape[:2]
    colour_type = 2 if pixels.ndim == 3 else 0
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + row.astype(dtype).tobytes() for row in pixels)
    w, h = claimed_size or (width, height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def colourful(seed: int, size: int = 96) -> np.ndarray:
    return draw_cartoon_frame(np.random.default_rng(seed), size)


def encoded(rgb: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def write_bad_and_odd_files(folder: Path, seed: int = 1000) -> None:
    """Every bad-input kind of BAD_FILES and every odd-but-good kind of GOOD_FILES, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = colourful(seed)
    jpeg, png = encoded(rgb, "JPEG", quality=90), encoded(rgb, "PNG")
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "garbled.jpg").write_bytes(jpeg[:200] + bytes(range(256)) * 8)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a picture, a text file named .jpg\n")
    Image.fromarray(rgb).convert("L").save(folder / "gray.png")
    Image.fromarray(rgb).convert("L").convert("RGB").save(folder / "gray_rgb.jpg", quality=95)
    (folder / "gray16.png").write_bytes(png_bytes(rgb[..., 0].astype(np.uint16) * 257))
    Image.fromarray(rgb[:8, :8]).save(folder / "tiny.png")
    (folder / "bomb.png").write_bytes(png_bytes(rgb[:2, :2, 0], bit_depth=8, claimed_size=(30000, 30000)))
    gray = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)
    sepia = np.stack([gray * 1.03, gray * 1.0, gray * 0.94], axis=2)  # a faint brown tint
    Image.fromarray(np.clip(sepia, 0, 255).astype(np.uint8)).save(folder / "sepia.jpg", quality=95)

    odd = colourful(seed + 1)
    Image.fromarray(odd).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    Image.fromarray(colourful(seed + 2)).quantize(16).save(folder / "palette.png")
    pal = Image.fromarray(colourful(seed + 3)).quantize(16)
    pal.info["transparency"] = 0
    pal.save(folder / "palette_transparent.png", transparency=0)
    rgba = np.dstack([colourful(seed + 4), np.full((96, 96), 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # a transparent corner: composited on white
    Image.fromarray(rgba).save(folder / "rgba.png")
    (folder / "rgb16.png").write_bytes(png_bytes(colourful(seed + 5).astype(np.uint16) * 257))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray(colourful(seed + 6, 96)[:, :64]).save(folder / "rotated.jpg", exif=exif, quality=95)
    frames = [Image.fromarray(colourful(seed + 7)), Image.fromarray(colourful(seed + 8))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(colourful(seed + 9)).save(folder / "photo.webp", quality=95)
    Image.fromarray(colourful(seed + 10)).save(folder / "photo.bmp")
    Image.fromarray(colourful(seed + 11)).save(folder / "photo.tiff")


def write_kaggle_like_dataset(root: Path, groups: int = 6, per_group: int = 6, seed: int = 0) -> Path:
    """A dataset folder: ``groups`` show/film folders of good frames (one nested deeper), every bad
    kind, duplicates across groups, hidden files, non-image files and a symlink loop."""
    for g in range(groups):
        folder = root / f"group_{g:02d}"
        if g == 1:
            folder = folder / "season_1"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_group):
            rgb = colourful(seed * 10_000 + g * 100 + i, size=80 + 8 * (i % 3))
            if i % 3 == 2:
                rgb = rgb[:, : rgb.shape[1] * 3 // 4]  # not square: "crop" and "stretch" differ
            Image.fromarray(rgb).save(folder / f"frame_{i:03d}.{'png' if i % 2 else 'jpg'}", quality=95)
    write_bad_and_odd_files(root / "group_misc", seed=seed * 10_000 + 5000)
    # exact duplicates of group_00's frames placed in two other groups
    for target in ("group_02", "group_03"):
        (root / target / "copy_of_frame_001.png").write_bytes((root / "group_00" / "frame_001.png").read_bytes())
    (root / ".hidden").mkdir()
    Image.fromarray(colourful(seed + 77)).save(root / ".hidden" / "secret.png")
    (root / "group_00" / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "README.txt").write_text("a non-image file")
    (root / "group_04" / "loop").symlink_to(root, target_is_directory=True)
    return root
