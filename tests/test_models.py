from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import run_python
from utils.nets.models import GANLoss, PatchDiscriminator, UNetGenerator


@pytest.fixture(scope="module")
def generator() -> UNetGenerator:
    torch.manual_seed(0)
    return UNetGenerator(pretrained=False).eval()


@pytest.mark.parametrize("size", [32, 64, 96])
def test_generator_maps_l_to_ab_at_full_resolution(generator: UNetGenerator, size: int) -> None:
    with torch.no_grad():
        ab = generator(torch.rand(2, 1, size, size) * 2 - 1)
    assert ab.shape == (2, 2, size, size)
    assert torch.isfinite(ab).all() and ab.abs().max() < 1  # tanh


def test_decoder_is_sized_from_feature_info(generator: UNetGenerator) -> None:
    info = generator.encoder.feature_info
    assert len(generator.decoder) == len(info.channels())
    assert generator.output_stride == info.reduction()[-1] == 32
    first_conv = generator.decoder[0].convs[0][0]
    assert first_conv.in_channels == info.channels()[-1] + info.channels()[-2]
    assert generator.encoder.conv1.in_channels == 1  # in_chans=1: the L channel


@pytest.mark.parametrize(("size", "patches"), [(64, 6), (128, 14)])
def test_patchgan_output_shape(size: int, patches: int) -> None:
    discriminator = PatchDiscriminator()
    logits = discriminator(torch.randn(3, 1, size, size), torch.randn(3, 2, size, size))
    assert logits.shape == (3, 1, patches, patches)
    strided = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 3
    assert not isinstance(discriminator.model[1], torch.nn.BatchNorm2d)  # no norm on the first block


def test_patchgan_receptive_field_is_70() -> None:
    discriminator = PatchDiscriminator().eval()
    x = torch.zeros(1, 3, 128, 128, requires_grad=True)
    logits = discriminator(x[:, :1], x[:, 1:])
    logits[0, 0, 7, 7].backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)))
    assert rows.max() - rows.min() + 1 == 70


def test_gan_loss_targets() -> None:
    loss = GANLoss()
    logits = torch.tensor([[10.0, -10.0]])
    assert loss(torch.full((1, 2), 20.0), True) < 1e-6
    assert loss(torch.full((1, 2), -20.0), False) < 1e-6
    assert loss(logits, True) > 1


@pytest.mark.slow
def test_pretrained_without_network_stops_with_instructions(tmp_path: Path) -> None:
    """No silent fallback: with the hub unreachable, pretrained=True fails and says how to switch it off."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "TORCH_HOME": str(tmp_path)}
    code = (
        "from utils.nets.models import UNetGenerator, PretrainedWeightsError\n"
        "try:\n    UNetGenerator(pretrained=True)\n"
        "except PretrainedWeightsError as err:\n    print('REFUSED', err)\n"
    )
    out = run_python("-c", code, env=env)
    assert "REFUSED" in out.stdout, out.stderr
    assert "pretrained=False" in out.stdout
