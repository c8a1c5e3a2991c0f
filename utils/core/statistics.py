"""Group-level statistics: the test group (a film, a show, a photograph, a cluster of near-duplicate frames)
is the unit of evidence, never the single image.

- **Means** are over the test images, as the paper reports them.
- **Intervals**: a one-level cluster bootstrap. Each resample draws the domain's groups with replacement,
  each with all its images, and takes the mean over the images drawn (its groups' sums over their counts);
  the 95% interval is the percentile interval of ``n_bootstrap`` resamples. Images are not resampled within
  their group as well: a group drawn whole already brings its images' spread, and a second level would
  count it twice (Davison & Hinkley 1997, on hierarchical data).
- **Paired comparisons**: each image's difference between two models, averaged within its group; a
  two-sided Wilcoxon signed-rank test over those group means (scipy's defaults: zeros dropped; exact for up to
  50 groups without ties or zeros, with them exact up to 13 and the normal approximation from 14).
- **Multiple testing**: Holm (statsmodels), within a family the caller names.
- **Minimum groups**: the fewest groups with which the test used can reach p < ``ALPHA`` in a Holm family of
  m tests: the p of the most extreme outcome (every group's difference of one sign), times m.
- **Seeds**: each image's score is averaged over the training seeds before grouping (the expected score
  of one training run); each seed's own table gives its own verdicts, which the claims count.

Copying images within their groups changes nothing here but ``n`` and ``std``: the group means, the resampled means
(the same groups drawn from the same seed) and every test stay as they were. With each image its own
group, it is the per-image analysis: the images' bootstrap and the Wilcoxon test over images.

Base layer: numpy and pandas; scipy and statsmodels are imported where a test runs (slow imports).
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd

from utils.core.domains import MIXED, PAPER_DOMAINS

ALPHA = 0.05
GRAY = "gray"
TRUTH = "truth"
BASELINES = (GRAY, TRUTH)
BASELINE_SEED = -1  # the baselines' seed in per_image.csv: nothing was trained
IMAGE_KEYS = ["model", "test_domain", "image_index"]
SUMMARY_COLUMNS = ["model", "test_domain", "metric", "mean", "ci_low", "ci_high", "std", "n", "n_groups"]
COMPARISON_COLUMNS = [
    "test_domain", "metric", "model_a", "model_b", "mean_a", "mean_b", "loss_diff", "ci_low", "ci_high",
    "p_wilcoxon", "p_holm", "better", "significant", "n", "n_groups", "min_groups",
]  # fmt: skip
RESAMPLE_CELLS = 4_000_000  # resamples x groups drawn at once: bounds memory when every image is its own group
MOST_GROUPS_SEARCHED = 64  # minimum_groups looks no further (a family would need 2^63 tests)


class RankedMetric(Protocol):
    """What a comparison needs of a metric (utils.imaging.metric_table.Metric is one): whether it ranks, and its loss."""

    @property
    def ranked(self) -> bool: ...

    def loss(self, values: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Groups:
    """Which group each image belongs to: ``codes`` (one per image, 0 .. G-1, groups in the sorted order of
    their labels, so the order of the images does not matter) and each group's image ``counts``."""

    codes: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, labels: Sequence | np.ndarray | pd.Series) -> Groups:
        codes, uniques = pd.factorize(pd.Series(labels), sort=True)
        if (codes < 0).any():
            raise ValueError(f"group labels: {int((codes < 0).sum())} image(s) without a group")
        return cls(codes, np.bincount(codes, minlength=len(uniques)))

    @property
    def n_groups(self) -> int:
        return len(self.counts)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """(n, ...) per-image values -> (G, ...) per-group sums."""
        order = np.argsort(self.codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        return np.add.reduceat(np.asarray(values, dtype=np.float64)[order], starts, axis=0)

    def means(self, values: np.ndarray) -> np.ndarray:
        """(n, ...) per-image values -> (G, ...) per-group means."""
        sums = self.sums(values)
        return sums / self.counts.reshape(-1, *([1] * (sums.ndim - 1)))


def resample_weights(n_groups: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n_groups): how many times each group is drawn in each resample of ``n_groups`` draws."""
    picks = rng.integers(0, n_groups, size=(n_resamples, n_groups))
    offsets = (np.arange(n_resamples) * n_groups)[:, None]
    return np.bincount((picks + offsets).ravel(), minlength=n_resamples * n_groups).reshape(n_resamples, n_groups)


def cluster_bootstrap_means(values: np.ndarray, groups: Groups, n_bootstrap: int, seed: int) -> np.ndarray:
    """(n, ...) per-image values -> (n_bootstrap, ...) means over the images of resampled groups (seeded)."""
    sums = groups.sums(values)
    flat = sums.reshape(groups.n_groups, -1)
    rng = np.random.default_rng(seed)
    chunk = max(1, RESAMPLE_CELLS // groups.n_groups)
    means = []
    for start in range(0, n_bootstrap, chunk):
        weights = resample_weights(groups.n_groups, min(chunk, n_bootstrap - start), rng).astype(np.float64)
        means.append((weights @ flat) / (weights @ groups.counts)[:, None])
    return np.concatenate(means).reshape(n_bootstrap, *sums.shape[1:])


def percentile_interval(resampled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% percentile interval of resampled statistics along their first axis."""
    low, high = np.percentile(resampled, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)], axis=0)
    return low, high


