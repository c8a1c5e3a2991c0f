"""The figures (seaborn): everything read from the run directory, nothing recomputed (report.md: utils.eval.report).

Each figure is saved as a PNG under figures/ (utils.imaging.figures.save_figure, beside the loss curves the train
notebook draws) and that PNG is returned for the notebook to show. matplotlib and seaborn are imported by the
functions that draw (seaborn, which imports scipy.stats, only where a seaborn plot is drawn): the notebooks that
import this module without drawing a seaborn plot save their import time (docs/performance.md, "Start-up of each
notebook"). Each function that saves a figure holds the run directory while it does (utils.core.run_dir.writes_run_dir).
Intervals are the evaluation's: a bootstrap that resamples the test groups (utils.core.statistics).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from utils.core.config import trained_models
from utils.core.domains import fraction_model
from utils.core.parameters import RunParams
from utils.core.run_dir import writes_run_dir
from utils.core.statistics import BASELINES, GRAY, TRUTH, seed_averaged
from utils.data.shards import load_manifest, load_shard
from utils.imaging.figures import plot_loss_curves, save_figure
from utils.imaging.metric_table import METRICS

if TYPE_CHECKING:
    import matplotlib.pyplot as plt
    from IPython.display import Image


def model_order(models: list[str] | np.ndarray) -> list[str]:
    """Baselines first (gray, truth), then the models in their run order."""
    return [*[b for b in BASELINES if b in models], *[m for m in models if m not in BASELINES]]


def model_colors(models: list[str]) -> dict[str, tuple]:
    """One colour per model in every figure: gray baseline gray, truth black, models from seaborn's palette."""
    import seaborn as sns

    palette = sns.color_palette("deep")
    fixed = {GRAY: (0.55, 0.55, 0.55), TRUTH: (0.13, 0.13, 0.13)}
    fixed |= {m: palette[i % len(palette)] for i, m in enumerate(m for m in models if m not in fixed)}
    return {m: fixed[m] for m in models}


def test_domains(rows: pd.DataFrame) -> list[str]:
    """The test domains of an eval table, in the run's order (evaluation writes them in that order)."""
    return [str(d) for d in pd.unique(rows["test_domain"])]


def bars_with_intervals(
    ax: plt.Axes,
    rows: pd.DataFrame,
    order: list[str],
    colors: dict[str, tuple],
    seed_rows: pd.DataFrame | None = None,
) -> None:
    """Grouped bars of one metric's summary rows: a group per test domain, a bar per model (in
    ``order``), each with its bootstrap 95% interval as the error bar. With several training seeds
    (``seed_rows``: summary_by_seed.csv's rows of the metric), each seed's mean is a point beside its bar."""
    cells = rows.set_index(["test_domain", "model"])
    several_seeds = seed_rows is not None and seed_rows["seed"].nunique() > 1
    width = 0.8 / len(order)
    point_label = "one seed's mean"  # in the legend once
    domains = test_domains(rows)
    for i, model in enumerate(order):
        bars = cells.loc[[(d, model) for d in domains]]
        x = np.arange(len(domains)) + (i - (len(order) - 1) / 2) * width
        errors = [bars["mean"] - bars["ci_low"], bars["ci_high"] - bars["mean"]]
        ax.bar(x, bars["mean"], width, yerr=errors, capsize=3, color=colors[model], label=model)
        if several_seeds and model not in BASELINES:
            for xi, domain in zip(x, domains):
                seeds = seed_rows[(seed_rows["model"] == model) & (seed_rows["test_domain"] == domain)]
                ax.scatter(
                    np.full(len(seeds), xi + 0.3 * width),
                    seeds["mean"],
                    s=14,
                    color="white",
                    edgecolor="black",
                    linewidth=0.8,
                    zorder=3,
                    label=point_label,
                )
                point_label = None
    ax.set_xticks(np.arange(len(domains)), domains)
    ax.legend(title="model", fontsize=8)


def seed_summary(run_dir: Path) -> pd.DataFrame | None:
    """eval/summary_by_seed.csv: each training seed's means (None for a run evaluated before seeds)."""
    path = run_dir / "eval" / "summary_by_seed.csv"
    return pd.read_csv(path) if path.is_file() else None


