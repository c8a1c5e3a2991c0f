"""The kit's torch metrics against scikit-image (an independent reference implementation)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.color
import skimage.data
import torch
from skimage.metrics import structural_similarity

from utils.imaging import color, metrics


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
    assert metrics.METRICS["colorfulness_ratio"].label.endswith("below 1 = washed out)")


@pytest.mark.parametrize("pair", range(5))
def test_ssim_within_1e5_of_skimage_in_float32_and_float64(pair: int) -> None:
    truth, pred = _real_pairs()[pair]
    reference = structural_similarity(
        pred, truth, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1
    )
    assert abs(metrics.ssim(_nchw(pred), _nchw(truth)).item() - reference) < 1e-10
    assert abs(metrics.ssim(_nchw(pred).float(), _nchw(truth).float()).item() - reference) < 1e-5


@pytest.mark.parametrize("pair", range(5))
def test_chroma_ssim_is_ssim_of_the_ab_channels(pair: int) -> None:
    truth, pred = _real_pairs()[pair]
    lab_t, lab_p = skimage.color.rgb2lab(truth), skimage.color.rgb2lab(pred)
    reference = structural_similarity(
        lab_p[..., 1:], lab_t[..., 1:], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=220.0, channel_axis=-1,
    )  # fmt: skip
    assert abs(metrics.chroma_ssim(_nchw(lab_p), _nchw(lab_t)).item() - reference) < 1e-10


def test_chroma_ssim_sees_what_rgb_ssim_misses() -> None:
    truth = _real_pairs()[0][0]
    gray = _real_pairs()[0][1]
    rgb_ssim = metrics.ssim(_nchw(gray), _nchw(truth)).item()
    lab_t, lab_g = skimage.color.rgb2lab(truth), skimage.color.rgb2lab(gray)
    chroma = metrics.chroma_ssim(_nchw(lab_g), _nchw(lab_t)).item()
    assert rgb_ssim > 0.9 and chroma < 0.5 * rgb_ssim  # seen: 0.91 on RGB, 0.29 on ab
    assert metrics.chroma_ssim(_nchw(lab_t), _nchw(lab_t)).item() == pytest.approx(1.0)


@pytest.mark.parametrize("pair", range(5))
def test_psnr_matches_skimage(pair: int) -> None:
    from skimage.metrics import peak_signal_noise_ratio

    truth, pred = _real_pairs()[pair]
    reference = peak_signal_noise_ratio(truth, pred, data_range=1.0)
    assert abs(metrics.psnr(_nchw(pred), _nchw(truth)).item() - reference) < 1e-8
    assert metrics.psnr(_nchw(truth), _nchw(truth)).item() == pytest.approx(100.0)


def test_colorfulness_is_hasler_suesstrunk_signed_on_the_8_bit_scale() -> None:
    rgb8 = skimage.data.astronaut()[::4, ::4].astype(np.float64)
    rg = rgb8[..., 0] - rgb8[..., 1]
    yb = 0.5 * (rgb8[..., 0] + rgb8[..., 1]) - rgb8[..., 2]
    expected = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    assert metrics.colorfulness(_nchw(rgb8 / 255.0)).item() == pytest.approx(expected, rel=1e-12)
    gray = np.repeat(rgb8.mean(axis=2, keepdims=True), 3, axis=2)
    assert metrics.colorfulness(_nchw(gray / 255.0)).item() == pytest.approx(0.0, abs=1e-9)
    from utils.imaging.images import colorfulness  # the prepare filter uses the same definition

    assert colorfulness(skimage.data.astronaut()[::4, ::4]) == pytest.approx(expected, rel=1e-12)


def test_mean_chroma_and_its_ratio() -> None:
    lab = skimage.color.rgb2lab(_real_pairs()[0][0])
    expected = np.hypot(lab[..., 1], lab[..., 2]).mean()
    assert metrics.mean_chroma(_nchw(lab)).item() == pytest.approx(expected, rel=1e-12)
    half = lab.copy()
    half[..., 1:] *= 0.5
    assert (metrics.mean_chroma(_nchw(half)) / metrics.mean_chroma(_nchw(lab))).item() == pytest.approx(0.5)


def test_the_registry_gives_each_metric_a_direction_and_a_loss() -> None:
    assert set(metrics.METRICS) >= {"ciede2000", "ssim", "ssim_ab", "psnr", "colorfulness_ratio", "chroma_ratio"}
    for info in metrics.METRICS.values():
        assert info.goal in metrics.GOALS and "(" in info.label and info.about
    assert metrics.METRICS["psnr"].unit == "dB"
    assert metrics.METRICS["ciede2000"].loss(3.0) == 3.0 and metrics.METRICS["ssim"].loss(0.9) == -0.9
    assert metrics.METRICS["colorfulness_ratio"].loss(0.6) == pytest.approx(0.4)
    assert metrics.METRICS["colorfulness_ratio"].loss(1.3) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="descriptive"):
        metrics.METRICS["colorfulness"].loss(1.0)
