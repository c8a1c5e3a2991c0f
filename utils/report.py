"""report.md and the report's tables in words: everything read from the run directory, nothing recomputed.

The claims checked (eval/claims.csv) open the report, in a compact table with each claim in full below it;
then the test data's groups, what they can carry, the run-to-run variation, the findings in words, a
model x test-domain table per metric and the paired comparisons. Every table gives the test groups beside
the images: the group is the unit of evidence (utils.statistics).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from utils.claims import CONTRADICTED, HOLDS
from utils.config import KIT_ROOT
from utils.errors import read_json_file
from utils.metrics import METRICS
from utils.plots import model_order, seed_summary, test_domains
from utils.run_dir import write_text_atomic
from utils.shards import load_manifest, prepare_again
from utils.statistics import ALPHA, BASELINES, GRAY, TRUTH, minimum_groups


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
    domains = test_domains(rows)
    table = cells.loc[model_order(list(cells.index)), domains]
    first = rows.drop_duplicates("test_domain").set_index("test_domain")
    table.loc["images (groups)"] = [f"{first.at[d, 'n']} ({first.at[d, 'n_groups']})" for d in domains]
    return table


def comparison_verdict(row: pd.Series) -> str:
    """One comparison in words: the better model, no significant difference, or too few groups to tell."""
    if row["significant"]:
        return f"{row['better']} better"
    if row["n_groups"] < row["min_groups"]:
        return f"cannot tell: {row['min_groups']} groups needed"
    return "no significant difference"


def comparison_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Which model is better where, and whether significantly: one row per test domain, metric and pair."""
    table = comparisons.assign(
        metric=comparisons["metric"].map(lambda m: METRICS[m].label),
        pair=comparisons["model_a"] + " vs " + comparisons["model_b"],
        difference=[f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in zip(comparisons["loss_diff"], comparisons["ci_low"], comparisons["ci_high"])],
        p=[f"{p:.2g} (Holm {ph:.2g})" for p, ph in zip(comparisons["p_wilcoxon"], comparisons["p_holm"])],
        images=[f"{n} ({g})" for n, g in zip(comparisons["n"], comparisons["n_groups"])],
        verdict=[comparison_verdict(row) for _, row in comparisons.iterrows()],
    )  # fmt: skip
    return table[["test_domain", "metric", "pair", "images", "difference", "p", "verdict"]].rename(
        columns={"images": "images (groups)"}
    )


def _named(model: str) -> str:
    return {GRAY: "the gray baseline (no colour)", TRUTH: "the truth"}.get(model, f"the {model} model")