@writes_run_dir("the {metric} figure")
def plot_metric(run_dir: str | Path, metric: str) -> Image:
    """Paper Figs. 4 and 5, with intervals and distributions: one metric per model and test domain.

    (a) means with bootstrap 95% intervals (eval/summary.csv); (b) the per-image distribution
    (violins, quartiles inside). Both baselines stand beside the models.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    run_dir = Path(run_dir)
    summary = pd.read_csv(run_dir / "eval" / "summary.csv")
    per_image = seed_averaged(pd.read_csv(run_dir / "eval" / "per_image.csv"))
    by_seed = seed_summary(run_dir)
    info = METRICS[metric]
    order = model_order(per_image["model"].unique())
    colors = model_colors(order)
    fig, (ax_mean, ax_dist) = plt.subplots(1, 2, figsize=(13, 4.2))
    seed_rows = None if by_seed is None else by_seed[by_seed["metric"] == metric]
    bars_with_intervals(ax_mean, summary[summary["metric"] == metric], order, colors, seed_rows)
    if info.goal == "one":
        ax_mean.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax_mean.set(title="(a) mean, 95% interval (test groups resampled)", xlabel="test domain", ylabel=info.label)
    sns.violinplot(
        data=per_image,
        x="test_domain",
        y=metric,
        hue="model",
        hue_order=order,
        order=test_domains(per_image),
        palette=colors,
        inner="quart",
        cut=0,
        density_norm="width",
        linewidth=0.6,
        ax=ax_dist,
        legend=False,
    )
    ax_dist.set(title="(b) per test image", xlabel="test domain", ylabel=info.label)
    fig.suptitle(f"{info.label}: {info.about}")
    fig.tight_layout()
    return save_figure(fig, run_dir / "figures" / f"{metric}.png")


@writes_run_dir("the saturation figure")
def plot_saturation(run_dir: str | Path) -> Image:
    """How colourful the outputs are against the truth, per image and domain; and the mean ratio.

    Points under the diagonal are washed out: the paper's qualitative finding, as a number.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    run_dir = Path(run_dir)
    per_image = seed_averaged(pd.read_csv(run_dir / "eval" / "per_image.csv"))
    summary = pd.read_csv(run_dir / "eval" / "summary.csv")
    by_seed = seed_summary(run_dir)
    shown = per_image[per_image["model"] != TRUTH]
    order = model_order(shown["model"].unique())
    colors = model_colors(order)
    domains = test_domains(shown)
    fig, axes = plt.subplots(1, len(domains) + 1, figsize=(5 * (len(domains) + 1), 4.4))
    for ax, domain in zip(axes, domains):
        part = shown[shown["test_domain"] == domain]
        sns.scatterplot(
            data=part,
            x="colorfulness_truth",
            y="colorfulness",
            hue="model",
            hue_order=order,
            palette=colors,
            s=14,
            alpha=0.7,
            ax=ax,
        )
        top = float(max(part["colorfulness_truth"].max(), part["colorfulness"].max()))
        ax.plot([0, top], [0, top], color="black", linestyle="--", linewidth=1, label="as colourful as the truth")
        ax.set(title=f"{domain} test images", xlabel="colorfulness of the truth", ylabel="colorfulness of the output")
        ax.legend(fontsize=8)
    ax = axes[-1]
    seed_rows = None if by_seed is None else by_seed[by_seed["metric"] == "colorfulness_ratio"]
    bars_with_intervals(ax, summary[summary["metric"] == "colorfulness_ratio"], order, colors, seed_rows)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set(title="colorfulness ratio: mean, 95% interval", ylabel="output / truth (1 = right, < 1 = washed out)")
    fig.suptitle("Saturation: output colorfulness against the truth's (Hasler & Suesstrunk 2003)")
    fig.tight_layout()
    return save_figure(fig, run_dir / "figures" / "saturation.png")


@writes_run_dir("the {domain} examples figure")
def plot_examples(run_dir: str | Path, domain: str, models: tuple[str, ...]) -> Image:
    """Paper Fig. 6: test images of one domain; columns gray input, each model, ground truth."""
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    examples = run_dir / "eval" / "examples"
    columns = [("gray input", GRAY), *[(f"{m} model", m) for m in models], ("ground truth", "truth")]
    images = {key: np.load(examples / f"{key}_{domain}.npy") for _, key in columns}
    n = len(images["truth"])
    fig, axes = plt.subplots(n, len(columns), figsize=(2.2 * len(columns), 2.2 * n), squeeze=False)
    for i in range(n):
        for j, (title, key) in enumerate(columns):
            ax = axes[i, j]
            ax.imshow(images[key][i])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title)
    fig.suptitle(f"{domain} test images")
    fig.tight_layout()
    return save_figure(fig, run_dir / "figures" / f"examples_{domain}.png")


@writes_run_dir("the dataset samples figure")
def plot_dataset_samples(run_dir: str | Path, n: int = 8) -> Image:
    """The first ``n`` training images of each domain, as the shards hold them."""
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    domains = [str(d) for d in pd.unique(load_manifest(run_dir)["domain"])]
    fig, axes = plt.subplots(len(domains), n, figsize=(1.6 * n, 1.7 * len(domains)), squeeze=False)
    for row, domain in zip(axes, domains):
        shard = load_shard(run_dir, domain, "train")
        for j, ax in enumerate(row):
            if j < len(shard):
                ax.imshow(shard[j])
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(domain)
    fig.suptitle("training images per domain")
    fig.tight_layout()
    return save_figure(fig, run_dir / "figures" / "dataset_samples.png")


