"""Image-quality metrics as batched torch code on any device. Each metric's name, unit and direction (``METRICS``)
live in utils.imaging.metric_table, which the figures and the report read without torch; they are named here too.

CIEDE2000 follows Sharma, Wu & Dalal (2005) with kL = kC = kH = 1; SSIM follows Wang et al.
(2004): 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, population covariance,
the mean over the valid region, averaged over channels. Colorfulness is Hasler & Suesstrunk
(2003), the signed rg/yb version, on the 8-bit scale.
"""

from __future__ import annotations

import math

import torch

from utils.imaging.metric_table import GOALS, METRICS, Metric  # noqa: F401 - named here too: metrics.METRICS

AB_RANGE = 220.0  # a and b span about [-110, 110]: chroma SSIM's data range


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """Per-pixel CIEDE2000 colour difference.

    Args:
        lab1: N x 3 x H x W Lab (L in [0, 100]).
        lab2: same shape.

    Returns:
        N x H x W colour differences (a distance: 0 means identical, lower is better).
    """
    l1, a1, b1 = lab1.unbind(1)
    l2, a2, b2 = lab2.unbind(1)
    two_pi = 2 * math.pi

    # 1. a' from the mean chroma (the G term), then C' and h' in [0, 2 pi)
    c_mean = 0.5 * (torch.hypot(a1, b1) + torch.hypot(a2, b2))
    c7 = c_mean**7
    g = 0.5 * (1 - torch.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.remainder(torch.atan2(b1, a1p), two_pi)
    h2p = torch.remainder(torch.atan2(b2, a2p), two_pi)

    # 2. differences; hue difference wrapped to (-pi, pi], zero when either colour is achromatic
    dl = l2 - l1
    dc = c2p - c1p
    cc = c1p * c2p
    achromatic = cc == 0
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - two_pi, dh)
    dh = torch.where(dh < -math.pi, dh + two_pi, dh)
    dh = torch.where(achromatic, torch.zeros_like(dh), dh)
    dH = 2 * torch.sqrt(cc) * torch.sin(dh / 2)

    # 3. means; the mean hue goes the short way round, and is the plain sum when achromatic
    l_bar = 0.5 * (l1 + l2)
    c_bar = 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    wrap = (~achromatic) & ((h1p - h2p).abs() > math.pi)
    h_bar = torch.where(wrap & (h_sum < two_pi), h_sum + two_pi, h_sum)
    h_bar = torch.where(wrap & (h_sum >= two_pi), h_sum - two_pi, h_bar)
    h_bar = torch.where(achromatic, h_sum, 0.5 * h_bar)

    # 4. weighting functions T, S_L, S_C, S_H and the rotation term R_T
    t = (
        1
        - 0.17 * torch.cos(h_bar - math.radians(30))
        + 0.24 * torch.cos(2 * h_bar)
        + 0.32 * torch.cos(3 * h_bar + math.radians(6))
        - 0.20 * torch.cos(4 * h_bar - math.radians(63))
    )
    l50 = (l_bar - 50) ** 2
    s_l = 1 + 0.015 * l50 / torch.sqrt(20 + l50)
    s_c = 1 + 0.045 * c_bar
    s_h = 1 + 0.015 * c_bar * t
    c_bar7 = c_bar**7
    r_c = 2 * torch.sqrt(c_bar7 / (c_bar7 + 25.0**7))
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_bar) - 275) / 25) ** 2))
    r_t = -torch.sin(2 * d_theta) * r_c

    l_term, c_term, h_term = dl / s_l, dc / s_c, dH / s_h
    return torch.sqrt(torch.clamp(l_term**2 + c_term**2 + h_term**2 + r_t * c_term * h_term, min=0))


def gaussian_window(sigma: float = 1.5, radius: int = 5) -> list[float]:
    """The normalised 1-D Gaussian of SSIM (11 taps for sigma 1.5), as Python floats."""
    weights = [math.exp(-0.5 * (k / sigma) ** 2) for k in range(-radius, radius + 1)]
    return [w / sum(weights) for w in weights]


def blur_valid(x: torch.Tensor, window: list[float]) -> torch.Tensor:
    """Separable blur of the last two dimensions over the valid region only, as sums of shifted
    slices: faster than a grouped convolution on the CPU, and fused into one loop by torch.compile."""
    taps = len(window)
    h, w = x.shape[-2:]
    rows = sum(weight * x[..., :, k : w - taps + 1 + k] for k, weight in enumerate(window))
    return sum(weight * rows[..., k : h - taps + 1 + k, :] for k, weight in enumerate(window))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004), averaged over channels and the valid region.

    Args:
        x, y: N x C x H x W images, both scaled so that ``data_range`` spans their values.

    Returns:
        N similarities (1 means identical, higher is better).
    """
    window = gaussian_window()
    # moments of the mean-centred images: the same SSIM, without float32 cancellation in E[x^2] - E[x]^2
    mean_x, mean_y = x.mean(dim=(2, 3), keepdim=True), y.mean(dim=(2, 3), keepdim=True)
    xc, yc = x - mean_x, y - mean_y
    mu_xc, mu_yc = blur_valid(xc, window), blur_valid(yc, window)
    var_x = blur_valid(xc * xc, window) - mu_xc**2
    var_y = blur_valid(yc * yc, window) - mu_yc**2
    cov = blur_valid(xc * yc, window) - mu_xc * mu_yc
    mu_x, mu_y = mu_xc + mean_x, mu_yc + mean_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(1, 2, 3))


def chroma_ssim(lab_x: torch.Tensor, lab_y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of the a and b channels (N x 3 x H x W Lab), data range 220: colour structure.

    SSIM on RGB is dominated by lightness, which the model was given; a colourless output still
    scores high there, but not here.
    """
    return ssim(lab_x[:, 1:], lab_y[:, 1:], data_range=AB_RANGE)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB; identical images give 100 dB (the error is floored at 1e-10)."""
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return 10 * torch.log10(data_range**2 / mse)


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Per-image Hasler & Suesstrunk (2003) colorfulness of N x 3 x H x W RGB in [0, 1], on the
    8-bit scale: sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 + m_yb^2), rg = R - G, yb = (R + G)/2 - B.
    0 for gray; about 15 and up for colour."""
    r, g, b = (255.0 * rgb).unbind(1)
    rg, yb = r - g, 0.5 * (r + g) - b
    spread = torch.hypot(rg.std(dim=(1, 2), correction=0), yb.std(dim=(1, 2), correction=0))
    return spread + 0.3 * torch.hypot(rg.mean(dim=(1, 2)), yb.mean(dim=(1, 2)))


def mean_chroma(lab: torch.Tensor) -> torch.Tensor:
    """Per-image mean C*ab = sqrt(a^2 + b^2) of N x 3 x H x W Lab."""
    return torch.hypot(lab[:, 1], lab[:, 2]).mean(dim=(1, 2))
