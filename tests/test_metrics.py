"""The kit's torch metrics against scikit-image (an independent reference implementation)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.color
import skimage.data
import torch
from skimage.metrics import structural_similarity

from utils import color, metrics


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def _real_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """(truth, prediction) RGB float pairs: real photos, their gray version, saturated colours."""
    truth = skimage.data.astronaut()[::4, ::4] / 255.0
    coffee = skimage.data.coffee()[:128, :128] / 255.0
    gray = np.repeat(skimage.color.rgb2gray(truth)[..., None], 3, axis=2)
    saturated = truth.copy()
    saturated[:32, :32] = [1.0, 0.0, 0.0]
    saturated[32:64, :32] = [0.0, 0.0, 1.0]
    saturated[:32, 32:64] = [0.0, 1.0, 0.0]
    rng = np.random.default_rng(0)
    noisy = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1)
    return [(truth, gray), (truth, saturated), (truth, coffee), (gray, saturated), (truth, noisy)]


@pytest.mark.parametrize("pair", range(5))
def test_ciede2000_matches_skimage_on_real_images(pair: int) -> None:
    truth, pred = _real_pairs()[pair]
    lab_t, lab_p = skimage.color.rgb2lab(truth), skimage.color.rgb2lab(pred)
    reference = skimage.color.deltaE_ciede2000(lab_t, lab_p)
    ours32 = metrics.ciede2000(_nchw(lab_t).float(), _nchw(lab_p).float())[0].numpy()
    assert np.abs(ours32 - reference).mean() < 1e-3
    ours64 = metrics.ciede2000(_nchw(lab_t), _nchw(lab_p))[0].numpy()
    assert np.abs(ours64 - reference).max() < 1e-6


def test_ciede2000_edge_cases_match_skimage() -> None:
    pairs = [
        ([50, 0, 0], [50, 0, 0]),  # identical achromatic
        ([50, 0, 0], [60, 0, 0]),  # achromatic, lightness only
        ([50, 0, 0], [50, 20, -20]),  # one achromatic
        ([50, 20, 0], [50, -20, 0]),  # opposite hues
        ([50, 10, -0.5], [50, 10, 0.5]),  # hues either side of 0/360 degrees
        ([50, -10, -0.1], [50, -10, 0.1]),  # either side of 180 degrees
        ([0.5, 3, 2], [1, -2, 4]),  # L near 0
        ([99.9, 1, -1], [100, -1, 1]),  # L near 100
        ([50, 2.6772, -79.7751], [50, 0, -82.7485]),  # Sharma et al. (2005) Table 1, pair 1: 2.0425
        ([60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387]),  # pair 7: 1.2644
    ]
    lab1 = np.array([p[0] for p in pairs], dtype=np.float64)
    lab2 = np.array([p[1] for p in pairs], dtype=np.float64)
    ours = metrics.ciede2000(_nchw(lab1[:, None]), _nchw(lab2[:, None]))[0, :, 0].numpy()
    reference = skimage.color.deltaE_ciede2000(lab1, lab2)
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    np.testing.assert_allclose(ours[-2:], [2.0425, 1.2644], atol=1e-4)


def test_ciede2000_random_lab_matches_skimage() -> None:
    rng = np.random.default_rng(1)
    lab = np.stack(
        [rng.uniform(0, 100, (2, 4000)), rng.uniform(-110, 110, (2, 4000)), rng.uniform(-110, 110, (2, 4000))], -1
    )
    ours = metrics.ciede2000(_nchw(lab[0][:, None]), _nchw(lab[1][:, None]))[0, :, 0].numpy()
    np.testing.assert_allclose(ours, skimage.color.deltaE_ciede2000(lab[0], lab[1]), atol=1e-6)


@pytest.mark.parametrize("pair", range(5))
def test_ssim_matches_skimage_wang_settings(pair: int) -> None:
    truth, pred = _real_pairs()[pair]
    reference = structural_similarity(
        pred, truth, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1
    )
    ours = metrics.ssim(_nchw(pred).float(), _nchw(truth).float(), data_range=1.0).item()
    assert abs(ours - reference) < 1e-4


def test_ssim_batched_and_identity() -> None:
    pairs = _real_pairs()
    x = torch.cat([_nchw(p) for _, p in pairs[:3]])
    y = torch.cat([_nchw(t) for t, _ in pairs[:3]])
    batched = metrics.ssim(x, y)
    single = torch.stack([metrics.ssim(x[i : i + 1], y[i : i + 1])[0] for i in range(3)])
    assert torch.allclose(batched, single)
    assert torch.allclose(metrics.ssim(y, y), torch.ones(3, dtype=y.dtype))


def test_gray_is_worse_than_truth_on_colour_metrics() -> None:
    truth = torch.from_numpy(skimage.data.astronaut()[::4, ::4])[None]
    rgb = color.uint8_to_rgb(truth)
    lab = color.rgb_to_lab(rgb)
    gray = color.colorized_rgb(color.normalize_lab(lab)[0], torch.zeros_like(lab[:, 1:]))
    assert metrics.ciede2000(lab, color.rgb_to_lab(gray)).mean() > 5
    assert metrics.ciede2000(lab, lab).abs().max() == 0


def test_every_metric_states_its_direction() -> None:
    assert metrics.METRICS["ciede2000"].label == "CIEDE2000 (lower is better)"
    assert metrics.METRICS["ssim"].label == "SSIM (higher is better)"
