"""Colorize your own images, at full resolution, with a trained generator. Also a CLI.

    python -m utils.colorize --checkpoint RUN/models/mixed/best.pt --input PATH --output DIR
                             [--model-size 256] [--compare] [--jpeg] [--overwrite] [--batch-size 16]
                             [--batch-megapixels 4] [--gamut chroma|clip]

The model sees the image's lightness resized to its training size and predicts the colour (ab)
there; ab is upsampled to the original size and joined with the original full-resolution
lightness, so no detail is lost to the model's resolution. Colour inputs are turned to gray
(their L) first. A predicted colour that sRGB cannot show keeps its L and hue with less chroma
(``--gamut chroma``, the default), so the lightness stays the input's; ``--gamut clip`` clips RGB
as the paper did. The full-resolution conversions run on at most ``--batch-megapixels`` at a time
(a batch's images, or tiles of a larger image): memory follows that budget, not the files' sizes.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from utils.core.errors import ParameterError, run_command
from utils.core.parameters import GAMUTS
from utils.core.run_dir import atomic_write, write_csv_atomic, writes_run_dir
from utils.imaging import color
from utils.imaging.images import IMAGE_SUFFIXES, ImageListing, find_images, load_rgb, pixel_count
from utils.nets.checkpoints import load_generator
from utils.nets.environment import device_named
from utils.nets.models import UNetGenerator

SUFFIX = "_colorized"
T = TypeVar("T")
# Pixels converted at once: a batch's images together, or the tiles of a larger image. The peak grows with the
# budget, beside the image itself (decoded, its lightness, the output); benchmarks/bench_colorize_memory.py measures
# both on 49-megapixel images (docs/performance.md, "Colorizing large images"). At 4 megapixels tiling is no slower.
DEFAULT_PIXEL_BUDGET = 4_000_000


@dataclass
class ColorizeReport:
    """What a run did: files written, outputs left alone, and inputs rejected with their reason."""

    written: list[Path] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"colorized {len(self.written)}, kept {len(self.existing)} existing outputs "
            f"(--overwrite replaces them), rejected {len(self.rejected)}"
        )


def input_files(path: str | Path) -> tuple[Path, ImageListing]:
    """(root, its listing): a single file, or every image under a folder (recursive; links out of it not followed).
    A folder with nothing to colorize or reject is a ParameterError naming it."""
    path = Path(path)
    if path.is_file():
        return path.parent, ImageListing(path.parent, [path], [])
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path}: no such file or folder")
    listing = find_images(path)
    if not (listing.images or listing.outside):
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ParameterError(
            f"no images found in {path}: --input takes an image file, or a folder searched "
            f"recursively for {suffixes} files (hidden ones skipped)"
        )
    return path, listing


def check_output_folder(out_dir: Path) -> None:
    """Create ``out_dir`` and open a file in it (unnamed, where the system allows), before any image is colorized:
    a folder that cannot be created or written is a ParameterError naming ``--output``."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as err:
        existing = next((path for path in (out_dir, *out_dir.parents) if path.exists()), None)
        reason = f"{existing} is a file" if existing and not existing.is_dir() else (err.strerror or str(err))
        raise ParameterError(
            f"--output {out_dir}: cannot write there ({reason}); give a folder this user may write"
        ) from None


def output_path(source: Path, root: Path, out_dir: Path, extension: str, tag: str = SUFFIX) -> Path:
    """``out_dir/<sub-folders of source under root>/<stem>_colorized.<ext>``: the input's name, kept."""
    return out_dir / source.relative_to(root).parent / f"{source.stem}{tag}.{extension}"


