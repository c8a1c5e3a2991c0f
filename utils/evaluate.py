"""The model x test-domain matrix: every trained model and the gray baseline on every test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from utils import color, metrics
from utils.checkpoints import load_checkpoint, model_dir
from utils.config import DOMAINS, RunParams, select_device, write_csv_atomic
from utils.data import load_shard
from utils.models import UNetGenerator

GRAY = "gray"  # baseline: ab = 0, the grayscale input shown as colour


def load_generator(path: str | Path, device: torch.device) -> tuple[UNetGenerator, dict]:
    """A trained generator (eval mode) from ``best.pt`` or ``checkpoint_last.pt``, and its record."""
    ckpt = load_checkpoint(path, device)
    generator = UNetGenerator(pretrained=False)
    generator.load_state_dict(ckpt["generator"])
    return generator.to(device).eval(), ckpt


@torch.no_grad()
def score_batch(rgb_true: torch.Tensor, l_norm: torch.Tensor, ab_pred: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image metrics of a colorization, computed on what is displayed (RGB clipped to [0, 1])."""
    rgb_pred = color.colorized_rgb(l_norm, ab_pred)
    lab_true, lab_pred = color.rgb_to_lab(rgb_true), color.rgb_to_lab(rgb_pred)
    return {
        "ciede2000": metrics.ciede2000(lab_true, lab_pred).mean(dim=(1, 2)),
        "ssim": metrics.ssim(rgb_pred, rgb_true, data_range=1.0),
    }


@torch.no_grad()
def evaluate_models(params: RunParams, run_dir: str | Path, show_progress: bool = True) -> pd.DataFrame:
    """Score the gray baseline and each model in ``params.models`` on every domain's test split.

    Writes ``eval/per_image.csv``, ``eval/summary.csv`` and ``eval/examples/<model>_<domain>.npy``
    (the first ``n_examples`` outputs, uint8 RGB; ``gray_*`` is the input, ``truth_*`` the original).

    Returns:
        The per-image table: model, test_domain, image_index and one column per metric.
    """
    run_dir = Path(run_dir)
    examples_dir = run_dir / "eval" / "examples"
    examples_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(params)
    generators = {m: load_generator(model_dir(run_dir, m) / "best.pt", device)[0] for m in params.models}
    rows = []
    for domain in DOMAINS:
        shard = load_shard(run_dir, domain, "test")
        examples: dict[str, list[np.ndarray]] = {}
        starts = range(0, len(shard), params.eval_batch_size)
        for start in tqdm(starts, desc=f"evaluate on {domain}", disable=not show_progress):
            batch = torch.from_numpy(np.array(shard[start : start + params.eval_batch_size])).to(device)
            rgb_true = color.uint8_to_rgb(batch)
            l_norm, _ = color.normalize_lab(color.rgb_to_lab(rgb_true))
            predictions = {GRAY: torch.zeros_like(l_norm).repeat(1, 2, 1, 1)}
            predictions |= {m: g(l_norm).float() for m, g in generators.items()}
            index = np.arange(start, start + len(batch))
            for model, ab in predictions.items():
                scores = {k: v.cpu().numpy() for k, v in score_batch(rgb_true, l_norm, ab).items()}
                rows.append(pd.DataFrame({"model": model, "test_domain": domain, "image_index": index, **scores}))
                if start == 0:
                    shown = color.rgb_to_uint8(color.colorized_rgb(l_norm, ab))
                    examples[model] = shown[: params.n_examples].cpu().numpy()
            if start == 0:
                examples["truth"] = batch[: params.n_examples].cpu().numpy()
        for name, images in examples.items():
            np.save(examples_dir / f"{name}_{domain}.npy", images)
    per_image = pd.concat(rows, ignore_index=True)
    summary = summarize(per_image)
    write_csv_atomic(run_dir / "eval" / "per_image.csv", per_image)
    write_csv_atomic(run_dir / "eval" / "summary.csv", summary)
    return per_image


def summarize(per_image: pd.DataFrame) -> pd.DataFrame:
    """Long table: model, test_domain, metric, mean, std, n."""
    long = per_image.melt(
        id_vars=["model", "test_domain", "image_index"], value_vars=list(metrics.METRICS), var_name="metric"
    )
    summary = long.groupby(["model", "test_domain", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
    return summary.rename(columns={"count": "n"}).reset_index()
