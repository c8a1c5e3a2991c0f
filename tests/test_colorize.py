"""Colorizing your own images with a trained (tiny, demo) checkpoint, at full resolution."""

from __future__ import annotations

from pathlib import Path

import kornia.color
import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import rgb2lab

from tests.helpers import open_folder, write_protected
from utils import colorize
from utils.core import config
from utils.core.parameters import GAMUTS
from utils.imaging import color
from utils.imaging.images import load_rgb

SIZES = {"photo.jpg": (300, 200), "wide.png": (100, 37), "tiny.png": (7, 5), "gray.png": (64, 48),
         "nested/sub/frame.bmp": (50, 80)}  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(one_epoch_run) -> Path:
    """The movie model after one epoch (conftest's, shared: read only)."""
    return config.model_dir(one_epoch_run("movie"), "movie", 0) / "best.pt"


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
    with pytest.raises(ValueError, match="best.pt: damaged, or not a checkpoint of this kit"):
        colorize.colorize_path(bad, inputs, tmp_path / "out", show_progress=False)
    assert colorize.main(["--checkpoint", str(bad), "--input", str(inputs), "--output", str(tmp_path / "o")]) == 2
    printed = capsys.readouterr().err
    assert "damaged, or not a checkpoint of this kit" in printed and "weights_only" not in printed

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


class VaryingColour(torch.nn.Module):
    """A generator whose colour (normalised ab) varies across the image and with L: resizing it back matters."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(len(l_norm))
        height, width = l_norm.shape[-2:]
        y = torch.linspace(-1, 1, height).view(1, 1, height, 1)
        x = torch.linspace(-1, 1, width).view(1, 1, 1, width)
        return torch.cat([0.8 * torch.sin(5 * x + 2 * l_norm), 0.8 * torch.cos(4 * y - 3 * l_norm + x)], dim=1)


def untiled(generator: torch.nn.Module, rgb: np.ndarray, model_size: int, gamut: str) -> np.ndarray:
    """Colorize one image in one pass over all its pixels: the whole image's Lab, ab resized by F.interpolate."""
    lab = color.rgb_to_lab(color.uint8_to_rgb(torch.tensor(rgb)[None]))
    l_small = F.interpolate(lab[:, :1], size=(model_size, model_size), mode="bilinear", antialias=True)
    ab_small = generator(l_small / color.L_SCALE - 1.0) * color.AB_SCALE
    ab = F.interpolate(ab_small, size=lab.shape[-2:], mode="bilinear", align_corners=False)
    return color.rgb_to_uint8(color.lab_to_rgb(torch.cat([lab[:, :1], ab], dim=1), gamut))[0].numpy()