def cross_domain_matrix(summary: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(means, cell texts): a row per training set (the models in run order, then the gray baseline as the
    reference row), a column per test domain; each text is the mean with its 95% interval."""
    rows = summary[(summary["metric"] == metric) & (summary["model"] != TRUTH)]
    order = [*[m for m in pd.unique(rows["model"]) if m not in BASELINES], GRAY]
    domains = test_domains(rows)
    cells = rows.set_index(["model", "test_domain"])
    means = cells["mean"].unstack().loc[order, domains]
    texts = pd.DataFrame(
        [
            [
                f"{cells.at[(m, d), 'mean']:.2f}\n[{cells.at[(m, d), 'ci_low']:.2f}, {cells.at[(m, d), 'ci_high']:.2f}]"
                for d in domains
            ]
            for m in order
        ],
        index=order,
        columns=domains,
    )
    return means, texts


@writes_run_dir("the cross-domain {metric} figure")
def plot_cross_domain(run_dir: str | Path, metric: str = "ciede2000") -> Image:
    """The cross-domain matrix as a heatmap: rows are training sets, columns test domains; each cell holds the
    mean with its interval (test groups resampled), and the gray baseline is the reference row."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    run_dir = Path(run_dir)
    means, texts = cross_domain_matrix(pd.read_csv(run_dir / "eval" / "summary.csv"), metric)
    info = METRICS[metric]
    fig, ax = plt.subplots(figsize=(1.2 + 2.2 * means.shape[1], 0.9 + 0.75 * means.shape[0]))
    sns.heatmap(
        means,
        annot=texts.to_numpy(),
        fmt="",
        cmap="rocket_r" if info.goal == "lower" else "rocket",
        cbar_kws={"label": info.label},
        linewidths=0.5,
        ax=ax,
    )
    ax.axhline(len(means) - 1, color="white", linewidth=3)  # the reference row apart
    ax.set(title=f"{info.label} of each training set on each test domain", xlabel="test domain", ylabel="trained on")
    fig.tight_layout()
    return save_figure(fig, run_dir / "figures" / f"cross_domain_{metric}.png")


def mixing_curve(
    summary: pd.DataFrame, domains: tuple[tuple[str, str], ...], fractions: tuple[float, ...], metric: str = "ciede2000"
) -> pd.DataFrame:
    """One row per fraction of the first domain and test domain: the fraction's model, its mean and interval."""
    rows = summary[summary["metric"] == metric].set_index(["model", "test_domain"])
    points = [
        {
            "fraction": f,
            "model": fraction_model(domains, f),
            "test_domain": d,
            **rows.loc[(fraction_model(domains, f), d), ["mean", "ci_low", "ci_high"]].to_dict(),
        }
        for f in sorted(fractions)
        for d in test_domains(summary)
    ]
    return pd.DataFrame(points, columns=["fraction", "model", "test_domain", "mean", "ci_low", "ci_high"])


@writes_run_dir("the {metric} mixing curve figure")
def plot_mixing_curve(
    run_dir: str | Path, domains: tuple[tuple[str, str], ...], fractions: tuple[float, ...], metric: str = "ciede2000"
) -> Image:
    """The metric on each test domain against the fraction of the first domain in the training images: a line per
    test domain with its 95% interval as a band, and the gray baseline on that domain as a dashed line."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    run_dir = Path(run_dir)
    summary = pd.read_csv(run_dir / "eval" / "summary.csv")
    curve, info = mixing_curve(summary, domains, fractions, metric), METRICS[metric]
    gray = summary[(summary["metric"] == metric) & (summary["model"] == GRAY)].set_index("test_domain")["mean"]
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for (domain, points), color in zip(curve.groupby("test_domain", sort=False), sns.color_palette("deep")):
        ax.plot(points["fraction"], points["mean"], marker="o", color=color, label=f"on {domain} test images")
        ax.fill_between(points["fraction"], points["ci_low"], points["ci_high"], color=color, alpha=0.2)
        ax.axhline(gray[domain], color=color, linestyle="--", linewidth=1, label=f"gray baseline, {domain}")
    first, second = (name for name, _ in domains)
    ax.set(
        title=f"{info.label} against the training mix",
        ylabel=info.label,
        xlabel=f"fraction of {first} images in training (the rest {second})",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, run_dir / "figures" / f"mixing_curve_{metric}.png")


REPORT_FIGURE_METRICS = ("ciede2000", "ssim", "ssim_ab", "psnr", "chroma_ratio")  # one plot_metric figure each


@writes_run_dir("the figures")
def draw_figures(run_dir: str | Path, params: RunParams) -> None:
    """Every figure report.md shows, into ``figures/``: the loss curves, each metric per model and test domain,
    the cross-domain heatmap (and the mixing curve with ``mix_fractions``), the saturation and the colorized test
    images of each domain (the prepare notebook draws the training samples)."""
    run_dir = Path(run_dir)
    plot_loss_curves(run_dir, trained_models(params))
    for metric in REPORT_FIGURE_METRICS:
        plot_metric(run_dir, metric)
    plot_cross_domain(run_dir, "ciede2000")
    if params.mix_fractions:
        plot_mixing_curve(run_dir, params.domains, params.mix_fractions)
    plot_saturation(run_dir)
    for domain in params.domain_names:
        plot_examples(run_dir, domain, params.models)
