"""The model x test-domain matrix with two baselines, bootstrap intervals and paired comparisons.

Baselines: ``gray`` (ab = 0, the grayscale input shown as colour: a model that does not beat it
has learned nothing) and ``truth`` (the ground truth through the same Lab round trip: checks the
pipeline, CIEDE2000 near 0 and SSIM near 1).

With several training seeds (``seeds``), every seed's models are scored. The summary and the paired
comparisons use each image's score averaged over the seeds (the expected score of one training run,
with intervals over the test images); ``summary_by_seed.csv`` holds each seed's own means, whose
spread is the run-to-run variation.
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from utils import color, metrics
from utils.checkpoints import load_checkpoint
from utils.config import (
    DOMAINS,
    RunParams,
    amp_settings,
    model_dir,
    select_device,
    trained_models,
    write_csv_atomic,
)
from utils.data import load_shard

if TYPE_CHECKING:
    from utils.models import UNetGenerator

GRAY = "gray"
TRUTH = "truth"
BASELINES = (GRAY, TRUTH)
BASELINE_SEED = -1  # the baselines' seed in per_image.csv: nothing was trained
ALPHA = 0.05
SUMMARY_COLUMNS = ["model", "test_domain", "metric", "mean", "ci_low", "ci_high", "std", "n"]
COMPARISON_COLUMNS = [
    "test_domain", "metric", "model_a", "model_b", "mean_a", "mean_b", "loss_diff", "ci_low", "ci_high",
    "p_wilcoxon", "p_holm", "better", "significant",
]  # fmt: skip


def load_generator(path: str | Path, device: torch.device) -> tuple[UNetGenerator, dict]:
    """A trained generator (eval mode) from ``best.pt`` or ``checkpoint_last.pt``, and its record."""
    from utils.models import UNetGenerator  # here: timm is slow to import, and the notebooks without a model skip it

    ckpt = load_checkpoint(path)
    generator = UNetGenerator(pretrained=False)
    generator.load_state_dict(ckpt["generator"])
    return generator.to(device).eval(), ckpt


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


@torch.no_grad()
def evaluate_models(params: RunParams, run_dir: str | Path, show_progress: bool = True) -> pd.DataFrame:
    """Score both baselines and each model in ``params.models`` on every domain's test split.

    Every training seed's copy of each model is scored. Writes ``eval/per_image.csv`` (a row per
    model, seed, test domain and image), ``eval/summary.csv`` (means with bootstrap intervals) and
    ``eval/comparisons.csv`` (paired tests), both on the scores averaged over the seeds,
    ``eval/summary_by_seed.csv`` (each seed's means) and ``eval/examples/<model>_<domain>.npy`` (the
    first ``n_examples`` outputs of the first seed's model, uint8 RGB; ``gray_*`` is the input,
    ``truth_*`` the original).

    Returns:
        The per-image table: model, seed, test_domain, image_index and one column per metric.
    """
    run_dir = Path(run_dir)
    examples_dir = run_dir / "eval" / "examples"
    examples_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(params)
    amp_dtype = amp_settings(device, params.precision)[0]
    memory_format = torch.channels_last if params.channels_last else torch.contiguous_format
    first_seed = params.seed
    generators = {
        (m, s): load_generator(model_dir(run_dir, m, s) / "best.pt", device)[0] for m, s in trained_models(params)
    }
    for generator in generators.values():
        generator.to(memory_format=memory_format)
    score = BatchScorer(params.compile_metrics, params.eval_batch_size, params.gamut)
    rows = []
    for domain in DOMAINS:
        shard = load_shard(run_dir, domain, "test")
        examples: dict[str, np.ndarray] = {}
        starts = range(0, len(shard), params.eval_batch_size)
        for start in tqdm(starts, desc=f"evaluate on {domain}", disable=not show_progress):
            batch = torch.from_numpy(np.array(shard[start : start + params.eval_batch_size])).to(device)
            rgb_true, l_norm, ab_true = truth_and_inputs(batch)
            predictions = {(GRAY, BASELINE_SEED): torch.zeros_like(ab_true), (TRUTH, BASELINE_SEED): ab_true}
            predictions |= {key: predict_ab(g, l_norm, amp_dtype, memory_format) for key, g in generators.items()}
            index = np.arange(start, start + len(batch))
            for (model, seed), ab in predictions.items():
                scores = {k: v.cpu().numpy() for k, v in score(rgb_true, l_norm, ab).items()}
                rows.append(pd.DataFrame({"model": model, "seed": seed, "test_domain": domain, "image_index": index,
                                          **scores}))  # fmt: skip
                if start == 0 and model != TRUTH and seed in (first_seed, BASELINE_SEED):
                    shown = color.rgb_to_uint8(color.colorized_rgb(l_norm, ab, params.gamut))
                    examples[model] = shown[: params.n_examples].cpu().numpy()
            if start == 0:
                examples[TRUTH] = batch[: params.n_examples].cpu().numpy()
        for name, images in examples.items():
            np.save(examples_dir / f"{name}_{domain}.npy", images)
    per_image = pd.concat(rows, ignore_index=True)
    averaged = seed_averaged(per_image)
    summary = summarize(averaged, params.n_bootstrap, params.seed)
    comparisons = compare_models(averaged, params.n_bootstrap, params.seed)
    write_csv_atomic(run_dir / "eval" / "per_image.csv", per_image)
    write_csv_atomic(run_dir / "eval" / "summary.csv", summary)
    write_csv_atomic(run_dir / "eval" / "comparisons.csv", comparisons)
    write_csv_atomic(
        run_dir / "eval" / "summary_by_seed.csv", summarize_by_seed(per_image, params.n_bootstrap, params.seed)
    )
    claims = assess_run_claims(per_image, averaged, summary, comparisons, params)
    write_csv_atomic(run_dir / "eval" / "claims.csv", claims)
    return per_image


def assess_run_claims(
    per_image: pd.DataFrame,
    averaged: pd.DataFrame,
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    params: RunParams,
) -> pd.DataFrame:
    """The paper's claims checked on this run (utils.claims): on the seed-averaged scores (``averaged``, with its
    ``summary`` and ``comparisons``), and with several training seeds, seed by seed (one seed is the average)."""
    from utils.claims import assess_claims  # it builds on this module

    seeds = training_seeds_in(per_image)
    per_seed = {s: one_seed(per_image, s) for s in seeds} if len(seeds) > 1 else None
    return assess_claims(averaged, per_seed, params.n_bootstrap, params.seed, comparisons=comparisons, summary=summary)


# --- seeds -------------------------------------------------------------------------------------


def training_seeds_in(per_image: pd.DataFrame) -> list[int]:
    """The training seeds of a per-image table, in order (the baselines' aside)."""
    return sorted(int(s) for s in per_image["seed"].unique() if s != BASELINE_SEED)


def seed_averaged(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per model, test domain and image: each metric averaged over the model's training seeds
    (the baselines have one). With one seed, the table itself without its seed column."""
    keys = ["model", "test_domain", "image_index"]
    return per_image.groupby(keys, sort=False)[list(metrics.METRICS)].mean().reset_index()


def one_seed(per_image: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The models trained with ``seed``, and the baselines, as a per-image table without its seed column."""
    return per_image[per_image["seed"].isin([seed, BASELINE_SEED])].drop(columns="seed").reset_index(drop=True)


def summarize_by_seed(per_image: pd.DataFrame, n_bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """:func:`summarize` for each training seed's models (the baselines aside), with a ``seed`` column."""
    models = per_image[per_image["seed"] != BASELINE_SEED]
    parts = [
        summarize(group.drop(columns="seed"), n_bootstrap, seed).assign(seed=int(training_seed))
        for training_seed, group in models.groupby("seed", sort=True)
    ]
    return pd.concat(parts, ignore_index=True)[["seed", *SUMMARY_COLUMNS]]


# --- statistics ---------------------------------------------------------------------------------


def bootstrap_means(values: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_bootstrap`` resamples (with replacement) of ``values``."""
    picks = rng.integers(0, len(values), size=(n_bootstrap, len(values)))
    return values[picks].mean(axis=1)


def bootstrap_ci(values: np.ndarray, n_bootstrap: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean (seeded)."""
    means = bootstrap_means(np.asarray(values, dtype=np.float64), n_bootstrap, np.random.default_rng(seed))
    low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(low), float(high)


def summarize(per_image: pd.DataFrame, n_bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Long table: model, test_domain, metric, mean, ci_low, ci_high (bootstrap 95%), std, n."""
    rows = []
    for (model, domain), group in per_image.groupby(["model", "test_domain"], sort=False):
        for metric in metrics.METRICS:
            values = group[metric].to_numpy(dtype=np.float64)
            low, high = bootstrap_ci(values, n_bootstrap, seed)
            std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            rows.append([model, domain, metric, float(values.mean()), low, high, std, len(values)])
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    order = np.argsort(p_values)
    adjusted, running = np.empty(len(p_values)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


def paired_comparison(
    loss_a: np.ndarray, loss_b: np.ndarray, n_bootstrap: int, seed: int
) -> tuple[float, float, float, float]:
    """(mean of loss_a - loss_b, its bootstrap 95% interval, Wilcoxon signed-rank p) on the same images."""
    from scipy.stats import wilcoxon  # here: scipy is slow to import, and training never compares

    diff = np.asarray(loss_a, dtype=np.float64) - np.asarray(loss_b, dtype=np.float64)
    low, high = bootstrap_ci(diff, n_bootstrap, seed)
    p = 1.0 if np.all(diff == 0) else float(wilcoxon(diff).pvalue)
    return float(diff.mean()), low, high, p


def compare_models(per_image: pd.DataFrame, n_bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every pair of models (the gray baseline included) on each test domain and ranked metric.

    ``loss_diff`` is the mean per-image difference of the metric's loss (the value when lower is
    better, its negative when higher is better, its distance from 1 for ratios) of ``model_a``
    minus ``model_b``: negative means ``model_a`` is better. ``significant``: Wilcoxon p, Holm-
    adjusted within each (test domain, metric), below 0.05 and the interval excluding 0.
    """
    rows = []
    candidates = [m for m in per_image["model"].unique() if m != TRUTH]
    for domain in per_image["test_domain"].unique():
        in_domain = per_image[per_image["test_domain"] == domain]
        by_model = {m: g.sort_values("image_index") for m, g in in_domain.groupby("model")}
        for metric, info in metrics.METRICS.items():
            if not info.ranked:
                continue
            family = []
            for a, b in itertools.combinations(candidates, 2):
                va, vb = by_model[a][metric].to_numpy(), by_model[b][metric].to_numpy()
                diff, low, high, p = paired_comparison(info.loss(va), info.loss(vb), n_bootstrap, seed)
                family.append([domain, metric, a, b, va.mean(), vb.mean(), diff, low, high, p])
            for row, p_holm in zip(family, holm([r[-1] for r in family])):
                better = row[2] if row[6] < 0 else row[3]
                significant = p_holm < ALPHA and (row[7] > 0 or row[8] < 0)
                rows.append([*row, p_holm, better, significant])
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
