"""The one Lab conversion: batched RGB <-> Lab (kornia), gamut mapping, and the pix2pix L/ab normalisation.

Tensors are N x 3 x H x W, RGB in [0, 1] (sRGB, D65), L in [0, 100], a/b roughly [-110, 110].
Normalised: ``L/50 - 1`` in [-1, 1] and ``ab/110``, as in pix2pix's colorization mode.

A predicted colour may lie outside sRGB. ``gamut="chroma"`` (the default) shows it at the same L and
hue with the largest chroma sRGB can show; ``gamut="clip"`` clips each RGB channel, as the paper and
scikit-image do, which changes L (most at white, where no chroma can be shown: tinted backgrounds).
"""

from __future__ import annotations

from collections.abc import Callable

import kornia.color
import torch

from utils.core.parameters import GAMUTS

L_SCALE = 50.0
AB_SCALE = 110.0
# Bisection steps on the chroma factor: the chroma found is within 2**-12 of the largest shown (< 0.04 C*ab).
GAMUT_STEPS = 12
# Linear RGB: float32 Lab round trips of in-gamut colours leave [0, 1] by under 1e-6 (every 3rd uint8 level measured).
GAMUT_TOLERANCE = 1e-5
_WHITE_XYZ = (0.95047, 1.0, 1.08883)  # D65, as kornia's Lab
_XYZ_TO_LINEAR_RGB = (  # kornia.color.xyz_to_rgb's matrix
    (3.2404813432005266, -1.5371515162713185, -0.4985363261688878),
    (-0.9692549499965682, 1.8759900014898907, 0.0415559265582928),
    (0.0556466391351772, -0.2040413383665112, 1.0573110696453443),
)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    return kornia.color.rgb_to_lab(rgb)


def lab_to_rgb(lab: torch.Tensor, gamut: str = "chroma") -> torch.Tensor:
    """Lab (*, 3, H, W) -> displayable RGB in [0, 1]: the one conversion of predicted colours.

    Args:
        lab: L in [0, 100], a and b.
        gamut: ``"chroma"``: an out-of-sRGB colour keeps its L and hue, its chroma reduced until sRGB
            can show it (:func:`map_into_gamut`); ``"clip"``: each RGB channel clipped to [0, 1]
            (kornia's ``clip=True``, the paper's conversion). In-gamut colours come out the same either way.
    """
    if gamut not in GAMUTS:
        raise ValueError(f"parameter 'gamut' = {gamut!r}: must be one of {', '.join(GAMUTS)}")
    if gamut == "chroma":
        lab = map_into_gamut(lab)
    return kornia.color.lab_to_rgb(lab, clip=True)  # after the mapping, the clip only absorbs float error


def map_into_gamut(lab: torch.Tensor, steps: int = GAMUT_STEPS) -> torch.Tensor:
    """``lab`` with each out-of-sRGB pixel's ab scaled down to the largest chroma sRGB shows at its L and hue;
    in-gamut pixels unchanged (bit for bit). L = 100 comes out white and L = 0 black, whatever their ab."""
    scale = chroma_scale_in_gamut(lab, steps).to(lab.dtype).unsqueeze(-3)
    return torch.cat([lab[..., :1, :, :], lab[..., 1:, :, :] * scale], dim=-3)


def chroma_scale_in_gamut(lab: torch.Tensor, steps: int = GAMUT_STEPS) -> torch.Tensor:
    """Per pixel (*, H, W): 1 where the colour lies in sRGB, else the largest factor in [0, 1) (to within
    ``2**-steps``) by which its ab can be multiplied and stay inside (0 where even gray cannot: L out of range).

    Bisection, a fixed number of steps. Under ``torch.compile`` on every pixel (fixed shapes, no graph break:
    one fused kernel); eagerly on the pixels outside only (a few percent of a trained model's; at 15% outside,
    twice as fast: benchmarks/bench_gamut.py).
    """
    in_gamut = _gamut_test(lab)
    inside = in_gamut(1.0)
    if _compiling():
        return torch.where(inside, 1.0, _bisect(in_gamut, steps, inside.shape, inside.device))
    scale = inside.float()
    outside = ~inside
    pixels = lab.movedim(-3, -1)[outside].T.unsqueeze(-1)  # 3 x P x 1: a (3, H, W) image of the pixels outside
    scale[outside] = _bisect(_gamut_test(pixels), steps, pixels.shape[1:], pixels.device).flatten()
    return scale


