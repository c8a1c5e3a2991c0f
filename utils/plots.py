"""The figures (seaborn) and report.md: everything read from the run directory, nothing recomputed.

Each figure is saved as a PNG under figures/ and that PNG is returned for the notebook to show.
matplotlib and seaborn are imported by the functions that draw (seaborn, which imports scipy.stats,
only where a seaborn plot is drawn): the evaluate notebook only builds tables, and the train
notebook's loss curves need matplotlib alone; each saves their import time (README, "Start-up").
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from utils.config import DOMAINS, MODEL_DOMAINS, model_dir, write_text_atomic
from utils.data import load_manifest, load_shard
from utils.evaluate import BASELINES, GRAY, TRUTH, seed_averaged
from utils.metrics import METRICS

if TYPE_CHECKING:
    import matplotlib.pyplot as plt
    from IPython.display import Image

LOSS_PANELS = {
    "(a) D_Loss and G_GAN loss": ["loss_D", "loss_G_GAN"],
    "(b) G_Loss, G_L1 (train and val)": ["loss_G", "loss_G_L1", "val_loss_G_L1"],
    "(c) val CIEDE2000 (lower is better)": ["val_ciede2000"],
}


def _save(fig: plt.Figure, path: Path) -> Image:
    """Save the figure as a PNG, and return that PNG for the notebook to show: drawn once (a returned
    figure would be drawn again by the inline backend, 0.2-0.8 s each), and shown as saved."""
    import matplotlib.pyplot as plt
    from IPython.display import Image

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png.getvalue())
    return Image(data=png.getvalue())


def plot_loss_curves(run_dir: str | Path, trained: list[tuple[str, int]], name: str = "loss_curves") -> Image:
    """Paper Fig. 2: loss per epoch, one row per trained (model, seed); saved as figures/<name>.png."""
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    fig, axes = plt.subplots(len(trained), len(LOSS_PANELS), figsize=(16, 3.2 * len(trained)), squeeze=False)
    for row, (model, seed) in zip(axes, trained):
        history = pd.read_csv(model_dir(run_dir, model, seed) / "history.csv")
        for ax, (title, columns) in zip(row, LOSS_PANELS.items()):
            for column in columns:
                ax.plot(history["epoch"], history[column], marker="o", label=column)
            ax.legend(title="loss")
            ylabel = "Delta E00" if columns == ["val_ciede2000"] else "loss (each network minimises its own)"
            ax.set(title=f"{model} model, seed {seed}: {title}", xlabel="epoch", ylabel=ylabel)
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return _save(fig, run_dir / "figures" / f"{name}.png")


def model_order(models: list[str] | np.ndarray) -> list[str]:
    """Baselines first (gray, truth), then the models in their run order."""
    return [*[b for b in BASELINES if b in models], *[m for m in models if m not in BASELINES]]


def model_colors(models: list[str]) -> dict[str, tuple]:
    """One colour per model in every figure: gray baseline gray, truth black, models from seaborn's palette."""
    import seaborn as sns

    palette = sns.color_palette("deep")
    fixed = {GRAY: (0.55, 0.55, 0.55), TRUTH: (0.13, 0.13, 0.13)}
    fixed |= {m: palette[i] for i, m in enumerate(MODEL_DOMAINS)}
    return {m: fixed.get(m, palette[-1]) for m in models}


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
    for i, model in enumerate(order):
        bars = cells.loc[[(d, model) for d in DOMAINS]]
        x = np.arange(len(DOMAINS)) + (i - (len(order) - 1) / 2) * width
        errors = [bars["mean"] - bars["ci_low"], bars["ci_high"] - bars["mean"]]
        ax.bar(x, bars["mean"], width, yerr=errors, capsize=3, color=colors[model], label=model)
        if several_seeds and model not in BASELINES:
            for xi, domain in zip(x, DOMAINS):
                seeds = seed_rows[(seed_rows["model"] == model) & (seed_rows["test_domain"] == domain)]
                ax.scatter(np.full(len(seeds), xi + 0.3 * width), seeds["mean"], s=14, color="white",
                           edgecolor="black", linewidth=0.8, zorder=3, label=point_label)  # fmt: skip
                point_label = None
    ax.set_xticks(np.arange(len(DOMAINS)), DOMAINS)
    ax.legend(title="model", fontsize=8)


