"""Colorize your own images, at full resolution, with a trained generator. Also a CLI.

    python -m utils.colorize --checkpoint RUN/models/mixed/best.pt --input PATH --output DIR
                             [--model-size 256] [--compare] [--jpeg] [--overwrite] [--batch-size 16]
                             [--gamut chroma|clip]

The model sees the image's lightness resized to its training size and predicts the colour (ab)
there; ab is upsampled to the original size and joined with the original full-resolution
lightness, so no detail is lost to the model's resolution. Colour inputs are turned to gray
(their L) first. A predicted colour that sRGB cannot show keeps its L and hue with less chroma
(``--gamut chroma``, the default), so the lightness stays the input's; ``--gamut clip`` clips RGB
as the paper did.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from utils import color
from utils.config import GAMUTS, device_named
from utils.evaluate import load_generator
from utils.images import find_images, load_rgb
from utils.models import UNetGenerator
from utils.run_dir import atomic_write, write_csv_atomic

SUFFIX = "_colorized"


@dataclass
class ColorizeReport:
    """What a run did: files written, outputs left alone, and inputs rejected with their reason."""

    written: list[Path] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"colorized {len(self.written)}, kept {len(self.existing)} existing outputs "
                f"(--overwrite replaces them), rejected {len(self.rejected)}")  # fmt: skip


def input_files(path: str | Path) -> tuple[Path, list[Path]]:
    """(root, image files): a single file, or every image under a folder (recursive)."""
    path = Path(path)
    if path.is_file():
        return path.parent, [path]
    if path.is_dir():
        return path, find_images(path)
    raise FileNotFoundError(f"--input {path}: no such file or folder")


def output_path(source: Path, root: Path, out_dir: Path, extension: str, tag: str = SUFFIX) -> Path:
    """``out_dir/<sub-folders of source under root>/<stem>_colorized.<ext>``: the input's name, kept."""
    return out_dir / source.relative_to(root).parent / f"{source.stem}{tag}.{extension}"


@torch.no_grad()
def colorize_full_resolution(
    generator: UNetGenerator,
    images: list[np.ndarray],
    model_size: int,
    device: torch.device,
    gamut: str = "chroma",
) -> list[np.ndarray]:
    """Colorize a batch of H x W x 3 uint8 images of any sizes; returns uint8 RGB of the same sizes.

    L (full resolution) -> resized to ``model_size`` -> generator -> ab upsampled back -> Lab of
    the original L with the predicted ab -> RGB (``gamut``: see :func:`color.lab_to_rgb`).
    """
    labs = [color.rgb_to_lab(color.uint8_to_rgb(torch.tensor(img)[None].to(device))) for img in images]
    l_small = torch.cat(
        [F.interpolate(lab[:, :1], size=(model_size, model_size), mode="bilinear", antialias=True) for lab in labs]
    )
    ab_small = generator(l_small / color.L_SCALE - 1.0).float() * color.AB_SCALE
    outputs = []
    for lab, ab in zip(labs, ab_small):
        ab_full = F.interpolate(ab[None], size=lab.shape[-2:], mode="bilinear", align_corners=False)
        rgb = color.lab_to_rgb(torch.cat([lab[:, :1], ab_full], dim=1), gamut)
        outputs.append(color.rgb_to_uint8(rgb)[0].cpu().numpy())
    return outputs


def side_by_side(gray: np.ndarray, colorized: np.ndarray, gap: int = 8) -> np.ndarray:
    """Gray input | output, with a white gap."""
    h = gray.shape[0]
    return np.concatenate([gray, np.full((h, gap, 3), 255, np.uint8), colorized], axis=1)


def gray_of(rgb: np.ndarray) -> np.ndarray:
    """What the model was given, shown: the image's L with no colour, as RGB."""
    lab = color.rgb_to_lab(color.uint8_to_rgb(torch.tensor(rgb)[None]))
    lab[:, 1:] = 0
    return color.rgb_to_uint8(color.lab_to_rgb(lab))[0].numpy()


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
) -> ColorizeReport:
    """Colorize a file or every image under a folder into ``out_dir``.

    ``model_size`` 0 means the size the checkpoint was trained at. A file that cannot be read is
    skipped and recorded (with its reason) in ``out_dir/rejected.csv``; an existing output is
    kept unless ``overwrite``. ``gamut``: how predicted colours outside sRGB are shown
    (:func:`color.lab_to_rgb`).
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no GPU is visible")
    torch_device = device_named(device)
    generator, record = load_generator(checkpoint, torch_device)
    model_size = model_size or int(record["image_size"])
    if model_size < 32 or model_size % 32:
        raise ValueError(f"--model-size {model_size}: must be a positive multiple of 32")
    root, files = input_files(input_path)
    out_dir = Path(out_dir)
    extension = "jpg" if jpeg else "png"
    report = ColorizeReport()
    todo = []
    for source in files:
        target = output_path(source, root, out_dir, extension)
        if target.exists() and not overwrite:
            report.existing.append(target)
        else:
            todo.append((source, target))
    bar = tqdm(total=len(todo), desc="colorize", unit="image", disable=not show_progress)
    for start in range(0, len(todo), batch_size):
        batch: list[tuple[Path, Path, np.ndarray]] = []
        for source, target in todo[start : start + batch_size]:
            rgb, reason = load_rgb(source, accept_gray=True)
            if rgb is None:
                report.rejected.append((source, reason))
                print(f"skipped {source}: {reason}")
                bar.update()
                continue
            batch.append((source, target, rgb))
        if not batch:
            continue
        for (source, target, rgb), output in zip(
            batch, colorize_full_resolution(generator, [b[2] for b in batch], model_size, torch_device, gamut)
        ):
            save_image(output, target, jpeg)
            if compare:
                save_image(
                    side_by_side(gray_of(rgb), output), output_path(source, root, out_dir, extension, "_compare"), jpeg
                )
            report.written.append(target)
            bar.update()
    bar.close()
    if report.rejected:
        out_dir.mkdir(parents=True, exist_ok=True)
        rejected = pd.DataFrame([(str(p), r) for p, r in report.rejected], columns=["source", "reason"])
        write_csv_atomic(out_dir / "rejected.csv", rejected)
    print(report.summary() + (f"; reasons in {out_dir / 'rejected.csv'}" if report.rejected else ""))
    return report


def save_image(rgb: np.ndarray, path: Path, jpeg: bool) -> None:  # rgb: H x W x 3, or H x W gray
    """Written under a temporary name, then renamed: an interrupted run leaves no half image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary:
        Image.fromarray(rgb).save(temporary, format="JPEG" if jpeg else "PNG", **({"quality": 95} if jpeg else {}))


def write_sample_inputs(folder: str | Path) -> Path:
    """A few images to try a model on, nothing downloaded: scikit-image's black-and-white camera
    photograph, the demo's movie test photographs (colorized from their L only; no demo model trained
    on them) and a demo cartoon frame, at their own (non-square) sizes."""
    import skimage.data

    from utils.sources import DEMO_MOVIE_TEST_PHOTOS, demo_cartoon_frames, load_demo_photo

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
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--gamut",
        default="chroma",
        choices=GAMUTS,
        help="colours sRGB cannot show: chroma (keep L and hue, less chroma) or clip (RGB clipped)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        colorize_path(args.checkpoint, args.input, args.output, args.model_size, args.compare, args.jpeg,
                      args.overwrite, args.batch_size, args.device, gamut=args.gamut)  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