@pytest.mark.parametrize("gamut", GAMUTS)
@pytest.mark.parametrize("size", [(203, 301), (30, 41)], ids=["larger-than-the-model", "smaller-than-the-model"])
def test_tiles_give_the_untiled_result(gamut: str, size: tuple[int, int]) -> None:
    rgb = np.asarray(Image.fromarray(skimage.data.chelsea()).resize(size[::-1]))
    expected = untiled(VaryingColour(), rgb, 64, gamut)
    pixels = size[0] * size[1]
    for budget in (pixels, pixels // 7, size[1] // 3):  # one tile; bands of whole rows; pieces of a row
        tiled = colorize.colorize_full_resolution(VaryingColour(), [rgb], 64, torch.device("cpu"), gamut, budget)[0]
        differ = np.abs(tiled.astype(int) - expected)
        assert differ.max() <= 1 and (differ > 0).mean() < 1e-3, (budget, differ.max(), (differ > 0).mean())


def test_a_resized_tile_is_that_tile_of_f_interpolate() -> None:
    small = torch.randn(1, 2, 16, 24, generator=torch.Generator().manual_seed(0)) * 50
    for size in [(203, 301), (16, 24), (7, 40), (1000, 3)]:
        whole = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
        for rows, columns in [(slice(0, size[0]), slice(0, size[1])), *colorize.tiles(*size, pixel_budget=97)]:
            tile = colorize.resized_tile(small, size, rows, columns)
            torch.testing.assert_close(tile, whole[..., rows, columns], atol=5e-4, rtol=1e-5)  # float order


def test_batches_and_conversions_hold_at_most_the_pixel_budget(tmp_path: Path, monkeypatch) -> None:
    sizes = {"a.png": (60, 40), "b.png": (50, 40), "c.png": (120, 100), "d.png": (30, 20)}  # 2400, 2000, 12000, 600
    for name, size in sizes.items():
        Image.fromarray(skimage.data.coffee()).resize(size).save(tmp_path / name)
    generator = VaryingColour()
    monkeypatch.setattr(colorize, "load_generator", lambda path, device: (generator, {"image_size": 64}))
    converted: list[int] = []  # pixels per conversion, either way
    for name in ("rgb_to_lab", "lab_to_rgb"):
        convert = getattr(color, name)
        monkeypatch.setattr(color, name, lambda image, *a, convert=convert: converted.append(image[0, 0].numel())
                            or convert(image, *a))  # fmt: skip
    colorize.colorize_path("stub.pt", tmp_path, tmp_path / "tiled", compare=True, show_progress=False,
                           pixel_budget=5000)  # fmt: skip
    assert generator.batch_sizes == [2, 1, 1]  # a and b (4400 pixels); c alone; d would pass 5000 with c
    assert max(converted) <= 5000 and sum(converted) >= 2 * sum(w * h for w, h in sizes.values())
    monkeypatch.undo()
    monkeypatch.setattr(colorize, "load_generator", lambda path, device: (VaryingColour(), {"image_size": 64}))
    colorize.colorize_path("stub.pt", tmp_path, tmp_path / "whole", compare=True, show_progress=False)
    for name in sizes:
        for kind in ("colorized", "compare"):
            produced = [
                np.asarray(Image.open(tmp_path / run / f"{Path(name).stem}_{kind}.png")) for run in ("tiled", "whole")
            ]
            assert np.abs(produced[0].astype(int) - produced[1]).max() <= 1, (name, kind)


def cli_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one ``error:`` line a command printed (its progress bar aside), with no traceback."""
    printed = capsys.readouterr().err
    assert "Traceback" not in printed, printed
    errors = [line for line in printed.replace("\r", "\n").splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("error: "), printed
    return errors[0]


def refuse_to_colorize(monkeypatch: pytest.MonkeyPatch) -> None:
    def colorized(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image was colorized before the output folder was checked")

    monkeypatch.setattr(colorize, "colorize_full_resolution", colorized)


def test_a_read_only_output_folder_is_named(checkpoint: Path, capsys, monkeypatch) -> None:
    refuse_to_colorize(monkeypatch)
    with open_folder() as folder:
        (folder / "in").mkdir()
        Image.fromarray(skimage.data.coffee()).resize((40, 30)).save(folder / "in" / "cup.png")
        (folder / "best.pt").write_bytes(checkpoint.read_bytes())
        (folder / "out").mkdir()
        with write_protected(folder / "out"):
            code = colorize.main(["--checkpoint", str(folder / "best.pt"), "--input", str(folder / "in"),
                                  "--output", str(folder / "out")])  # fmt: skip
        line = cli_error_line(capsys)
        assert code == 2 and line.startswith(f"error: --output {folder / 'out'}: cannot write there ("), line
        assert not list((folder / "out").iterdir())


def test_an_output_folder_that_cannot_be_made_is_named(checkpoint: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    refuse_to_colorize(monkeypatch)
    Image.fromarray(skimage.data.coffee()).resize((40, 30)).save(tmp_path / "cup.png")
    (tmp_path / "a_file").write_text("not a folder")
    for out in (tmp_path / "a_file", tmp_path / "a_file" / "out"):
        code = colorize.main(
            ["--checkpoint", str(checkpoint), "--input", str(tmp_path / "cup.png"), "--output", str(out)]
        )
        assert code == 2 and cli_error_line(capsys) == (
            f"error: --output {out}: cannot write there ({tmp_path / 'a_file'} is a file); give a folder this user "
            "may write"
        )


def test_a_folder_with_no_image_is_named(checkpoint: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    code = colorize.main(["--checkpoint", str(checkpoint), "--input", str(tmp_path / "in"), "--output",
                          str(tmp_path / "out")])  # fmt: skip
    assert code == 2 and cli_error_line(capsys).startswith(f"error: no images found in {tmp_path / 'in'}: --input ")
    assert not (tmp_path / "out").exists()


def test_a_folder_whose_every_file_is_rejected_is_named_and_each_file_recorded(
    checkpoint: Path, inputs: Path, tmp_path: Path, capsys
) -> None:
    folder, out = tmp_path / "bad", tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "truncated.jpg").write_bytes((inputs / "photo.jpg").read_bytes()[:300])
    (folder / "sub" / "text.png").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    code = colorize.main(["--checkpoint", str(checkpoint), "--input", str(folder), "--output", str(out)])
    assert code == 2
    assert cli_error_line(capsys) == f"error: every file in {folder} was rejected: see {out / 'rejected.csv'}"
    rejected = pd.read_csv(out / "rejected.csv")
    reasons = {Path(source).relative_to(folder).as_posix(): reason.split(":")[0]
               for source, reason in zip(rejected["source"], rejected["reason"])}  # fmt: skip
    assert reasons == {"truncated.jpg": "corrupt", "sub/text.png": "not-an-image", "empty.png": "empty-file"}
    assert sorted(p.name for p in out.iterdir()) == ["rejected.csv"]

    code = colorize.main(["--checkpoint", str(checkpoint), "--input", str(folder / "truncated.jpg"), "--output",
                          str(out)])  # fmt: skip
    assert code == 2
    assert cli_error_line(capsys).startswith(f"error: {folder / 'truncated.jpg'} was rejected (corrupt: ")


def test_an_input_link_out_of_the_folder_is_rejected_with_its_reason(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "private").mkdir()
    Image.fromarray(skimage.data.coffee()).resize((40, 30)).save(tmp_path / "in" / "cup.png")
    Image.fromarray(skimage.data.chelsea()).resize((40, 30)).save(tmp_path / "private" / "cat.png")
    (tmp_path / "in" / "cat.png").symlink_to(tmp_path / "private" / "cat.png")
    monkeypatch.setattr(colorize, "load_generator", lambda path, device: (VaryingColour(), {"image_size": 64}))
    report = colorize.colorize_path("stub.pt", tmp_path / "in", tmp_path / "out", show_progress=False)
    assert report.written == [tmp_path / "out" / "cup_colorized.png"]
    reason = f"outside-folder: links to {tmp_path / 'private' / 'cat.png'}, outside {tmp_path / 'in'}"
    assert report.rejected == [(tmp_path / "in" / "cat.png", reason)]
    assert reason in (tmp_path / "out" / "rejected.csv").read_text()


def test_a_batch_of_unreadable_files_only_is_recorded(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    Image.fromarray(skimage.data.coffee()).resize((40, 30)).save(tmp_path / "in" / "b_cup.png")
    monkeypatch.setattr(colorize, "load_generator", lambda path, device: (VaryingColour(), {"image_size": 64}))
    report = colorize.colorize_path("stub.pt", tmp_path / "in", tmp_path / "out", batch_size=1, show_progress=False)
    assert [p.name for p, _ in report.rejected] == ["a_broken.png"] and len(report.written) == 1


def test_pixel_batches_hold_at_most_the_count_and_the_budget() -> None:
    pixels = [3, 3, 9, 1, 1, 1, 0, 5]
    batches = list(colorize.pixel_batches(list(range(len(pixels))), pixels, batch_size=3, pixel_budget=6))
    assert batches == [[0, 1], [2], [3, 4, 5], [6, 7]]
