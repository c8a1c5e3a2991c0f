"""The two networks: a UNet generator on timm's ResNet34 and the 70x70 PatchGAN discriminator."""

from __future__ import annotations

import timm
import torch
from torch import nn


class PretrainedWeightsError(RuntimeError):
    """ImageNet weights were asked for (``pretrained=True``) and could not be fetched."""


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix initialisation: conv weights N(0, gain), BatchNorm weights N(1, gain), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UpBlock(nn.Module):
    """Upsample x2, concatenate the skip connection, two 3x3 conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels, 2, stride=2)
        self.convs = nn.Sequential(
            conv_bn_relu(in_channels + skip_channels, out_channels),
            conv_bn_relu(out_channels, out_channels),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat([self.up(x), skip], dim=1))


def create_encoder(pretrained: bool) -> nn.Module:
    """timm's ResNet34 as a one-channel (L) feature extractor at strides 2, 4, 8, 16, 32."""
    try:
        return timm.create_model("resnet34", pretrained=pretrained, features_only=True, in_chans=1)
    except Exception as err:
        if not pretrained:
            raise
        raise PretrainedWeightsError(
            "pretrained=True: could not fetch the ImageNet weights of resnet34 through timm "
            f"({type(err).__name__}: {err}). This needs internet access (on Kaggle: enable "
            "Internet in the notebook settings). To train from scratch instead, set "
            "pretrained=False (pipeline: -p pretrained=False)."
        ) from err


class UNetGenerator(nn.Module):
    """Normalised L (N x 1 x H x W) -> normalised ab (N x 2 x H x W) through tanh.

    The decoder is sized from the encoder's ``feature_info``: one UpBlock per encoder stage,
    from stride 32 up to stride 1, where the input L itself is the last skip connection.
    """

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        self.encoder = create_encoder(pretrained)
        channels = self.encoder.feature_info.channels()
        reductions = self.encoder.feature_info.reduction()
        if reductions[0] != 2 or any(b != 2 * a for a, b in zip(reductions, reductions[1:])):
            raise ValueError(f"encoder reductions {reductions}: expected 2, 4, 8, ...")
        skip_channels = [1, *channels[:-1]]  # input L at stride 1, then stages at 2, 4, 8, 16
        out_channels = [max(32, c) for c in skip_channels]
        blocks = []
        in_channels = channels[-1]
        for skip, out in zip(reversed(skip_channels), reversed(out_channels)):
            blocks.append(UpBlock(in_channels, skip, out))
            in_channels = out
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(in_channels, 2, 1)
        init_weights(self.decoder)
        init_weights(self.head)
        self.output_stride = reductions[-1]

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        features = self.encoder(l_norm)
        skips = [l_norm, *features[:-1]]
        x = features[-1]
        for block, skip in zip(self.decoder, reversed(skips)):
            x = block(x, skip)
        return torch.tanh(self.head(x))


class PatchDiscriminator(nn.Module):
    """The pix2pix 70x70 PatchGAN on L concatenated with ab: one logit per overlapping patch.

    4x4 convs; three stride-2 downsamplings; no norm on the first block; BatchNorm and
    LeakyReLU(0.2) elsewhere; channels capped at 8 x ``base_channels``; no final sigmoid.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(base_channels * prev, base_channels * mult, 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(base_channels * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(base_channels * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([l_norm, ab_norm], dim=1))


class GANLoss(nn.Module):
    """BCE-with-logits against a real (1) or fake (0) target of the prediction's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("real_label", torch.tensor(1.0))
        self.register_buffer("fake_label", torch.tensor(0.0))
        self.loss = nn.BCEWithLogitsLoss()

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        label = self.real_label if target_is_real else self.fake_label
        return self.loss(logits, label.expand_as(logits))
