"""The model x test-domain matrix with two baselines, intervals and paired comparisons over test groups.

Baselines: ``gray`` (ab = 0, the grayscale input shown as colour: a model that does not beat it
has learned nothing) and ``truth`` (the ground truth through the same Lab round trip: checks the
pipeline, CIEDE2000 near 0 and SSIM near 1).

Every image carries its test group (``group``, from data/manifest.csv: a film, a show, a photograph, a
cluster of near-duplicate frames): the statistics (utils.core.statistics) resample groups and test over
groups, never over single images.

With several training seeds (``seeds``), every seed's models are scored. The summary and the paired
comparisons use each image's score averaged over the seeds (the expected score of one training run,
with intervals over the test groups); ``summary_by_seed.csv`` holds each seed's own means, whose
spread is the run-to-run variation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from utils.core import statistics
from utils.core.config import model_dir, trained_models
from utils.core.parameters import RunParams
from utils.core.run_dir import atomic_write, write_csv_atomic, writes_run_dir
from utils.core.statistics import BASELINE_SEED, GRAY, TRUTH
from utils.data.shards import load_manifest, load_shard
from utils.eval.claims import assess_claims
from utils.imaging import color, metrics
from utils.imaging.scoring import BatchScorer, predict_ab, truth_and_inputs
from utils.nets.checkpoints import load_generator
from utils.nets.environment import amp_settings, select_device


@writes_run_dir("evaluate")
@torch.no_grad()
def evaluate_models(params: RunParams, run_dir: str | Path, show_progress: bool = True) -> pd.DataFrame:
    """Score both baselines and each model in ``params.models`` on every domain's test split.

    Every training seed's copy of each model is scored. Writes ``eval/per_image.csv`` (a row per
    model, seed, test domain and image, with the image's test group), ``eval/summary.csv`` (means with
    intervals over the test groups) and ``eval/comparisons.csv`` (paired tests over groups), both on the
    scores averaged over the seeds, ``eval/summary_by_seed.csv`` (each seed's means), ``eval/claims.csv``
    (the paper's claims checked) and ``eval/examples/<model>_<domain>.npy`` (the first ``n_examples``
    outputs of the first seed's model, uint8 RGB; ``gray_*`` is the input, ``truth_*`` the original).

    Returns:
        The per-image table: model, seed, test_domain, image_index, group and one column per metric.
    """
    run_dir = Path(run_dir)
    examples_dir = run_dir / "eval" / "examples"
    examples_dir.mkdir(parents=True, exist_ok=True)
    scoring = Scoring.of_run(params, run_dir)
    rows = []
    for domain in params.domain_names:
        domain_rows, examples = score_domain(scoring, run_dir, domain, show_progress)
        rows += domain_rows
        for name, images in examples.items():
            with atomic_write(examples_dir / f"{name}_{domain}.npy") as temporary, temporary.open("wb") as file:
                np.save(file, images)
    per_image = pd.concat(rows, ignore_index=True)
    write_csv_atomic(run_dir / "eval" / "per_image.csv", per_image)
    tables = evaluation_tables(per_image, params.n_bootstrap, params.seed)
    for name, table in tables.items():
        write_csv_atomic(run_dir / "eval" / f"{name}.csv", table)
    return per_image


@dataclass
class Scoring:
    """What scoring a batch needs: the device and its precision, every trained generator by (model, seed), and
    the metrics."""

    params: RunParams
    device: torch.device
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format
    generators: dict[tuple[str, int], torch.nn.Module]
    score: BatchScorer

    @classmethod
    def of_run(cls, params: RunParams, run_dir: Path) -> Scoring:
        device = select_device(params)
        memory_format = torch.channels_last if params.channels_last else torch.contiguous_format
        generators = {
            (m, s): load_generator(model_dir(run_dir, m, s) / "best.pt", device)[0] for m, s in trained_models(params)
        }
        for generator in generators.values():
            generator.to(memory_format=memory_format)
        score = BatchScorer(params.compile_metrics, params.eval_batch_size, params.gamut)
        return cls(params, device, amp_settings(device, params.precision)[0], memory_format, generators, score)


def score_domain(
    scoring: Scoring, run_dir: Path, domain: str, show_progress: bool
) -> tuple[list[pd.DataFrame], dict[str, np.ndarray]]:
    """Every (model, seed)'s scores on ``domain``'s test images, a frame per batch and model, and the examples
    the figures show: the first ``n_examples`` outputs of the baselines and of the first seed's models."""
    params = scoring.params
    shard = load_shard(run_dir, domain, "test")
    groups = image_groups(run_dir, domain, len(shard))
    rows, examples = [], {}
    starts = range(0, len(shard), params.eval_batch_size)
    for start in tqdm(starts, desc=f"evaluate on {domain}", disable=not show_progress):
        batch = torch.from_numpy(np.array(shard[start : start + params.eval_batch_size])).to(scoring.device)
        rgb_true, l_norm, ab_true = truth_and_inputs(batch)
        predictions = {(GRAY, BASELINE_SEED): torch.zeros_like(ab_true), (TRUTH, BASELINE_SEED): ab_true}
        predictions |= {
            key: predict_ab(g, l_norm, scoring.amp_dtype, scoring.memory_format)
            for key, g in scoring.generators.items()
        }
        index = np.arange(start, start + len(batch))
        for (model, seed), ab in predictions.items():
            scores = {k: v.cpu().numpy() for k, v in scoring.score(rgb_true, l_norm, ab).items()}
            columns = {"model": model, "seed": seed, "test_domain": domain, "image_index": index}
            rows.append(pd.DataFrame({**columns, "group": groups[index], **scores}))
            if start == 0 and model != TRUTH and seed in (params.seed, BASELINE_SEED):
                shown = color.rgb_to_uint8(color.colorized_rgb(l_norm, ab, params.gamut))
                examples[model] = shown[: params.n_examples].cpu().numpy()
        if start == 0:
            examples[TRUTH] = batch[: params.n_examples].cpu().numpy()
    return rows, examples


def image_groups(run_dir: Path, domain: str, n_images: int) -> np.ndarray:
    """Each test image's group (data/manifest.csv: the rows of ``domain``'s test split, in shard order), or a
    ValueError naming the manifest when it does not match the shard's ``n_images``."""
    manifest = load_manifest(run_dir)
    rows = manifest[(manifest["domain"] == domain) & (manifest["split"] == "test")].sort_values("index")
    if len(rows) != n_images:  # load_manifest has checked that every row has its group
        raise ValueError(
            f"{Path(run_dir) / 'data' / 'manifest.csv'}: {len(rows)} {domain} test rows for {n_images} "
            f"images in the {domain} test shard; prepare the data again"
        )
    return rows["group"].to_numpy()


def evaluation_tables(per_image: pd.DataFrame, n_bootstrap: int = 2000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Every table evaluation writes beside per_image.csv, from the per-image scores (every seed's rows, with
    their groups): ``summary`` and ``comparisons`` on the scores averaged over the seeds, ``summary_by_seed``
    and ``claims`` (the paper's claims on the averaged scores, and seed by seed when there are several), and
    ``generalization``: each domain's model's CIEDE2000 out of its domain less in it."""
    names = list(metrics.METRICS)
    averaged = statistics.seed_averaged(per_image)
    summary = statistics.summarize(averaged, names, n_bootstrap, seed)
    comparisons = statistics.compare_models(averaged, metrics.METRICS, n_bootstrap, seed)
    seeds = statistics.training_seeds_in(per_image)
    per_seed = {s: statistics.one_seed(per_image, s) for s in seeds} if len(seeds) > 1 else None
    claims = assess_claims(averaged, per_seed, n_bootstrap, seed, comparisons=comparisons, summary=summary)
    return {
        "summary": summary,
        "comparisons": comparisons,
        "summary_by_seed": statistics.summarize_by_seed(per_image, names, n_bootstrap, seed),
        "claims": claims,
        "generalization": statistics.generalization_gaps(averaged, "ciede2000", n_bootstrap, seed),
    }
