"""Colorizing your own images with a trained (tiny, demo) checkpoint, at full resolution."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import kornia.color
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from skimage.color import rgb2lab

from utils import color, colorize, config, train
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


class StrongColour(torch.nn.Module):
    """A generator that predicts the same strong colour (normalised ab) everywhere, white included."""

    def __init__(self, ab_norm: tuple[float, float]) -> None:
        super().__init__()
        self.register_buffer("ab_norm", torch.tensor(ab_norm).view(1, 2, 1, 1))

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        return self.ab_norm.expand(len(l_norm), 2, *l_norm.shape[2:])


def write_clip_art(path: Path) -> np.ndarray:
    """An RGBA clip-art PNG (saturated fills and a black outline on a transparent background that hides
    black, plus an opaque white patch); returns the mask of what shows white once composited on white."""
    rgba = np.zeros((96, 128, 4), np.uint8)  # transparent black
    rgba[10:40, 10:60] = (230, 20, 30, 255)  # red
    rgba[50:90, 20:50] = (20, 60, 220, 255)  # blue
    rgba[15:45, 75:120] = (250, 220, 10, 255)  # yellow
    rgba[55:85, 70:100] = (255, 255, 255, 255)  # opaque white
    rgba[55:85, 100:104] = (0, 0, 0, 255)  # outline
    Image.fromarray(rgba, "RGBA").save(path)
    return (rgba[..., 3] == 0) | (rgba[..., :3] == 255).all(axis=-1)


def test_white_stays_white_and_lightness_is_kept_when_the_model_predicts_strong_colour(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(
        colorize, "load_generator", lambda path, device: (StrongColour((0.9, -0.7)), {"image_size": 64})
    )
    white = write_clip_art(tmp_path / "clip_art.png")
    composited = load_rgb(tmp_path / "clip_art.png")[0]  # transparency on white, as the kit reads it
    colorize.colorize_path("stub.pt", tmp_path / "clip_art.png", tmp_path / "chroma", show_progress=False)
    mapped = np.asarray(Image.open(tmp_path / "chroma" / "clip_art_colorized.png"))
    assert mapped[white].min() >= 254, mapped[white].min()
    delta_l = np.abs(rgb2lab(mapped)[..., 0] - rgb2lab(composited)[..., 0])
    assert np.percentile(delta_l, 99) < 0.5 and delta_l.max() < 1.5, (np.percentile(delta_l, 99), delta_l.max())
    assert np.abs(mapped[..., 0].astype(int) - mapped[..., 1])[~white].mean() > 20, "the fills lost their colour"

    args = ["--checkpoint", "stub.pt", "--input", str(tmp_path / "clip_art.png"), "--output", str(tmp_path / "clip")]
    assert colorize.main([*args, "--gamut", "clip"]) == 0
    clipped = np.asarray(Image.open(tmp_path / "clip" / "clip_art_colorized.png"))
    lab = color.rgb_to_lab(color.uint8_to_rgb(torch.tensor(composited)[None]))
    lab[:, 1:] = torch.tensor([0.9, -0.7]).view(1, 2, 1, 1) * color.AB_SCALE
    todays = color.rgb_to_uint8(kornia.color.lab_to_rgb(lab, clip=True))[0].numpy()
    np.testing.assert_array_equal(clipped, todays)
    assert clipped[white].min() < 200, "the clipped background is tinted: the case the mapping is for"
