"""Image-quality metrics as batched torch code on any device, each with its direction.

CIEDE2000 follows Sharma, Wu & Dalal (2005) with kL = kC = kH = 1; SSIM follows Wang et al.
(2004): 11 x 11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, population covariance,
the mean over the valid region, averaged over channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    unit: str = ""

    @property
    def label(self) -> str:
        """The name as every table and axis shows it: direction included."""
        direction = "higher is better" if self.higher_is_better else "lower is better"
        return f"{self.name} ({direction})"


METRICS: dict[str, Metric] = {
    "ciede2000": Metric("CIEDE2000", higher_is_better=False, unit="Delta E00"),
    "ssim": Metric("SSIM", higher_is_better=True),
}


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


def gaussian_window(sigma: float = 1.5, radius: int = 5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return (w / w.sum()).to(dtype)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004), averaged over channels and the valid region.

    Args:
        x, y: N x C x H x W images, both scaled so that ``data_range`` spans their values.

    Returns:
        N similarities (1 means identical, higher is better).
    """
    channels = x.shape[1]
    w = gaussian_window(dtype=x.dtype).to(x.device)
    kernel_h = w.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    kernel_w = w.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)

    def blur(img: torch.Tensor) -> torch.Tensor:  # separable Gaussian, valid region only
        return F.conv2d(F.conv2d(img, kernel_h, groups=channels), kernel_w, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(1, 2, 3))