def seed_summary(run_dir: Path) -> pd.DataFrame | None:
    """eval/summary_by_seed.csv: each training seed's means (None for a run evaluated before seeds)."""
    path = run_dir / "eval" / "summary_by_seed.csv"
    return pd.read_csv(path) if path.is_file() else None


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
    ax_mean.set(title="(a) mean, bootstrap 95% interval", xlabel="test domain", ylabel=info.label)
    sns.violinplot(
        data=per_image, x="test_domain", y=metric, hue="model", hue_order=order, order=list(DOMAINS),
        palette=colors, inner="quart", cut=0, density_norm="width", linewidth=0.6, ax=ax_dist, legend=False,
    )  # fmt: skip
    ax_dist.set(title="(b) per test image", xlabel="test domain", ylabel=info.label)
    fig.suptitle(f"{info.label}: {info.about}")
    fig.tight_layout()
    return _save(fig, run_dir / "figures" / f"{metric}.png")


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
    fig, axes = plt.subplots(1, len(DOMAINS) + 1, figsize=(5 * (len(DOMAINS) + 1), 4.4))
    for ax, domain in zip(axes, DOMAINS):
        part = shown[shown["test_domain"] == domain]
        sns.scatterplot(data=part, x="colorfulness_truth", y="colorfulness", hue="model", hue_order=order,
                        palette=colors, s=14, alpha=0.7, ax=ax)  # fmt: skip
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
    return _save(fig, run_dir / "figures" / "saturation.png")


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
    return _save(fig, run_dir / "figures" / f"examples_{domain}.png")


def plot_dataset_samples(run_dir: str | Path, n: int = 8) -> Image:
    """The first ``n`` training images of each domain, as the shards hold them."""
    import matplotlib.pyplot as plt

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
    """model x test-domain table of 'mean [95% interval]' for one metric; the best model per column
    (baselines aside from gray; truth excluded) in bold."""
    info = METRICS[metric]
    rows = summary[summary["metric"] == metric]
    cells = rows.assign(
        cell=[f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in zip(rows["mean"], rows["ci_low"], rows["ci_high"])]
    )
    cells = cells.pivot(index="model", columns="test_domain", values="cell")
    if info.ranked:
        for domain in cells.columns:
            candidates = rows[(rows["test_domain"] == domain) & (rows["model"] != TRUTH)]
            best = candidates.loc[info.loss(candidates["mean"]).idxmin(), "model"]
            cells.loc[best, domain] = f"**{cells.loc[best, domain]}**"
    return cells.loc[model_order(list(cells.index)), [d for d in DOMAINS if d in cells.columns]]