def tiles(height: int, width: int, pixel_budget: int) -> Iterator[tuple[slice, slice]]:
    """(rows, columns) of an image in tiles of at most ``pixel_budget`` pixels: bands of whole rows, or pieces
    of a row when one row alone is over the budget."""
    columns = max(1, min(width, pixel_budget))
    rows = max(1, min(height, pixel_budget // columns))
    for top in range(0, height, rows):
        for left in range(0, width, columns):
            yield slice(top, min(top + rows, height)), slice(left, min(left + columns, width))


def bilinear_taps(in_size: int, out_size: int, wanted: slice, device: torch.device) -> tuple[torch.Tensor, ...]:
    """For the output positions ``wanted`` of a resize from ``in_size`` to ``out_size``: the two source indices
    and their weights, as ``F.interpolate(mode="bilinear", align_corners=False)`` computes them."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32, device=device)
    position = torch.arange(wanted.start, wanted.stop, dtype=torch.float32, device=device)
    source = ((position + 0.5) * scale - 0.5).clamp(min=0.0)
    first = source.long()
    second_weight = source - first
    return first, (first + 1).clamp(max=in_size - 1), 1.0 - second_weight, second_weight


def resized_tile(small: torch.Tensor, size: tuple[int, int], rows: slice, columns: slice) -> torch.Tensor:
    """The tile (``rows``, ``columns``) of ``small`` (N x C x h x w) resized bilinearly to ``size``: the same
    pixels as that tile of ``F.interpolate(small, size, mode="bilinear")``, without the whole resized image."""
    (height, width), device = size, small.device
    top, bottom, top_weight, bottom_weight = bilinear_taps(small.shape[-2], height, rows, device)
    left, right, left_weight, right_weight = bilinear_taps(small.shape[-1], width, columns, device)
    first_row = int(top[0])
    band = small[..., first_row : int(bottom[-1]) + 1, :]  # the source rows this tile reads
    across = band[..., left] * left_weight + band[..., right] * right_weight
    top, bottom = top - first_row, bottom - first_row
    return across[..., top, :] * top_weight[:, None] + across[..., bottom, :] * bottom_weight[:, None]


def lightness(rgb: np.ndarray, device: torch.device, pixel_budget: int) -> torch.Tensor:
    """An H x W x 3 uint8 image's L (1 x 1 x H x W, on ``device``), converted ``pixel_budget`` pixels at a time."""
    height, width = rgb.shape[:2]
    out = torch.empty((1, 1, height, width), device=device)
    for rows, columns in tiles(height, width, pixel_budget):
        tile = torch.tensor(rgb[rows, columns])[None].to(device)  # a copy: decoded arrays may be read-only
        out[..., rows, columns] = color.rgb_to_lab(color.uint8_to_rgb(tile))[:, :1]
    return out


def lab_tiles_to_uint8(
    lightness_full: torch.Tensor, ab_small: torch.Tensor | None, gamut: str, pixel_budget: int
) -> np.ndarray:
    """Full-resolution L joined with ``ab_small`` (1 x 2 x h x w) resized to L's size, or with no colour when
    None, as H x W x 3 uint8 RGB, ``pixel_budget`` pixels at a time (``gamut``: see :func:`color.lab_to_rgb`)."""
    height, width = lightness_full.shape[-2:]
    out = np.empty((height, width, 3), np.uint8)
    for rows, columns in tiles(height, width, pixel_budget):
        lightness_tile = lightness_full[..., rows, columns]
        if ab_small is None:
            ab = torch.zeros_like(lightness_tile).expand(-1, 2, -1, -1)
        else:
            ab = resized_tile(ab_small, (height, width), rows, columns)
        rgb = color.lab_to_rgb(torch.cat([lightness_tile, ab], dim=1), gamut)
        out[rows, columns] = color.rgb_to_uint8(rgb)[0].cpu().numpy()
    return out


@torch.no_grad()
def colorize_full_resolution(
    generator: UNetGenerator,
    images: list[np.ndarray],
    model_size: int,
    device: torch.device,
    gamut: str = "chroma",
    pixel_budget: int = DEFAULT_PIXEL_BUDGET,
) -> list[np.ndarray]:
    """Colorize a batch of H x W x 3 uint8 images of any sizes; returns uint8 RGB of the same sizes.

    L (full resolution) -> resized to ``model_size`` -> generator -> ab resized back -> Lab of the original L
    with the predicted ab -> RGB (``gamut``: see :func:`color.lab_to_rgb`). The model sees each whole image;
    the full-resolution conversions run ``pixel_budget`` pixels at a time, so their memory stays bounded
    however large the image (they work pixel by pixel: tiles give the same pixels as one pass).
    """
    if not images:
        return []
    lightness_full = [lightness(image, device, pixel_budget) for image in images]
    l_small = torch.cat(
        [F.interpolate(lum, size=(model_size, model_size), mode="bilinear", antialias=True) for lum in lightness_full]
    )
    ab_small = generator(l_small / color.L_SCALE - 1.0).float() * color.AB_SCALE
    return [lab_tiles_to_uint8(lum, ab[None], gamut, pixel_budget) for lum, ab in zip(lightness_full, ab_small)]


def side_by_side(gray: np.ndarray, colorized: np.ndarray, gap: int = 8) -> np.ndarray:
    """Gray input | output, with a white gap."""
    h = gray.shape[0]
    return np.concatenate([gray, np.full((h, gap, 3), 255, np.uint8), colorized], axis=1)


def gray_of(rgb: np.ndarray, pixel_budget: int = DEFAULT_PIXEL_BUDGET) -> np.ndarray:
    """What the model was given, shown: the image's L with no colour, as RGB."""
    return lab_tiles_to_uint8(lightness(rgb, torch.device("cpu"), pixel_budget), None, "chroma", pixel_budget)


def pixel_batches(todo: list[T], pixels: list[int], batch_size: int, pixel_budget: int) -> Iterator[list[T]]:
    """``todo`` in order, in batches of at most ``batch_size`` items and ``pixel_budget`` pixels (``pixels``: each
    item's); an item over the budget forms a batch alone."""
    batch: list[T] = []
    held = 0
    for item, count in zip(todo, pixels):
        if batch and (len(batch) == batch_size or held + count > pixel_budget):
            yield batch
            batch, held = [], 0
        batch.append(item)
        held += count
    if batch:
        yield batch


def decode_readable(
    batch: list[tuple[Path, Path]], report: ColorizeReport, bar: tqdm
) -> list[tuple[Path, Path, np.ndarray]]:
    """(source, target, pixels) of each readable source in ``batch``; the others are recorded in ``report``."""
    decoded = []
    for source, target in batch:
        rgb, reason = load_rgb(source, accept_gray=True)
        if rgb is None:
            report.rejected.append((source, reason))
            print(f"skipped {source}: {reason}")
            bar.update()
        else:
            decoded.append((source, target, rgb))
    return decoded


def check_settings(batch_size: int, pixel_budget: int, device: str) -> None:
    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: must be at least 1")
    if pixel_budget < 1:
        raise ValueError(f"--batch-megapixels {pixel_budget / 1e6:g}: must be positive")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no GPU is visible")


@writes_run_dir("colorize")
def colorize_path(
    checkpoint: str | Path,
    input_path: str | Path,
    out_dir: str | Path,
    model_size: int = 0,
    compare: bool = False,
    jpeg: bool = False,
    overwrite: bool = False,
    batch_size: int = 16,
    device: str = "auto",
    show_progress: bool = True,
    gamut: str = "chroma",
    pixel_budget: int = DEFAULT_PIXEL_BUDGET,
    *,
    run_dir: str | Path | None = None,
) -> ColorizeReport:
    """Colorize a file or every image under a folder into ``out_dir``; with ``run_dir`` (the run directory ``out_dir``
    lies in) as its one writer while the call writes. ``model_size`` 0: the size the checkpoint was trained at. A file
    that cannot be read is skipped and recorded (with its reason) in ``out_dir/rejected.csv``; an existing output is
    kept unless ``overwrite``. A ParameterError, before any image is colorized, for a folder with no image and for an
    ``out_dir`` that cannot be written; after, for inputs that were all rejected. ``gamut``: how predicted colours
    outside sRGB are shown (:func:`color.lab_to_rgb`). Memory follows ``pixel_budget``, not the files' sizes: a batch
    holds at most ``batch_size`` images and ``pixel_budget`` pixels, a larger image is converted in tiles of that many.
    """
    check_settings(batch_size, pixel_budget, device)
    root, listing = input_files(input_path)
    torch_device = device_named(device)
    generator, record = load_generator(checkpoint, torch_device)
    model_size = model_size or int(record["image_size"])
    if model_size < 32 or model_size % 32:
        raise ValueError(f"--model-size {model_size}: must be a positive multiple of 32")
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    extension = "jpg" if jpeg else "png"
    report = ColorizeReport(rejected=listing.outside_reasons())
    for source, reason in report.rejected:
        print(f"skipped {source}: {reason}")
    todo = []
    for source in listing.images:
        target = output_path(source, root, out_dir, extension)
        if target.exists() and not overwrite:
            report.existing.append(target)
        else:
            todo.append((source, target))
    with tqdm(total=len(todo), desc="colorize", unit="image", disable=not show_progress) as bar:  # closed on errors
        # sized from the files' headers: nothing is decoded before its batch runs
        for batch in pixel_batches(todo, [pixel_count(source) for source, _ in todo], batch_size, pixel_budget):
            decoded = decode_readable(batch, report, bar)
            images = [rgb for _, _, rgb in decoded]
            outputs = colorize_full_resolution(generator, images, model_size, torch_device, gamut, pixel_budget)
            for (source, target, rgb), output in zip(decoded, outputs):
                save_image(output, target, jpeg)
                if compare:
                    compared = side_by_side(gray_of(rgb, pixel_budget), output)
                    save_image(compared, output_path(source, root, out_dir, extension, "_compare"), jpeg)
                report.written.append(target)
                bar.update()
    record_rejected(report, Path(input_path), out_dir)
    print(report.summary() + (f"; reasons in {out_dir / 'rejected.csv'}" if report.rejected else ""))
    return report


def record_rejected(report: ColorizeReport, input_path: Path, out_dir: Path) -> None:
    """The rejected inputs and their reasons, in ``out_dir/rejected.csv``; when every input was rejected, a
    ParameterError saying so."""
    if not report.rejected:
        return
    rejected = pd.DataFrame([(str(p), r) for p, r in report.rejected], columns=["source", "reason"])
    write_csv_atomic(out_dir / "rejected.csv", rejected)
    if report.written or report.existing:
        return
    if input_path.is_file():
        raise ParameterError(f"{input_path} was rejected ({report.rejected[0][1]}): see {out_dir / 'rejected.csv'}")
    raise ParameterError(f"every file in {input_path} was rejected: see {out_dir / 'rejected.csv'}")


def save_image(rgb: np.ndarray, path: Path, jpeg: bool) -> None:  # rgb: H x W x 3, or H x W gray
    """Written under a temporary name, then renamed: an interrupted run leaves no half image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary:
        Image.fromarray(rgb).save(temporary, format="JPEG" if jpeg else "PNG", **({"quality": 95} if jpeg else {}))


@writes_run_dir("the colorize sample images")
def write_sample_inputs(folder: str | Path, *, run_dir: str | Path | None = None) -> Path:
    """A few images to try a model on, nothing downloaded: scikit-image's black-and-white camera
    photograph, the demo's movie test photographs (colorized from their L only; no demo model trained
    on them) and a demo cartoon frame, at their own (non-square) sizes. ``run_dir``: the run directory
    ``folder`` lies in, held while the images are written (None: none)."""
    import skimage.data

    from utils.data.demo import DEMO_MOVIE_TEST_PHOTOS, demo_cartoon_frames, load_demo_photo

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame = next(demo_cartoon_frames(1, 256, seed=7)).rgb
    samples = {
        "camera.png": skimage.data.camera(),
        **{f"{name}.png": load_demo_photo(name) for name in DEMO_MOVIE_TEST_PHOTOS},
        "cartoon_frame.png": np.asarray(Image.fromarray(frame).resize((320, 240), Image.Resampling.LANCZOS)),
    }
    for name, pixels in samples.items():
        if not (folder / name).exists():
            save_image(pixels, folder / name, False)  # camera.png stays a one-channel (L) image
    return folder


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m utils.colorize``."""
    parser = argparse.ArgumentParser(prog="python -m utils.colorize", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a best.pt (or checkpoint_last.pt) of this kit")
    parser.add_argument("--input", required=True, help="an image file, or a folder (searched recursively)")
    parser.add_argument("--output", required=True, help="folder for <name>_colorized.png (sub-folders kept)")
    parser.add_argument("--model-size", type=int, default=0, help="the model's input size (default: as trained)")
    parser.add_argument("--compare", action="store_true", help="also write <name>_compare: gray input | output")
    parser.add_argument("--jpeg", action="store_true", help="write JPEG (quality 95) instead of PNG")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--batch-size", type=int, default=16, help="the most images the model colorizes at once")
    parser.add_argument(
        "--batch-megapixels",
        type=float,
        default=DEFAULT_PIXEL_BUDGET / 1e6,
        help="the most megapixels converted at once (a batch's images, or tiles of a larger one): bounds the memory",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--gamut",
        default="chroma",
        choices=GAMUTS,
        help="colours sRGB cannot show: chroma (keep L and hue, less chroma) or clip (RGB clipped)",
    )
    return parser


def work(args: argparse.Namespace) -> None:
    """``python -m utils.colorize``'s work, once its arguments are parsed."""
    colorize_path(
        args.checkpoint,
        args.input,
        args.output,
        args.model_size,
        args.compare,
        args.jpeg,
        args.overwrite,
        args.batch_size,
        args.device,
        gamut=args.gamut,
        pixel_budget=round(args.batch_megapixels * 1e6),
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (math.isfinite(args.batch_megapixels) and args.batch_megapixels > 0):
        parser.error(f"--batch-megapixels {args.batch_megapixels}: must be a positive, finite number of megapixels")
    return run_command(lambda: work(args), (ValueError, FileNotFoundError))  # ValueError: the kit's errors


if __name__ == "__main__":
    sys.exit(main())
