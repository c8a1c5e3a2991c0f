"""Evaluation's statistics at the paper's size: every table evaluation computes once the images are scored.

    python benchmarks/bench_statistics.py [--images 2000] [--groups 50] [--seeds 1] [--n-bootstrap 2000]
                                          [--repeats 3] [--json PATH]

Synthetic per-image scores of the paper's size: ``--images`` test images per domain, in ``--groups`` groups
of unequal sizes (films, shows: from 1 image to several hundred), two test domains, five models (three
trained, gray and truth), ``--seeds`` training seeds. Every metric of the kit is a column; each image's
scores share a group effect, as crops of one film do.

The kit: ``evaluate.evaluation_tables`` (summary, paired comparisons, summary by seed and the claims, seed by
seed when there are several), seconds, median of ``--repeats``; target under 30 s on a 2-core machine.
The baseline, from the same run: the summary's cluster bootstrap computed by a naive loop (per model and
test domain, each resample concatenates the drawn groups' images and averages them), against the kit's
``statistics.summarize`` on the same table; their ratio (same intervals, checked).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import cpu_count, median_seconds  # noqa: E402
from benchmarks.results import Results, add_json_argument  # noqa: E402
from utils.core import statistics  # noqa: E402
from utils.core.domains import DEMO_DOMAINS as DOMAINS  # noqa: E402
from utils.core.domains import MIXED  # noqa: E402
from utils.eval import evaluate

MODEL_DOMAINS = (*DOMAINS, MIXED)
from utils.imaging.metrics import METRICS  # noqa: E402

TARGET_S = 30.0
OFFSETS = {"gray": 8.0, "truth": -20.0, "cartoon": 0.0, "movie": 0.5, "mixed": 1.0}  # CIEDE2000 added per model


def paper_size_scores(images: int, groups: int, seeds: int, seed: int = 0) -> pd.DataFrame:
    """A per_image.csv of the paper's size: every metric per model, seed, test domain and image, with groups."""
    rng = np.random.default_rng(seed)
    parts = []
    for domain in DOMAINS:
        sizes = rng.multinomial(images - groups, rng.dirichlet(np.full(groups, 0.5))) + 1
        group = np.repeat(np.arange(groups), sizes)
        difficulty = rng.normal(0, 4, groups)[group] + rng.normal(0, 3, images)
        truth_colour = rng.uniform(15, 60, images)
        runs = [("gray", statistics.BASELINE_SEED), ("truth", statistics.BASELINE_SEED)]
        runs += [(m, s) for s in range(seeds) for m in MODEL_DOMAINS]
        for model, training_seed in runs:
            offset = OFFSETS[model]
            ratio = {"gray": 0.0, "truth": 1.0}.get(model, 0.7) + rng.normal(0, 0.05, images)
            ciede = np.maximum(0.0, 20 + offset + difficulty + rng.normal(0, 1, images))
            scores = {m: rng.uniform(0.2, 0.9, images) for m in METRICS}
            scores |= {"ciede2000": ciede, "ssim": 0.9 - ciede / 200, "colorfulness_truth": truth_colour,
                       "colorfulness": truth_colour * ratio, "colorfulness_ratio": ratio}  # fmt: skip
            parts.append(pd.DataFrame({"model": model, "seed": training_seed, "test_domain": domain,
                                       "image_index": np.arange(images), "group": group, **scores}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def naive_summary_intervals(averaged: pd.DataFrame, n_bootstrap: int, seed: int) -> np.ndarray:
    """The summary's cluster-bootstrap intervals by a loop over resamples: (cells x metrics, 2)."""
    names = list(METRICS)
    intervals = []
    for _, part in averaged.groupby(["model", "test_domain"], sort=False):
        groups = statistics.Groups.of(part["group"])
        members = [np.flatnonzero(groups.codes == g) for g in range(groups.n_groups)]
        values = part[names].to_numpy(np.float64)
        rng = np.random.default_rng(seed)
        means = []
        for picks in rng.integers(0, groups.n_groups, size=(n_bootstrap, groups.n_groups)):
            means.append(values[np.concatenate([members[g] for g in picks])].mean(axis=0))
        intervals.append(np.percentile(means, [2.5, 97.5], axis=0).T)
    return np.concatenate(intervals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="test images per domain")
    parser.add_argument("--groups", type=int, default=50, help="test groups per domain")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds")
    parser.add_argument("--n-bootstrap", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    add_json_argument(parser)
    args = parser.parse_args(argv)
    results = Results("bench_statistics", args.json)
    results.describe(images_per_domain=args.images, groups_per_domain=args.groups, models=2 + len(MODEL_DOMAINS),
                     seeds=args.seeds, n_bootstrap=args.n_bootstrap, repeats=args.repeats, cpus=cpu_count())  # fmt: skip
    per_image = paper_size_scores(args.images, args.groups, args.seeds)
    averaged = statistics.seed_averaged(per_image)
    evaluate.evaluation_tables(per_image, 100, 0)  # imports scipy and statsmodels once, outside the timing

    kit_s, tables = median_seconds(lambda: evaluate.evaluation_tables(per_image, args.n_bootstrap, 0), args.repeats)
    results.add("kit: evaluation statistics (every table)", kit_s, "s", f"< {TARGET_S:.0f} s", kit_s < TARGET_S)
    summary_s, summary = median_seconds(
        lambda: statistics.summarize(averaged, list(METRICS), args.n_bootstrap, 0), args.repeats
    )
    results.add("kit: summary (cluster bootstrap)", summary_s, "s")
    naive_s, naive = median_seconds(lambda: naive_summary_intervals(averaged, args.n_bootstrap, 0), args.repeats)
    np.testing.assert_allclose(naive, summary[["ci_low", "ci_high"]].to_numpy(), rtol=1e-9)
    results.add("baseline: summary by a loop over resamples", naive_s, "s", note="same intervals")
    results.add("speed-up of the summary over the loop", naive_s / summary_s, "x")
    verdicts = tables["claims"]["verdict"].value_counts().to_dict()
    results.add("claims decided (holds or contradicted)", sum(verdicts.get(v, 0) for v in ("holds", "contradicted")),
                "of 10", note=f"{len(tables['comparisons'])} paired comparisons")  # fmt: skip
    results.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
