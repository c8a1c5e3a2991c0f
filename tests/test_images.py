"""Robust decoding: each bad or odd input kind, made by tests/messy_data.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.messy_data import BAD_FILES, GOOD_FILES, colourful, write_bad_and_odd_files
from utils.data.decoding import DecodeSettings, decode_source_file
from utils.data.sources import SourceFile
from utils.imaging.images import colorfulness, find_images, load_rgb, resize_square

SETTINGS = DecodeSettings(size=64, resize="crop", min_colorfulness=10.0, max_pixels=50_000_000)


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("odd")
    write_bad_and_odd_files(folder)
    return folder


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_input_is_rejected_with_its_reason(odd_folder: Path, name: str) -> None:
    candidate = decode_source_file((SourceFile(str(odd_folder / name), "g"), SETTINGS))
    assert candidate.rgb is None
    assert candidate.reason.split(":")[0] == BAD_FILES[name], candidate.reason


@pytest.mark.parametrize("name", GOOD_FILES)
def test_odd_but_good_input_is_decoded(odd_folder: Path, name: str) -> None:
    candidate = decode_source_file((SourceFile(str(odd_folder / name), "g"), SETTINGS))
    assert candidate.reason is None, candidate.reason
    assert candidate.rgb.shape == (64, 64, 3) and candidate.rgb.dtype == np.uint8


def test_transparency_is_composited_on_white(odd_folder: Path) -> None:
    rgb, _ = load_rgb(odd_folder / "rgba.png")
    assert (rgb[:10, :10] == 255).all()


def test_exif_orientation_is_applied(odd_folder: Path) -> None:
    rgb, _ = load_rgb(odd_folder / "rotated.jpg")
    assert rgb.shape == (64, 96, 3)  # stored 64 wide x 96 high, shown rotated 90 degrees


def test_cmyk_and_16_bit_keep_their_colours(odd_folder: Path) -> None:
    rgb16, _ = load_rgb(odd_folder / "rgb16.png")
    assert np.abs(rgb16.astype(int) - colourful(1005)).max() <= 1
    cmyk, _ = load_rgb(odd_folder / "cmyk.jpg")
    assert np.abs(cmyk.astype(float) - colourful(1001)).mean() < 8


def test_gif_gives_its_first_frame(odd_folder: Path) -> None:
    rgb, _ = load_rgb(odd_folder / "animated.gif")
    first, second = colourful(1007).astype(float), colourful(1008).astype(float)
    assert np.abs(rgb - first).mean() < np.abs(rgb - second).mean()


def test_near_grayscale_filter_can_be_disabled(odd_folder: Path) -> None:
    rgb, reason = load_rgb(odd_folder / "sepia.jpg")
    assert reason is None and 0 < colorfulness(rgb) < 10
    off = DecodeSettings(size=64, resize="crop", min_colorfulness=0.0, max_pixels=50_000_000)
    assert decode_source_file((SourceFile(str(odd_folder / "sepia.jpg"), "g"), off)).reason is None


def test_colorfulness_reference_values() -> None:
    assert colorfulness(np.full((8, 8, 3), 128, np.uint8)) == 0
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255  # rg = 255, yb = 127.5, no spread: 0.3 * hypot(255, 127.5)
    assert colorfulness(red) == pytest.approx(0.3 * np.hypot(255, 127.5))


def test_find_images_skips_hidden_and_survives_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.fromarray(colourful(1)).save(tmp_path / "a" / "b" / "x.png")
    Image.fromarray(colourful(2)).save(tmp_path / "a" / ".hidden.png")
    (tmp_path / "a" / "b" / "notes.txt").write_text("x")
    (tmp_path / "a" / "b" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    assert find_images(tmp_path).images == [tmp_path / "a" / "b" / "x.png"]


def test_links_are_followed_inside_the_folder_and_not_out_of_it(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "show").mkdir(parents=True)
    elsewhere.mkdir()
    for i, path in enumerate([root / "show" / "a.png", elsewhere / "b.png", elsewhere / "c.png"]):
        Image.fromarray(colourful(i)).save(path)
    (root / "alias").symlink_to("show", target_is_directory=True)  # inside: followed
    (root / "show" / "same.png").symlink_to("a.png")
    (root / "up").symlink_to(elsewhere, target_is_directory=True)  # outside: not followed
    (root / "show" / "far.png").symlink_to(elsewhere / "c.png")
    (root / "show" / "deep").symlink_to("../..", target_is_directory=True)  # up to tmp_path: outside

    listing = find_images(root)
    assert listing.images == [root / "alias" / "a.png", root / "alias" / "same.png"]  # "show" is "alias": once
    assert listing.outside == [(root / "alias" / "deep", tmp_path), (root / "alias" / "far.png", elsewhere / "c.png"),
                               (root / "up", elsewhere)]  # fmt: skip
    reasons = dict(listing.outside_reasons())
    assert reasons[root / "up"] == f"outside-folder: links to {elsewhere}, outside {root}"
    assert "3 link(s) lead outside the folder and are not followed" in listing.describe_outside()
    assert find_images(root / "up").images == [root / "up" / "b.png", root / "up" / "c.png"]  # a linked root: inside


def test_resize_modes() -> None:
    wide = np.zeros((50, 100, 3), np.uint8)
    wide[:, :25] = 255  # the left quarter is white: cropped away by "crop", kept by "stretch"
    assert resize_square(wide, 32, "crop").mean() < 1  # only a faint Lanczos ringing at the edge
    assert resize_square(wide, 32, "stretch")[:, :4].min() > 200
    with pytest.raises(ValueError, match="'resize'"):
        resize_square(wide, 32, "pad")