def _compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3; requirements.txt allows 2.1
    return is_compiling() if is_compiling else torch._dynamo.is_compiling()


def _bisect(
    in_gamut: Callable[[torch.Tensor], torch.Tensor], steps: int, shape: torch.Size, device: torch.device
) -> torch.Tensor:
    """The largest chroma factor in [0, 1) that ``in_gamut`` accepts, to within ``2**-steps``, per pixel."""
    low, step = torch.zeros(shape, device=device), 0.5
    for _ in range(steps):
        candidate = low + step
        low = torch.where(in_gamut(candidate), candidate, low)
        step /= 2
    return low


def _gamut_test(lab: torch.Tensor) -> Callable[[torch.Tensor | float], torch.Tensor]:
    """For Lab (*, 3, H, W): a test of whether its colours, their ab multiplied by a factor (a number, or one
    per pixel), lie in sRGB. On linear RGB: sRGB's transfer curve maps [0, 1] onto itself, and skipping it
    halves the cost. The terms that do not depend on the factor are computed once."""
    lightness, a, b = lab.float().unbind(-3)
    fy = (lightness + 16.0) / 116.0
    y = _inverse_lab_f(fy) * _WHITE_XYZ[1]
    fx_per_scale, fz_per_scale = a / 500.0, b / -200.0
    y_terms = [row[1] * y for row in _XYZ_TO_LINEAR_RGB]

    def in_gamut(scale: torch.Tensor | float) -> torch.Tensor:
        x = _inverse_lab_f(fy + scale * fx_per_scale) * _WHITE_XYZ[0]
        z = _inverse_lab_f((fy + scale * fz_per_scale).clamp(min=0.0)) * _WHITE_XYZ[2]  # kornia clamps f(z) too
        inside = torch.ones_like(fy, dtype=torch.bool)
        for row, y_term in zip(_XYZ_TO_LINEAR_RGB, y_terms):
            channel = row[0] * x + y_term + row[2] * z
            inside &= (channel >= -GAMUT_TOLERANCE) & (channel <= 1.0 + GAMUT_TOLERANCE)
        return inside

    return in_gamut


def _inverse_lab_f(f: torch.Tensor) -> torch.Tensor:
    """CIE Lab's f^-1 (XYZ / white from f), with kornia's constants."""
    return torch.where(f > 0.2068966, f.pow(3), (f - 4.0 / 29.0) / 7.787)


def uint8_to_rgb(batch: torch.Tensor) -> torch.Tensor:
    """N x H x W x 3 uint8 (channels last: as decoded images and the shards hold them) -> N x 3 x H x W float in
    [0, 1]. The layout is declared, never guessed from the shape: a 3-pixel-tall image looks channels-first."""
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != torch.uint8:
        raise ValueError(
            f"uint8_to_rgb: expected an N x H x W x 3 uint8 batch (channels last), got shape {tuple(batch.shape)} "
            f"of {batch.dtype}"
        )
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


def rgb_to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W float in [0, 1] -> N x H x W x 3 uint8 (rounded), for saving and plotting."""
    return rgb.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)


def normalize_lab(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab -> (L/50 - 1, ab/110): the generator's input and target."""
    return lab[:, :1] / L_SCALE - 1.0, lab[:, 1:] / AB_SCALE


def denormalize_lab(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    return torch.cat([(l_norm + 1.0) * L_SCALE, ab_norm * AB_SCALE], dim=1)


def uint8_to_model_io(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 RGB batch (already on the training device) -> normalised (L, ab)."""
    return normalize_lab(rgb_to_lab(uint8_to_rgb(batch)))


def as_model_input(
    tensor: torch.Tensor,
    dtype: torch.dtype | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """``tensor`` converted once to the networks' dtype and layout, strides included.

    A one-channel N x 1 x H x W tensor counts as contiguous in both layouts, so ``.contiguous()``
    leaves its NCHW strides, and every ``torch.cat`` of it with a channels_last tensor (the
    generator's last skip connection, the discriminator's input) then falls back to NCHW.
    """
    out = torch.empty(tensor.shape, dtype=dtype or tensor.dtype, device=tensor.device, memory_format=memory_format)
    return out.copy_(tensor)


def colorized_rgb(l_norm: torch.Tensor, ab_norm: torch.Tensor, gamut: str = "chroma") -> torch.Tensor:
    """Normalised L and predicted ab -> displayable RGB in [0, 1] (``gamut``: see :func:`lab_to_rgb`)."""
    return lab_to_rgb(denormalize_lab(l_norm, ab_norm), gamut)