def cluster_bootstrap_ci(
    values: np.ndarray, groups: Groups, n_bootstrap: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Cluster-bootstrap 95% interval of the mean over images of one column of values."""
    low, high = percentile_interval(cluster_bootstrap_means(np.asarray(values, np.float64), groups, n_bootstrap, seed))
    return float(low), float(high)


def signed_rank_p(group_differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p over groups' mean differences (1 when every one is 0)."""
    from scipy.stats import wilcoxon  # here: scipy is slow to import, and training never compares

    differences = np.asarray(group_differences, dtype=np.float64)
    return 1.0 if np.all(differences == 0) else float(wilcoxon(differences).pvalue)


@cache
def minimum_groups(family_size: int = 1, alpha: float = ALPHA) -> int:
    """The fewest groups with which :func:`signed_rank_p`, Holm-adjusted in a family of ``family_size``, can
    go below ``alpha``: its p on the most extreme outcome (every group's difference positive), times the
    family's size (Holm's factor for the smallest p). 6 for one test at 0.05, 8 for a family of 6."""
    for n in range(1, MOST_GROUPS_SEARCHED + 1):
        if family_size * signed_rank_p(np.arange(1.0, n + 1)) < alpha:
            return n
    raise ValueError(f"family_size = {family_size}: no number of groups up to {MOST_GROUPS_SEARCHED} reaches {alpha}")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (statsmodels)."""
    if len(p_values) == 0:
        return []
    from statsmodels.stats.multitest import multipletests  # here: statsmodels imports scipy, slow

    # its Holm runs gc.collect() on every call, 0.3 s over the objects torch leaves: freeze those so it skips them
    freezing = gc.get_freeze_count() == 0
    if freezing:
        gc.freeze()
    try:
        adjusted = multipletests(np.asarray(p_values, dtype=np.float64), alpha=ALPHA, method="holm")[1]
    finally:
        if freezing:
            gc.unfreeze()
    return [float(p) for p in adjusted]


class Paired(NamedTuple):
    """One paired comparison: the mean per-image difference, its cluster-bootstrap interval, the signed-rank p
    over groups, the images and the groups."""

    difference: float
    ci_low: float
    ci_high: float
    p: float
    n: int
    n_groups: int


def paired_comparison(
    values_a: np.ndarray, values_b: np.ndarray, groups: Groups, n_bootstrap: int = 2000, seed: int = 0
) -> Paired:
    """``values_a - values_b`` on the same images: its mean over images with the cluster-bootstrap 95% interval,
    and the Wilcoxon signed-rank p over the groups' mean differences."""
    difference = np.asarray(values_a, dtype=np.float64) - np.asarray(values_b, dtype=np.float64)
    low, high = cluster_bootstrap_ci(difference, groups, n_bootstrap, seed)
    p = signed_rank_p(groups.means(difference))
    return Paired(float(difference.mean()), low, high, p, len(difference), groups.n_groups)


# --- the evaluation's tables ---------------------------------------------------------------------


def groups_of(table: pd.DataFrame, name: str = "per_image") -> Groups:
    """The groups of a table's rows (its ``group`` column), or a ValueError naming the table."""
    if "group" not in table.columns:
        raise ValueError(f"{name}: no 'group' column (each test image's group, from data/manifest.csv)")
    return Groups.of(table["group"])


def check_per_image(per_image: pd.DataFrame, name: str, metric_names: Sequence[str]) -> None:
    """Raise ValueError (naming ``name``) unless the table has one row per model, test domain and image, a
    group per image, every metric, and the same images for every model of a test domain (the tests are paired)."""
    missing = [c for c in [*IMAGE_KEYS, "group", *metric_names] if c not in per_image.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {', '.join(missing)}")
    if per_image.duplicated(IMAGE_KEYS).any():
        raise ValueError(
            f"{name}: more than one row per model, test domain and image (several seeds? average them "
            "first with statistics.seed_averaged, and pass each seed's table in per_seed)"
        )
    if per_image["group"].isna().any():
        raise ValueError(f"{name}: {int(per_image['group'].isna().sum())} row(s) without a group")
    for domain, part in per_image.groupby("test_domain"):
        if part.groupby("model")["image_index"].apply(frozenset).nunique() > 1:
            raise ValueError(f"{name}: the models were scored on different {domain} test images")
        if (part.groupby("image_index")["group"].nunique() > 1).any():
            raise ValueError(f"{name}: a {domain} test image is in more than one group")


def summarize(
    per_image: pd.DataFrame, metric_names: Sequence[str], n_bootstrap: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Long table (:data:`SUMMARY_COLUMNS`): per model, test domain and metric, the mean over images with its
    cluster-bootstrap 95% interval, the per-image SD, the images ``n`` and the groups ``n_groups``."""
    rows = []
    for (model, domain), part in per_image.groupby(["model", "test_domain"], sort=False):
        groups = groups_of(part)
        values = part[list(metric_names)].to_numpy(dtype=np.float64)
        low, high = percentile_interval(cluster_bootstrap_means(values, groups, n_bootstrap, seed))
        std = values.std(axis=0, ddof=1) if len(values) > 1 else np.full(len(metric_names), np.nan)
        for i, metric in enumerate(metric_names):
            rows.append(
                [
                    model,
                    domain,
                    metric,
                    float(values[:, i].mean()),
                    float(low[i]),
                    float(high[i]),
                    float(std[i]),
                    len(values),
                    groups.n_groups,
                ]
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def compared_pairs(candidates: Sequence[str], mean_loss: Mapping[str, float]) -> list[tuple[str, str]]:
    """The pairs of one test domain and metric, in the candidates' order: each model against the gray baseline
    and against the best (the loss of its mean: the report's best), and every pair of the paper's models (its claims compare them).
    With the paper's three models and gray that is every pair; with more models, it grows linearly."""
    best = min(candidates, key=lambda m: mean_loss[m])
    paper = {*PAPER_DOMAINS, MIXED}
    return [
        (a, b) for a, b in itertools.combinations(candidates, 2) if GRAY in (a, b) or best in (a, b) or {a, b} <= paper
    ]


def compare_models(
    per_image: pd.DataFrame, metrics: Mapping[str, RankedMetric], n_bootstrap: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """The pairs of :func:`compared_pairs` (the gray baseline among the models, the truth not) on each test domain
    and ranked metric.

    ``loss_diff`` is the mean per-image difference of the metric's loss (the value when lower is better,
    its negative when higher is better, its distance from 1 for ratios), ``model_a`` minus ``model_b``:
    negative means ``model_a`` is better; its interval from the cluster bootstrap. ``p_wilcoxon``: signed-rank
    test over the groups' mean differences; ``p_holm``: Holm within each (test domain, metric) family, all its
    pairs; ``min_groups``: the groups that family needs for p < 0.05. ``significant``: Holm p < 0.05 and the
    interval excluding 0.
    """
    rows = []
    candidates = [m for m in per_image["model"].unique() if m != TRUTH]
    ranked = [m for m, info in metrics.items() if info.ranked]
    for domain, in_domain in per_image.groupby("test_domain", sort=False):
        by_model = {m: part.sort_values("image_index") for m, part in in_domain.groupby("model")}
        groups = groups_of(by_model[candidates[0]])
        losses = {m: {k: metrics[k].loss(by_model[m][k].to_numpy(np.float64)) for k in ranked} for m in candidates}
        mean_loss = {k: {m: float(metrics[k].loss(by_model[m][k].mean())) for m in candidates} for k in ranked}
        columns = [(k, a, b) for k in ranked for a, b in compared_pairs(candidates, mean_loss[k])]
        differences = np.stack([losses[a][k] - losses[b][k] for k, a, b in columns], axis=1)
        low, high = percentile_interval(cluster_bootstrap_means(differences, groups, n_bootstrap, seed))
        group_differences = groups.means(differences)
        p_values = [signed_rank_p(group_differences[:, i]) for i in range(len(columns))]
        for metric in ranked:
            family = [i for i, column in enumerate(columns) if column[0] == metric]
            needed = minimum_groups(len(family))
            for i, p_holm in zip(family, holm([p_values[i] for i in family])):
                _, a, b = columns[i]
                diff = float(differences[:, i].mean())
                significant = p_holm < ALPHA and (low[i] > 0 or high[i] < 0)
                rows.append(
                    [
                        domain,
                        metric,
                        a,
                        b,
                        float(by_model[a][metric].mean()),
                        float(by_model[b][metric].mean()),
                        diff,
                        float(low[i]),
                        float(high[i]),
                        p_values[i],
                        p_holm,
                        a if diff < 0 else b,
                        bool(significant),
                        len(differences),
                        groups.n_groups,
                        needed,
                    ]
                )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


# --- seeds ---------------------------------------------------------------------------------------


def training_seeds_in(per_image: pd.DataFrame) -> list[int]:
    """The training seeds of a per-image table, in order (the baselines' aside)."""
    return sorted(int(s) for s in per_image["seed"].unique() if s != BASELINE_SEED)


def seed_averaged(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per model, test domain and image (with its group): each score averaged over the model's
    training seeds (the baselines have one). With one seed, the table itself without its seed column."""
    keys = [*IMAGE_KEYS, *(["group"] if "group" in per_image.columns else [])]
    values = [c for c in per_image.columns if c not in keys and c != "seed"]
    return per_image.groupby(keys, sort=False)[values].mean().reset_index()


def one_seed(per_image: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The models trained with ``seed``, and the baselines, as a per-image table without its seed column."""
    return per_image[per_image["seed"].isin([seed, BASELINE_SEED])].drop(columns="seed").reset_index(drop=True)


def summarize_by_seed(
    per_image: pd.DataFrame, metric_names: Sequence[str], n_bootstrap: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """:func:`summarize` for each training seed's models (the baselines aside), with a ``seed`` column."""
    models = per_image[per_image["seed"] != BASELINE_SEED]
    parts = [
        summarize(part.drop(columns="seed"), metric_names, n_bootstrap, seed).assign(seed=int(training_seed))
        for training_seed, part in models.groupby("seed", sort=True)
    ]
    return pd.concat(parts, ignore_index=True)[["seed", *SUMMARY_COLUMNS]]


GAP_COLUMNS = ["model", "metric", "in_domain", "in_mean", "out_mean", "gap", "ci_low", "ci_high", "n_groups_in",
               "n_groups_out"]  # fmt: skip


def generalization_gaps(per_image: pd.DataFrame, metric: str, n_bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """For each model trained on one test domain alone (named as that domain): its mean on the other domains'
    test images (each domain weighted equally) less its mean on its own (:data:`GAP_COLUMNS`), with a 95%
    interval from a bootstrap that resamples each domain's test groups on its own (the domains' test sets are
    independent). A loss metric's positive gap is worse out of domain. ``n_groups_out``: the fewest test groups
    of another domain (each domain's mean rests on its own groups)."""
    domains = [str(d) for d in pd.unique(per_image["test_domain"])]
    rows = []
    for model in [m for m in pd.unique(per_image["model"]) if m in domains]:
        means, draws, n_groups = {}, {}, {}
        for k, domain in enumerate(domains):
            part = per_image[(per_image["model"] == model) & (per_image["test_domain"] == domain)]
            groups = groups_of(part)
            values = part[metric].to_numpy(np.float64)
            means[domain], n_groups[domain] = float(values.mean()), groups.n_groups
            draws[domain] = cluster_bootstrap_means(values, groups, n_bootstrap, seed + k)
        others = [d for d in domains if d != model]
        out_mean = float(np.mean([means[d] for d in others]))
        resampled = np.mean([draws[d] for d in others], axis=0) - draws[model]
        low, high = percentile_interval(resampled)
        rows.append(
            [
                model,
                metric,
                model,
                means[model],
                out_mean,
                out_mean - means[model],
                float(low),
                float(high),
                n_groups[model],
                min(n_groups[d] for d in others),
            ]
        )
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


# --- the evidence of claims (f) and (g) ------------------------------------------------------------

SPREAD_METRICS = ("ssim", "ciede2000")  # (f): the first's spread over the second's
TINY = 1e-12  # floors a spread or SD of exactly 0 before the log and the division


def standardised_spread(means: np.ndarray) -> np.ndarray:
    """(..., 2k) means of k models' values then of their squares -> (...) the models' range of means
    over their pooled per-image standard deviation (root mean of the k variances)."""
    k = means.shape[-1] // 2
    value_means, square_means = means[..., :k], means[..., k:]
    pooled_sd = np.sqrt(np.maximum(square_means - value_means**2, 0.0).mean(axis=-1))
    return np.ptp(value_means, axis=-1) / np.maximum(pooled_sd, TINY)


def spread_ratio(
    per_image: pd.DataFrame, domain: str, models: tuple[str, ...], n_bootstrap: int, seed: int
) -> dict[str, float | str]:
    """(f) on one test domain: log(SSIM's standardised spread / CIEDE2000's) with its bootstrap 95% interval.

    Standardised spread: (max - min of the models' mean scores) / the pooled per-image standard
    deviation of that metric: how far apart the models are in units of the metric's own variation
    over images, so SSIM (~0.9, differences in the third decimal) and CIEDE2000 (~10-30) compare. Not
    divided by the mean: that depends on where a scale starts (SSIM's ceiling at 1 would make any
    spread look small); not by the paired differences' SD: that measures how detectable a difference
    is, not how large. The interval: the cluster bootstrap of :mod:`utils.core.statistics`, resampling the
    test groups, the same ones for every model and both metrics (the means of the values and of their
    squares, of one matrix).
    """
    part = per_image[per_image["test_domain"] == domain]
    blocks = []
    for metric in SPREAD_METRICS:
        wide = part.pivot(index="image_index", columns="model", values=metric)[list(models)].to_numpy(np.float64)
        blocks += [wide, wide**2]
    columns = np.concatenate(blocks, axis=1)  # images x (values, squares) of SSIM, then of CIEDE2000
    groups = Groups.of(part.drop_duplicates("image_index").set_index("image_index")["group"].sort_index())
    half = columns.shape[1] // 2

    def log_ratio(means: np.ndarray) -> np.ndarray:
        ssim_spread, ciede_spread = standardised_spread(means[..., :half]), standardised_spread(means[..., half:])
        return np.log(np.maximum(ssim_spread, TINY)) - np.log(np.maximum(ciede_spread, TINY))

    resampled = cluster_bootstrap_means(columns, groups, n_bootstrap, seed)
    low, high = percentile_interval(log_ratio(resampled))
    point = columns.mean(axis=0)
    return {
        "test_domain": domain,
        "ssim_spread": float(standardised_spread(point[:half])),
        "ciede2000_spread": float(standardised_spread(point[half:])),
        "log_ratio": float(log_ratio(point)),
        "ci_low": float(low),
        "ci_high": float(high),
    }


def saturation_tests(
    per_image: pd.DataFrame, models: tuple[str, ...], domains: tuple[str, ...], n_bootstrap: int, seed: int
) -> pd.DataFrame:
    """(g): per model and test domain, the output / truth colorfulness ratio's mean over images, its
    cluster-bootstrap 95% interval, and the signed-rank p over the groups' mean ratio minus 1, Holm-adjusted
    over the whole model x domain family (``min_groups``: the groups that family needs). These are the
    figures (g)'s cell shows, and the verdict reads nothing else."""
    rows = []
    for domain in domains:
        for model in models:
            part = per_image[(per_image["model"] == model) & (per_image["test_domain"] == domain)]
            part = part.sort_values("image_index")
            ratio = part["colorfulness_ratio"].to_numpy(np.float64)
            test = paired_comparison(ratio, np.ones_like(ratio), groups_of(part), n_bootstrap, seed)
            rows.append(
                [model, domain, 1 + test.difference, 1 + test.ci_low, 1 + test.ci_high, test.p, test.n, test.n_groups]
            )
    table = pd.DataFrame(
        rows, columns=["model", "test_domain", "ratio", "ci_low", "ci_high", "p_wilcoxon", "n", "n_groups"]
    )
    return table.assign(p_holm=holm(table["p_wilcoxon"].tolist()), min_groups=minimum_groups(max(1, len(rows))))
