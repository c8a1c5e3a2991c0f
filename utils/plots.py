"""The figures (seaborn) and report.md: everything read from the run directory, nothing recomputed."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from utils.checkpoints import model_dir
from utils.config import DOMAINS, write_text_atomic
from utils.data import load_shard
from utils.evaluate import GRAY
from utils.metrics import METRICS

LOSS_PANELS = {
    "(a) D_Loss and G_GAN loss": ["loss_D", "loss_G_GAN"],
    "(b) G_Loss, G_L1 (train and val)": ["loss_G", "loss_G_L1", "val_loss_G_L1"],
    "(c) val CIEDE2000 (lower is better)": ["val_ciede2000"],
}


def _save(fig: plt.Figure, path: Path) -> plt.Figure:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)  # shown once, by the notebook, not again by the inline backend
    return fig


def plot_loss_curves(run_dir: str | Path, models: tuple[str, ...], name: str = "loss_curves") -> plt.Figure:
    """Paper Fig. 2: loss per epoch for each model, one row per model; saved as figures/<name>.png."""
    run_dir = Path(run_dir)
    fig, axes = plt.subplots(len(models), len(LOSS_PANELS), figsize=(16, 3.2 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        history = pd.read_csv(model_dir(run_dir, model) / "history.csv")
        for ax, (title, columns) in zip(row, LOSS_PANELS.items()):
            long = history.melt(id_vars="epoch", value_vars=columns, var_name="loss")
            sns.lineplot(data=long, x="epoch", y="value", hue="loss", marker="o", ax=ax)
            ylabel = "Delta E00" if columns == ["val_ciede2000"] else "loss (each network minimises its own)"
            ax.set(title=f"{model} model: {title}", ylabel=ylabel)
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return _save(fig, run_dir / "figures" / f"{name}.png")


def plot_metric(run_dir: str | Path, metric: str, seed: int = 0) -> plt.Figure:
    """Paper Figs. 4 and 5: one metric per model per test domain, gray baseline included.

    Bars are means over test images; error bars are seaborn's bootstrap 95% intervals.
    """
    run_dir = Path(run_dir)
    per_image = pd.read_csv(run_dir / "eval" / "per_image.csv")
    info = METRICS[metric]
    fig, ax = plt.subplots(figsize=(7, 4))
    order = [GRAY, *[m for m in per_image["model"].unique() if m != GRAY]]
    sns.barplot(
        data=per_image,
        x="test_domain",
        y=metric,
        hue="model",
        hue_order=order,
        order=list(DOMAINS),
        errorbar=("ci", 95),
        seed=seed,
        ax=ax,
    )
    ax.set(title=f"{info.label} per model and test domain", xlabel="test domain", ylabel=info.label)
    ax.legend(title="model (gray = no colour)", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return _save(fig, run_dir / "figures" / f"{metric}.png")


def plot_examples(run_dir: str | Path, domain: str, models: tuple[str, ...]) -> plt.Figure:
    """Paper Fig. 6: test images of one domain; columns gray input, each model, ground truth."""
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
    return _save(fig, run_dir / "figures" / f"examples_{domain}.png")


def plot_dataset_samples(run_dir: str | Path, n: int = 8) -> plt.Figure:
    """The first ``n`` training images of each domain, as the shards hold them."""
    run_dir = Path(run_dir)
    fig, axes = plt.subplots(len(DOMAINS), n, figsize=(1.6 * n, 1.7 * len(DOMAINS)), squeeze=False)
    for row, domain in zip(axes, DOMAINS):
        shard = load_shard(run_dir, domain, "train")
        for j, ax in enumerate(row):
            if j < len(shard):
                ax.imshow(shard[j])
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(domain)
    fig.suptitle("training images per domain")
    fig.tight_layout()
    return _save(fig, run_dir / "figures" / "dataset_samples.png")


def metric_table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """model x test-domain table of 'mean ± std' for one metric, the best model per column in bold."""
    info = METRICS[metric]
    rows = summary[summary["metric"] == metric]
    table = rows.pivot(index="model", columns="test_domain", values="mean")
    cells = rows.assign(cell=[f"{m:.3f} ± {s:.3f} (n={n})" for m, s, n in zip(rows["mean"], rows["std"], rows["n"])])
    cells = cells.pivot(index="model", columns="test_domain", values="cell")
    for domain in table.columns:
        best = table[domain].idxmax() if info.higher_is_better else table[domain].idxmin()
        cells.loc[best, domain] = f"**{cells.loc[best, domain]}**"
    order = [GRAY, *[m for m in cells.index if m != GRAY]]
    return cells.loc[order, [d for d in DOMAINS if d in cells.columns]]


def results_markdown(run_dir: str | Path) -> str:
    """One model x test-domain table per metric, direction in the heading, best per column in bold."""
    summary = pd.read_csv(Path(run_dir) / "eval" / "summary.csv")
    lines = [
        f"Rows: models (`{GRAY}` = the grayscale input, no colour added); columns: test domain.",
        "Cells: mean ± standard deviation over test images (n images); best per column in bold.",
        "",
    ]
    for metric, info in METRICS.items():
        lines += [f"## {info.label}", "", metric_table(summary, metric).to_markdown(), ""]
    return "\n".join(lines)


def write_report(run_dir: str | Path) -> Path:
    """report.md: the results tables and links to every figure of the run."""
    run_dir = Path(run_dir)
    lines = ["# Cross-domain colorization: results", "", f"Run directory: `{run_dir}`.", ""]
    lines += [results_markdown(run_dir), "## Figures", ""]
    lines += [f"![{png.stem}](figures/{png.name})" for png in sorted((run_dir / "figures").glob("*.png"))]
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
