"""The one Lab conversion: batched RGB <-> Lab (kornia) and the pix2pix L/ab normalisation.

Tensors are N x 3 x H x W, RGB in [0, 1] (sRGB, D65), L in [0, 100], a/b roughly [-110, 110].
Normalised: ``L/50 - 1`` in [-1, 1] and ``ab/110``, as in pix2pix's colorization mode.
"""

from __future__ import annotations

import kornia.color
import torch

L_SCALE = 50.0
AB_SCALE = 110.0


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    return kornia.color.rgb_to_lab(rgb)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab to RGB clipped to [0, 1]: what an out-of-gamut prediction looks like on screen."""
    return kornia.color.lab_to_rgb(lab, clip=True)


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


def colorized_rgb(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """Normalised L and predicted ab -> displayable RGB in [0, 1]."""
    return lab_to_rgb(denormalize_lab(l_norm, ab_norm))
