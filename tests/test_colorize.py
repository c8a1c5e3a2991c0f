"""Colorizing your own images with a trained (tiny, demo) checkpoint, at full resolution."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image
from skimage.color import rgb2lab

from utils import colorize, config, train
from utils.images import load_rgb

SIZES = {"photo.jpg": (300, 200), "wide.png": (100, 37), "tiny.png": (7, 5), "gray.png": (64, 48),
         "nested/sub/frame.bmp": (50, 80)}  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, prepared_run: Path, tiny_params) -> Path:
    run = tmp_path_factory.mktemp("colorize_run")
    (run / "data").symlink_to(prepared_run / "data")
    train.train(dataclasses.replace(tiny_params, epochs=1), run, "movie", show_progress=False)
    return config.model_dir(run, "movie", 0) / "best.pt"


@pytest.fixture()
def inputs(tmp_path: Path) -> Path:
    """Mixed sizes and kinds: non-square, tiny, one-channel gray, nested, EXIF-rotated, corrupt."""
    folder = tmp_path / "in"
    photo = skimage.data.chelsea()
    for name, (w, h) in SIZES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(photo).resize((w, h))
        (image.convert("L") if name == "gray.png" else image).save(folder / name)
    rotated = Image.fromarray(photo).resize((60, 40))
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": shown as 40 x 60
    rotated.save(folder / "rotated.jpg", exif=exif)
    (folder / "broken.jpg").write_bytes((folder / "photo.jpg").read_bytes()[:300])
    (folder / "notes.txt").write_text("not an image")
    return folder


def shown_size(path: Path) -> tuple[int, int]:
    from PIL import ImageOps

    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).size


def assert_same_lightness(output: np.ndarray, source: Path) -> None:
    """The output's lightness is the input's, up to 8-bit rounding (skimage's Lab, independently)."""
    given = load_rgb(source, accept_gray=True)[0]
    assert output.shape == given.shape, (source.name, output.shape, given.shape)
    delta_l = np.abs(rgb2lab(output)[..., 0] - rgb2lab(given)[..., 0])
    assert delta_l.mean() < 0.5 and np.percentile(delta_l, 99) < 1.5, (source.name, delta_l.mean(), delta_l.max())


def test_outputs_keep_every_input_size_and_its_lightness(checkpoint: Path, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = colorize.colorize_path(checkpoint, inputs, out, compare=True, batch_size=2, show_progress=False)
    assert len(report.written) == len(SIZES) + 1 and not report.existing
    assert [(p.name, r.split(":")[0]) for p, r in report.rejected] == [("broken.jpg", "corrupt")]
    assert "broken.jpg" in (out / "rejected.csv").read_text()
    for name in [*SIZES, "rotated.jpg"]:
        source = inputs / name
        target = out / Path(name).parent / f"{Path(name).stem}_colorized.png"
        assert target.is_file(), target
        with Image.open(target) as image:
            assert image.size == shown_size(source), name
            output = np.asarray(image.convert("RGB"))
        with Image.open(out / Path(name).parent / f"{Path(name).stem}_compare.png") as image:
            assert image.size == (2 * output.shape[1] + 8, output.shape[0])
        assert_same_lightness(output, source)
    colourful = np.asarray(Image.open(out / "photo_colorized.png"))
    assert np.abs(colourful[..., 0].astype(int) - colourful[..., 2]).mean() > 1, "no colour was added"


def test_images_3_pixels_tall_or_wide_keep_their_size_and_lightness(checkpoint: Path, tmp_path: Path) -> None:
    """H x W x 3 with H or W = 3: the channels-last batch 1 x 3 x W x 3 must not pass for channels first."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    photo = Image.fromarray(skimage.data.coffee())
    sizes = {"strip_3_tall.png": (50, 3), "strip_3_wide.png": (3, 50), "square_3.png": (3, 3)}  # (width, height)
    for name, size in sizes.items():
        photo.resize(size, Image.Resampling.BOX).save(folder / name)
    report = colorize.colorize_path(checkpoint, folder, out, show_progress=False)
    assert len(report.written) == len(sizes) and not report.rejected
    for name, size in sizes.items():
        with Image.open(out / f"{Path(name).stem}_colorized.png") as image:
            assert image.size == size, name
            assert_same_lightness(np.asarray(image.convert("RGB")), folder / name)


def test_existing_outputs_are_kept_unless_overwrite(checkpoint: Path, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    colorize.colorize_path(checkpoint, inputs / "wide.png", out, show_progress=False)
    target = out / "wide_colorized.png"
    target.write_bytes(b"mine")
    again = colorize.colorize_path(checkpoint, inputs / "wide.png", out, show_progress=False)
    assert again.existing == [target] and not again.written and target.read_bytes() == b"mine"
    replaced = colorize.colorize_path(
        checkpoint, inputs / "wide.png", out, overwrite=True, jpeg=True, show_progress=False
    )
    assert replaced.written == [out / "wide_colorized.jpg"]
    with Image.open(out / "wide_colorized.jpg") as image:
        assert image.format == "JPEG" and image.size == (100, 37)


def test_a_bad_checkpoint_is_a_clear_error(tmp_path: Path, inputs: Path, capsys) -> None:
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="best.pt: not a readable checkpoint"):
        colorize.colorize_path(bad, inputs, tmp_path / "out", show_progress=False)
    import torch

    torch.save({"format": "cross-domain-colorization/1", "generator": {}}, bad)  # an older kit version
    assert colorize.main(["--checkpoint", str(bad), "--input", str(inputs), "--output", str(tmp_path / "o")]) == 2
    assert "checkpoint format 'cross-domain-colorization/1'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_sample_inputs_cover_gray_colour_and_cartoon(tmp_path: Path) -> None:
    folder = colorize.write_sample_inputs(tmp_path / "samples")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["camera.png", "cartoon_frame.png", "chelsea.png", "coffee.png"]
    with Image.open(folder / "camera.png") as camera:
        assert camera.mode == "L"
    with Image.open(folder / "cartoon_frame.png") as frame:
        assert frame.size == (320, 240)