def comparison_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Which model is better where, and whether significantly: one row per test domain, metric and pair."""
    table = comparisons.assign(
        metric=comparisons["metric"].map(lambda m: METRICS[m].label),
        pair=comparisons["model_a"] + " vs " + comparisons["model_b"],
        difference=[f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in zip(comparisons["loss_diff"], comparisons["ci_low"], comparisons["ci_high"])],
        p=[f"{p:.2g} (Holm {ph:.2g})" for p, ph in zip(comparisons["p_wilcoxon"], comparisons["p_holm"])],
        verdict=[f"{b} better" if s else "no significant difference" for b, s in zip(comparisons["better"], comparisons["significant"])],
    )  # fmt: skip
    return table[["test_domain", "metric", "pair", "difference", "p", "verdict"]]


def _named(model: str) -> str:
    return {GRAY: "the gray baseline (no colour)", TRUTH: "the truth"}.get(model, f"the {model} model")


def findings_in_words(summary: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """One sentence per test domain and ranked metric: the best model, and whether its lead over
    the runner-up (and over the gray baseline) is significant; then the saturation."""
    lines = []
    for domain in DOMAINS:
        for metric, info in METRICS.items():
            if not info.ranked:
                continue
            rows = summary[
                (summary["test_domain"] == domain) & (summary["metric"] == metric) & (summary["model"] != TRUTH)
            ]
            if rows.empty:
                continue
            ranked = rows.assign(loss=info.loss(rows["mean"])).sort_values("loss")
            best, runner_up = ranked.iloc[0], ranked.iloc[1]
            text = (f"- **{domain} test images, {info.label}**: best is {_named(best.model)} "
                    f"({best['mean']:.3f} [{best.ci_low:.3f}, {best.ci_high:.3f}])")  # fmt: skip
            for other in dict.fromkeys([runner_up.model, GRAY]):  # the runner-up, and gray if it is not
                if other == best.model:
                    continue
                pair = comparisons[(comparisons["test_domain"] == domain) & (comparisons["metric"] == metric)
                                   & comparisons["model_a"].isin([best.model, other])
                                   & comparisons["model_b"].isin([best.model, other])].iloc[0]  # fmt: skip
                verdict = "significantly" if pair.significant else "not significantly"
                role = "the runner-up, " if other == runner_up.model else ""
                text += (f"; {verdict} ahead of {role}{_named(other)} "
                         f"(Wilcoxon p = {pair.p_wilcoxon:.2g}, Holm {pair.p_holm:.2g})")  # fmt: skip
            lines.append(text + ".")
    ratios = summary[(summary["metric"] == "colorfulness_ratio") & ~summary["model"].isin(BASELINES)]
    for row in ratios.itertuples():
        state = (
            "washed out" if row.ci_high < 1 else ("over-saturated" if row.ci_low > 1 else "as colourful as the truth")
        )
        lines.append(f"- Saturation, {_named(row.model)} on {row.test_domain}: {row.mean:.0%} of the truth's "
                     f"colorfulness ([{row.ci_low:.0%}, {row.ci_high:.0%}]): {state}.")  # fmt: skip
    return lines


LITTLE_DATA_IMAGES = 500  # test images per domain below which the report warns
LITTLE_DATA_GROUPS = 20  # test groups (films, shows, photographs) per domain below which it warns
SEED_METRICS = ("ciede2000", "ssim", "colorfulness_ratio")  # the claims' metrics


def data_caveats(run_dir: str | Path) -> list[str]:
    """What the test data can carry: a warning when a domain has few test images or few groups (crops of a
    few photographs are not independent images), and on demo data, that it shows the pipeline, not the paper."""
    run_dir = Path(run_dir)
    test = load_manifest(run_dir).query("split == 'test'")
    record = run_dir / "run.json"
    source = json.loads(record.read_text()).get("parameters", {}).get("source") if record.is_file() else None
    small = []
    for domain in DOMAINS:
        part = test[test["domain"] == domain]
        n, groups = len(part), part["group"].nunique()
        if n < LITTLE_DATA_IMAGES or groups < LITTLE_DATA_GROUPS:
            small.append(f"{domain} {n} images from {groups} group{'s' if groups != 1 else ''}")
    lines = []
    if source == "demo":
        lines.append("> **Demo data.** Procedural cartoon frames and crops of the few colour photographs that ship "
                     "with scikit-image and matplotlib, small images, a short training: this run shows the "
                     "pipeline working, not the paper's result.")  # fmt: skip
    if small:
        lines.append(f"> **Little test data** ({'; '.join(small)}; groups are films, shows or photographs). "
                     f"The intervals treat test images as independent, and images of one group are not: with "
                     f"fewer than {LITTLE_DATA_IMAGES} images or {LITTLE_DATA_GROUPS} groups per domain, read the "
                     "verdicts as the pipeline's output, not as evidence about the paper.")  # fmt: skip
    return [line for text in lines for line in (text, ">")][:-1] if lines else []


def seed_variation_markdown(by_seed: pd.DataFrame | None) -> list[str]:
    """Run-to-run variation: per model, test domain and claim metric, each seed's mean [interval] and the
    range of the seeds' means."""
    lines = ["## Run-to-run variation", ""]
    if by_seed is None or by_seed["seed"].nunique() < 2:
        return lines + ["One training seed: how much the results move between training runs is not measured "
                        "here. `seeds=3` trains and evaluates every model three times (README, \"Seeds\").", ""]  # fmt: skip
    seeds = sorted(by_seed["seed"].unique())
    rows = []
    for (model, domain, metric), part in by_seed.groupby(["model", "test_domain", "metric"], sort=False):
        if metric not in SEED_METRICS:
            continue
        cells = part.set_index("seed")
        row = {"model": model, "test domain": domain, "metric": METRICS[metric].label}
        row |= {f"seed {s}": f"{cells.at[s, 'mean']:.3f} [{cells.at[s, 'ci_low']:.3f}, {cells.at[s, 'ci_high']:.3f}]"
                for s in seeds}  # fmt: skip
        row["range of the seeds' means"] = f"{part['mean'].max() - part['mean'].min():.3f}"
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(["metric", "test domain", "model"], kind="stable")
    return lines + [
        f"Each model trained with {len(seeds)} seeds ({', '.join(map(str, seeds))}: initial weights, batch order "
        "and flips; the same data). Each seed's mean with its bootstrap 95% interval over the test images, and "
        "the range of the seeds' means: when the range is as wide as the gaps between models, one run cannot "
        "rank them. The other tables average each image's score over the seeds.",
        "",
        table.to_markdown(index=False),
        "",
    ]