def findings_in_words(summary: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """One sentence per test domain and ranked metric: the best model, and whether its lead over
    the runner-up (and over the gray baseline) is significant; then the saturation."""
    lines = []
    for domain in test_domains(summary):
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
                if pair.n_groups < pair.min_groups:
                    verdict = f"too few groups ({pair.min_groups} needed) to tell whether it is"
                role = "the runner-up, " if other == runner_up.model else ""
                text += (f"; {verdict} ahead of {role}{_named(other)} (Wilcoxon over {pair.n_groups} groups: "
                         f"p = {pair.p_wilcoxon:.2g}, Holm {pair.p_holm:.2g})")  # fmt: skip
            lines.append(text + ".")
    ratios = summary[(summary["metric"] == "colorfulness_ratio") & ~summary["model"].isin(BASELINES)]
    for row in ratios.itertuples():
        state = (
            "washed out" if row.ci_high < 1 else ("over-saturated" if row.ci_low > 1 else "as colourful as the truth")
        )
        if row.n_groups < minimum_groups(1):  # an interval over so few groups is read no more than a test would be
            state = f"{row.n_groups} groups, too few to tell (at least {minimum_groups(1)} are needed)"
        lines.append(f"- Saturation, {_named(row.model)} on {row.test_domain}: {row.mean:.0%} of the truth's "
                     f"colorfulness ([{row.ci_low:.0%}, {row.ci_high:.0%}]): {state}.")  # fmt: skip
    return lines


LITTLE_DATA_IMAGES = 500  # test images per domain below which the report warns
LITTLE_DATA_GROUPS = 20  # test groups (films, shows, photographs) per domain below which it warns
SEED_METRICS = ("ciede2000", "ssim", "colorfulness_ratio")  # the claims' metrics
CLAIM_HEADERS = {"claim": "claim", "reading": "reading", "key_figures": "key figures", "verdict": "verdict",
                 "seeds_holding": "holds in seeds"}  # fmt: skip


def shown_run_dir(run_dir: str | Path) -> str:
    """The run directory as the report names it: relative to the kit when inside it, else by its name
    (never an absolute path of the machine that ran it)."""
    path = Path(run_dir).resolve()
    return path.relative_to(KIT_ROOT).as_posix() if path.is_relative_to(KIT_ROOT) else path.name


def groups_per_domain(run_dir: Path) -> dict[str, dict[str, int]]:
    """Per test domain: its images and groups (data/manifest.csv), and when prepare recorded them
    (data/prepared.json's "groups"), the largest group and the images merged as near-duplicates."""
    test = load_manifest(run_dir).query("split == 'test'")
    record = run_dir / "data" / "prepared.json"
    prepared = read_json_file(record, prepare_again(run_dir)) if record.is_file() else {}
    recorded = prepared.get("groups", {}) if isinstance(prepared, dict) else {}
    counts = {}
    for domain in pd.unique(test["domain"]):
        part = test[test["domain"] == domain]
        extra = recorded.get(domain, {}).get("test", {})
        counts[domain] = {"images": len(part), "groups": part["group"].nunique()}
        counts[domain] |= {k: int(extra[k]) for k in ("largest_group", "merged_images") if k in extra}
    return counts


def counted(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def groups_line(counts: dict[str, dict[str, int]]) -> str:
    """'Test data: cartoon 64 images in 12 groups (largest 10 images; 3 merged as near-duplicates), ...'."""
    parts = []
    for domain, c in counts.items():
        details = [f"largest {counted(c['largest_group'], 'image')}"] if "largest_group" in c else []
        details += [f"{c['merged_images']} merged as near-duplicates"] if "merged_images" in c else []
        shown = f"{domain} {counted(c['images'], 'image')} in {counted(c['groups'], 'group')}"
        parts.append(shown + (f" ({'; '.join(details)})" if details else ""))
    return "Test data: " + ", ".join(parts) + "."


def data_caveats(run_dir: str | Path) -> list[str]:
    """What the test data can carry: a warning when a domain has few test images or few groups (crops of a
    few photographs are one piece of evidence each, not many), and on demo data, that it shows the pipeline,
    not the paper."""
    run_dir = Path(run_dir)
    record = run_dir / "run.json"
    source = json.loads(record.read_text()).get("parameters", {}).get("source") if record.is_file() else None
    comparisons = run_dir / "eval" / "comparisons.csv"
    needed = int(pd.read_csv(comparisons)["min_groups"].max()) if comparisons.is_file() else minimum_groups(1)
    small = [f"{domain} {counted(c['images'], 'image')} from {counted(c['groups'], 'group')}"
             for domain, c in groups_per_domain(run_dir).items()
             if c["images"] < LITTLE_DATA_IMAGES or c["groups"] < LITTLE_DATA_GROUPS]  # fmt: skip
    lines = []
    if source == "demo":
        lines.append("> **Demo data.** Procedural cartoon frames and crops of the few colour photographs that ship "
                     "with scikit-image and matplotlib, small images, a short training: this run shows the "
                     "pipeline working, not the paper's result.")  # fmt: skip
    if small:
        lines.append(f"> **Little test data** ({'; '.join(small)}; groups are films, shows, photographs or "
                     "clusters of near-duplicate frames). Intervals resample whole groups and the tests run over "
                     f"groups, so the evidence is the number of groups, not of images: with fewer than {needed} "
                     f"groups in a domain no paired comparison there can reach Holm p < {ALPHA} (its verdict says "
                     f"so), and with fewer than {LITTLE_DATA_GROUPS} the intervals are rough. Read the verdicts as "
                     "the pipeline's output, not as evidence about the paper.")  # fmt: skip
    return [line for text in lines for line in (text, ">")][:-1] if lines else []


def claims_markdown(table: pd.DataFrame) -> str:
    """The report's opening section: how to read it, the compact table of :func:`claims.assess_claims` (also as
    read back from eval/claims.csv), then each claim in full: the paper's words, what is measured, what it
    says in correct terms and this run's numbers."""
    shown = table.astype(str).apply(lambda column: column.str.replace("|", "\\|", regex=False))
    repeated = shown["claim"].eq(shown["claim"].shift())
    decided = shown["verdict"].isin([HOLDS, CONTRADICTED])
    compact = shown.assign(claim=("(" + shown["claim"] + ") " + shown["figure"]).mask(repeated, ""),
                           key_figures=shown["key_figures"].mask(repeated, ""),
                           verdict=shown["verdict"].mask(decided, "**" + shown["verdict"] + "**"))  # fmt: skip
    in_full = []
    for key, rows in table.groupby("claim", sort=False):
        first = rows.iloc[0]
        readings = "; ".join(f"*{r.reading}*: {r.in_correct_terms}" for r in rows.itertuples())
        in_full.append(f"- **({key}) {first['figure']}.** The paper: \u201c{first['paper_says']}\u201d. Measured: "
                       f"{first['measurement']}. In correct terms, {readings}. This run: {first['this_run']}.")  # fmt: skip
    return "\n".join([
        "## Does the paper hold?",
        "",
        "Each claim of the paper's Results section, checked on this run's test images. CIEDE2000 is a colour "
        "distance: **lower is better**. The paper read it the other way round, so claims (a)-(c) have two "
        "readings: *as stated* (the named models have the higher CIEDE2000, what its bars and words say) and "
        "*as meant* (they have the better colour, the lower CIEDE2000).",
        "",
        "The unit of evidence is the test group: a film, a show, a photograph, a cluster of near-duplicate "
        "frames (crops of one photograph are one piece of evidence, not many). Orderings (a)-(e) are decided by "
        "paired comparisons: each image's difference between two models, averaged within its group, and a "
        "Wilcoxon signed-rank test over the groups (exact for up to 50 groups); the mean difference's 95% interval "
        "comes from a bootstrap that resamples whole groups. Holm adjusts the p-values of each test domain and "
        "metric together: every pair of the gray baseline and the trained models (the paired comparisons below), "
        "since a reader may pick any pair of that table. (g) is one Holm family over every model and test domain, "
        "since it claims all of them at once. *holds* = every comparison the claim needs is significant its way, "
        "*contradicted* = one is significant the other way, *inconclusive* = the data cannot tell; with too few "
        f"groups for any p < {ALPHA}, the verdict says how many are needed. Key figures: the named model minus "
        "the other, in the metric's units, with its 95% interval. *Holds in seeds*: the same verdict on each "
        "training seed's models alone.",
        "",
        compact[list(CLAIM_HEADERS)].rename(columns=CLAIM_HEADERS).to_markdown(index=False),
        "",
        "### The claims in full",
        "",
        *in_full,
    ])  # fmt: skip


def seed_variation_markdown(by_seed: pd.DataFrame | None) -> list[str]:
    """Run-to-run variation: per model, test domain and claim metric, each seed's mean [interval] and the
    range of the seeds' means."""
    lines = ["## Run-to-run variation", ""]
    if by_seed is None or by_seed["seed"].nunique() < 2:
        return lines + ["One training seed: how much the results move between training runs is not measured "
                        "here. `seeds=3` trains and evaluates every model three times (docs/running.md, \"Seeds\").", ""]  # fmt: skip
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
        if "n_groups" in part.columns:
            row["images (groups)"] = f"{part['n'].iloc[0]} ({part['n_groups'].iloc[0]})"
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(["metric", "test domain", "model"], kind="stable")
    return lines + [
        f"Each model trained with {len(seeds)} seeds ({', '.join(map(str, seeds))}: initial weights, batch order "
        "and flips; the same data). Each seed's mean with its 95% interval from a bootstrap that resamples the "
        "test groups, and the range of the seeds' means: when the range is as wide as the gaps between models, "
        "one run cannot rank them. The other tables average each image's score over the seeds.",
        "",
        table.to_markdown(index=False),
        "",
    ]


def claims_section(run_dir: str | Path) -> str:
    """The paper's claims checked (eval/claims.csv, written by evaluation), the test data, and what it can carry."""
    run_dir = Path(run_dir)
    table = pd.read_csv(run_dir / "eval" / "claims.csv", keep_default_na=False)
    return "\n".join(
        [claims_markdown(table), "", groups_line(groups_per_domain(run_dir)), "", *data_caveats(run_dir), ""]
    )


def gap_reading(row: pd.Series) -> str:
    """A generalization gap in words: worse or better out of its domain, no clear gap, or too few groups."""
    fewest = min(row["n_groups_in"], row["n_groups_out"])
    if fewest < minimum_groups(1):
        return f"too few groups to tell ({fewest}; at least {minimum_groups(1)} are needed)"
    if row["ci_low"] > 0:
        return "worse out of its domain"
    return "better out of its domain" if row["ci_high"] < 0 else "no clear gap"


def generalization_markdown(run_dir: Path) -> list[str]:
    """The generalization gap of each domain's model (eval/generalization.csv), as a table; none without it."""
    path = run_dir / "eval" / "generalization.csv"
    gaps = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    if gaps.empty:
        return []
    table = pd.DataFrame({
        "model": gaps["model"],
        "in its domain": [f"{v:.3f}" for v in gaps["in_mean"]],
        "out of it": [f"{v:.3f}" for v in gaps["out_mean"]],
        "gap [95% interval]": [f"{g:+.3f} [{lo:+.3f}, {hi:+.3f}]" for g, lo, hi in zip(gaps["gap"], gaps["ci_low"], gaps["ci_high"])],
        "groups (in / out)": [f"{a} / {b}" for a, b in zip(gaps["n_groups_in"], gaps["n_groups_out"])],
        "reading": [gap_reading(row) for _, row in gaps.iterrows()],
    })  # fmt: skip
    return [
        "## Generalization gap",
        "",
        "Each domain's model, CIEDE2000 (lower is better) on the other domains' test images (each domain weighted",
        "equally) less on its own; the interval from a bootstrap that resamples each domain's test groups.",
        "",
        table.to_markdown(index=False),
        "",
    ]


def results_markdown(run_dir: str | Path) -> str:
    """The run-to-run variation, the findings in words, one model x test-domain table per metric, and the
    paired comparisons."""
    run_dir = Path(run_dir)
    summary = pd.read_csv(run_dir / "eval" / "summary.csv")
    comparisons = pd.read_csv(run_dir / "eval" / "comparisons.csv")
    sizes = summary.drop_duplicates("test_domain").set_index("test_domain")
    n_images = ", ".join(
        f"{d}: {sizes.at[d, 'n']} images in {sizes.at[d, 'n_groups']} groups" for d in test_domains(summary)
    )
    lines = [*seed_variation_markdown(seed_summary(run_dir))]
    lines += ["## Findings", "", *findings_in_words(summary, comparisons), ""]
    lines += generalization_markdown(run_dir)
    lines += [
        "## Tables",
        "",
        f"Rows: models; `{GRAY}` = the grayscale input shown as colour (a model must beat it), `{TRUTH}` = the",
        "original through the same Lab round trip (checks the pipeline). Columns: test domain. Cells: mean over",
        f"the test images [95% interval from a bootstrap that resamples the test groups] ({n_images}); best per",
        "column in bold.",
        "",
    ]
    for metric, info in METRICS.items():
        lines += [f"### {info.label}", "", f"{info.about}.", "", metric_table(summary, metric).to_markdown(), ""]
    lines += [
        "## Paired comparisons",
        "",
        "Same test images; each model against the gray baseline and against the best, and every pair of the",
        "paper's models (with the paper's three, every pair): difference of the metric's loss (value if lower is better,",
        "minus value if higher is better, distance from 1 for ratios), model A minus model B, so negative",
        "favours A; its 95% interval from a bootstrap that resamples the test groups; Wilcoxon signed-rank p over",
        "the groups' mean differences, Holm-adjusted within each test domain and metric (all the pairs of that",
        "domain and metric, since a reader may pick any of them); significant when the adjusted p < 0.05 and the",
        "interval excludes 0. *Cannot tell*: fewer groups than that family needs for an adjusted p < 0.05.",
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
        f"Run directory: `{shown_run_dir(run_dir)}`.",
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
    lines = ["# Cross-domain colorization: results", "", f"Run directory: `{shown_run_dir(run_dir)}`.", ""]
    lines += [claims_section(run_dir), results_markdown(run_dir), "## Figures", ""]
    lines += [f"![{png.stem}](figures/{png.name})" for png in sorted((run_dir / "figures").glob("*.png"))]
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
