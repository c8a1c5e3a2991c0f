"""What a generator predicts, and how a prediction is scored: shared by evaluation and training's validation."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from utils.imaging import color, metrics


def truth_and_inputs(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A uint8 N x H x W x 3 batch on the device -> (RGB in [0, 1], normalised L, true normalised ab)."""
    rgb_true = color.uint8_to_rgb(batch)
    l_norm, ab_true = color.normalize_lab(color.rgb_to_lab(rgb_true))
    return rgb_true, l_norm, ab_true


@torch.no_grad()
def predict_ab(
    generator: torch.nn.Module,
    l_norm: torch.Tensor,
    amp_dtype: torch.dtype | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """The generator's normalised ab (float32) for normalised float32 L: under autocast in ``amp_dtype``
    (as trained) when set, the input converted once to that dtype and ``memory_format``.
    Evaluation and training's validation both predict through here."""
    autocast = torch.autocast(l_norm.device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    with autocast:
        return generator(color.as_model_input(l_norm, amp_dtype, memory_format)).float()


@torch.no_grad()
def score_batch(
    rgb_true: torch.Tensor, l_norm: torch.Tensor, ab_pred: torch.Tensor, gamut: str = "chroma"
) -> dict[str, torch.Tensor]:
    """Every metric of :data:`metrics.METRICS` per image, on what is displayed: the prediction converted to RGB
    in [0, 1] as ``gamut`` says (:func:`color.lab_to_rgb`)."""
    rgb_pred = color.colorized_rgb(l_norm, ab_pred, gamut)
    lab_true, lab_pred = color.rgb_to_lab(rgb_true), color.rgb_to_lab(rgb_pred)
    colorful_pred, colorful_true = metrics.colorfulness(rgb_pred), metrics.colorfulness(rgb_true)
    return {
        "ciede2000": metrics.ciede2000(lab_true, lab_pred).mean(dim=(1, 2)),
        "ssim": metrics.ssim(rgb_pred, rgb_true, data_range=1.0),
        "ssim_ab": metrics.chroma_ssim(lab_pred, lab_true),
        "psnr": metrics.psnr(rgb_pred, rgb_true),
        "colorfulness_ratio": colorful_pred / colorful_true.clamp_min(1e-6),
        "chroma_ratio": metrics.mean_chroma(lab_pred) / metrics.mean_chroma(lab_true).clamp_min(1e-6),
        "colorfulness": colorful_pred,
        "colorfulness_truth": colorful_true,
    }


class BatchScorer:
    """:func:`score_batch`, optionally through ``torch.compile`` (one fused kernel per step: several
    times faster; the first batch pays the compilation). Batches are padded to one shape so it
    compiles once; if compiling fails (no C++ compiler, say) it says so and scores eagerly. ``gamut``: how
    predicted colours outside sRGB are shown, for scoring and for every picture drawn with this scorer."""

    def __init__(self, compiled: bool, batch_size: int, gamut: str = "chroma") -> None:
        self.batch_size = batch_size
        self.gamut = gamut
        self.compiled = torch.compile(score_batch, dynamic=False) if compiled else None

    def __call__(self, rgb_true: torch.Tensor, l_norm: torch.Tensor, ab_pred: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.compiled is None:
            return score_batch(rgb_true, l_norm, ab_pred, self.gamut)
        n, missing = len(rgb_true), self.batch_size - len(rgb_true)
        if missing > 0:
            rgb_true, l_norm, ab_pred = (
                torch.cat([t, t[-1:].expand(missing, *t.shape[1:])]) for t in (rgb_true, l_norm, ab_pred)
            )
        try:
            scores = self.compiled(rgb_true, l_norm, ab_pred, self.gamut)
        except Exception as err:  # noqa: BLE001 - any compiler failure: the eager path gives the same numbers
            print(f"compile_metrics: torch.compile failed ({type(err).__name__}: {str(err)[:200]}); scoring eagerly")
            self.compiled = None
            scores = score_batch(rgb_true, l_norm, ab_pred, self.gamut)
        return {k: v[:n] for k, v in scores.items()}