def claims_section(run_dir: str | Path) -> str:
    """The paper's claims checked (eval/claims.csv, written by evaluation), then what the data can carry."""
    from utils.claims import claims_markdown

    run_dir = Path(run_dir)
    table = pd.read_csv(run_dir / "eval" / "claims.csv", keep_default_na=False)
    return "\n".join([claims_markdown(table), "", *data_caveats(run_dir), ""])


def results_markdown(run_dir: str | Path) -> str:
    """The run-to-run variation, the findings in words, one model x test-domain table per metric, and the
    paired comparisons."""
    run_dir = Path(run_dir)
    summary = pd.read_csv(run_dir / "eval" / "summary.csv")
    comparisons = pd.read_csv(run_dir / "eval" / "comparisons.csv")
    n_images = ", ".join(f"{d}: {int(summary[summary.test_domain == d]['n'].iloc[0])}" for d in DOMAINS)
    lines = [*seed_variation_markdown(seed_summary(run_dir))]
    lines += ["## Findings", "", *findings_in_words(summary, comparisons), ""]
    lines += [
        "## Tables",
        "",
        f"Rows: models; `{GRAY}` = the grayscale input shown as colour (a model must beat it), `{TRUTH}` = the",
        "original through the same Lab round trip (checks the pipeline). Columns: test domain. Cells: mean",
        f"[bootstrap 95% interval] over the test images ({n_images}); best per column in bold.",
        "",
    ]
    for metric, info in METRICS.items():
        lines += [f"### {info.label}", "", f"{info.about}.", "", metric_table(summary, metric).to_markdown(), ""]
    lines += [
        "## Paired comparisons",
        "",
        "Same test images, each pair of models: difference of the metric's loss (value if lower is better,",
        "minus value if higher is better, distance from 1 for ratios), model A minus model B, so negative",
        "favours A; paired bootstrap 95% interval; Wilcoxon signed-rank p, Holm-adjusted within each test",
        "domain and metric; significant when the adjusted p < 0.05 and the interval excludes 0.",
        "",
        comparison_table(comparisons).to_markdown(index=False),
        "",
    ]
    return "\n".join(lines)


def write_partial_report(run_dir: str | Path, partial: dict[str, Any]) -> Path:
    """report.md of a run the time budget cut short (``partial``, as run.json records it): how far each model
    got, what did not run, and how to continue."""
    run_dir = Path(run_dir)
    lines = [
        "# Cross-domain colorization: partial run",
        "",
        f"Run directory: `{run_dir}`.",
        "",
        f"**This run is partial: the {partial['reason']}** before every model had trained all its epochs.",
        "Each model stopped at a checkpoint. Evaluation, the figures and the sample colorizations did not run:",
        "they need finished models, so this report has no results yet.",
        "",
        "| model | trained |",
        "| --- | --- |",
        *(f"| {name} | {epochs} |" for name, epochs in partial["models"].items()),
        "",
        "## How to continue",
        "",
        f"{partial['continue'][0].upper()}{partial['continue'][1:]}.",
        "Training resumes exactly where each model stopped, to the batch; a model already done is not trained again.",
        "",
    ]
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path


def write_report(run_dir: str | Path) -> Path:
    """report.md: the paper's claims checked, the results tables and links to every figure of the run."""
    run_dir = Path(run_dir)
    lines = ["# Cross-domain colorization: results", "", f"Run directory: `{run_dir}`.", ""]
    lines += [claims_section(run_dir), results_markdown(run_dir), "## Figures", ""]
    lines += [f"![{png.stem}](figures/{png.name})" for png in sorted((run_dir / "figures").glob("*.png"))]
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
