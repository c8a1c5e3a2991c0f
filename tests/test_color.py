"""The Lab conversion (kornia, batched) against scikit-image's reference implementation."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.color
import skimage.data
import torch

from utils.imaging import color


def _photo_and_extremes() -> np.ndarray:
    photo = skimage.data.astronaut()[::4, ::4]  # 128 x 128
    extremes = np.array(
        [
            [0, 0, 0],
            [255, 255, 255],
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [255, 255, 0],
            [128, 128, 128],
            [0, 255, 255],
        ],
        dtype=np.uint8,
    )
    photo[0, : len(extremes)] = extremes
    return photo


def test_rgb_to_lab_matches_skimage() -> None:
    rgb = _photo_and_extremes()
    ours = color.rgb_to_lab(color.uint8_to_rgb(torch.from_numpy(rgb)[None]))[0].permute(1, 2, 0).numpy()
    reference = skimage.color.rgb2lab(rgb)
    assert np.abs(ours - reference).max() < 1e-3


def test_lab_to_rgb_matches_skimage() -> None:
    lab = skimage.color.rgb2lab(_photo_and_extremes())
    ours = color.lab_to_rgb(torch.from_numpy(lab).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - skimage.color.lab2rgb(lab)).max() < 1e-4


def test_round_trip_and_normalisation() -> None:
    rgb = color.uint8_to_rgb(torch.from_numpy(_photo_and_extremes())[None])
    l_norm, ab_norm = color.normalize_lab(color.rgb_to_lab(rgb))
    assert l_norm.min() >= -1 - 1e-5 and l_norm.max() <= 1 + 1e-5
    assert ab_norm.abs().max() <= 1.0
    back = color.colorized_rgb(l_norm, ab_norm)
    assert torch.allclose(back, rgb, atol=1e-4)
    assert torch.equal(color.rgb_to_uint8(back), torch.from_numpy(_photo_and_extremes())[None])


def test_zero_ab_is_gray() -> None:
    rgb = color.uint8_to_rgb(torch.from_numpy(_photo_and_extremes())[None])
    l_norm, _ = color.uint8_to_model_io(torch.from_numpy(_photo_and_extremes())[None])
    gray = color.colorized_rgb(l_norm, torch.zeros_like(l_norm).repeat(1, 2, 1, 1))
    assert torch.allclose(gray[:, 0], gray[:, 1], atol=1e-4) and torch.allclose(gray[:, 1], gray[:, 2], atol=1e-4)
    assert not torch.allclose(gray, rgb, atol=1e-2)


def test_uint8_to_rgb_takes_channels_last_only() -> None:
    # one image 3 pixels tall: channels last, not to be taken for N x 3 x H x W
    three_tall = torch.zeros(1, 3, 50, 3, dtype=torch.uint8)
    assert color.uint8_to_rgb(three_tall).shape == (1, 3, 3, 50)
    channels_first = torch.zeros(1, 3, 40, 50, dtype=torch.uint8)
    unbatched = torch.zeros(40, 50, 3, dtype=torch.uint8)
    floats = torch.zeros(1, 40, 50, 3)
    for bad in (channels_first, unbatched, floats):
        shape = ", ".join(map(str, bad.shape))
        with pytest.raises(ValueError, match=rf"N x H x W x 3 uint8 .*got shape \({shape}\) of {bad.dtype}"):
            color.uint8_to_rgb(bad)
