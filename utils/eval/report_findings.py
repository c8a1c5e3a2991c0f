"""What report.md says in words and compact tables: the answer, the findings (each distinct thing once), the
comparisons that decide something, the minimum-groups rule, the run-to-run variation. Read from the evaluation's
tables (eval/*.csv), nothing recomputed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from utils.core.statistics import ALPHA, BASELINES, GRAY, TRUTH, minimum_groups
from utils.eval.claims import CONTRADICTED, HOLDS, INCONCLUSIVE, NOT_TESTABLE
from utils.eval.plots import model_order, test_domains
from utils.imaging.metric_table import METRICS

ANSWER_METRIC = "ciede2000"  # the primary metric: the heatmap's and the answer's
REPORT_METRICS = ("ciede2000", "ssim")  # the compact tables and the comparisons shown; the rest in eval/*.csv


@dataclass(frozen=True)
class RunTables:
    """The evaluation's tables as the report reads them."""

    summary: pd.DataFrame
    comparisons: pd.DataFrame
    claims: pd.DataFrame  # as text: empty cells are ""
    gaps: pd.DataFrame
    by_seed: pd.DataFrame | None
    parameters: dict[str, Any]


def counted(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _named(model: str) -> str:
    return {GRAY: "the gray baseline", TRUTH: "the truth"}.get(model, f"the {model} model")


def best_word(metric: str) -> str:
    """``lowest CIEDE2000``, ``highest SSIM``, ``closest to 1 in colorfulness ratio``."""
    info = METRICS[metric]
    return {"lower": "lowest", "higher": "highest"}.get(info.goal, "closest to 1 in") + f" {info.name}"


def metric_table(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """model x test-domain table of 'mean [95% interval]' for one metric; the best model per column (baselines
    aside from gray; truth excluded) in bold; the last row: each domain's test images (groups)."""
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


def ranked(summary: pd.DataFrame, domain: str, metric: str) -> pd.DataFrame:
    """One test domain's models (the truth aside, gray among them) from best to worst on ``metric``."""
    rows = summary[(summary["test_domain"] == domain) & (summary["metric"] == metric) & (summary["model"] != TRUTH)]
    return rows.assign(loss=METRICS[metric].loss(rows["mean"])).sort_values("loss", kind="stable")


def pair(comparisons: pd.DataFrame, domain: str, metric: str, a: str, b: str) -> pd.Series | None:
    rows = comparisons[
        (comparisons["test_domain"] == domain)
        & (comparisons["metric"] == metric)
        & comparisons["model_a"].isin([a, b])
        & comparisons["model_b"].isin([a, b])
    ]
    return rows.iloc[0] if len(rows) else None


def lead(comparisons: pd.DataFrame, domain: str, metric: str, best: str, other: str) -> str:
    """Whether ``best`` is significantly ahead of ``other``, in words."""
    row = pair(comparisons, domain, metric, best, other)
    if row is None:
        return f"ahead of {_named(other)}"
    how = "significantly" if row["significant"] else "not significantly"
    return f"ahead of {_named(other)}, {how} (Holm p {row['p_holm']:.2g})"


def too_few_groups(comparisons: pd.DataFrame, domain: str) -> tuple[int, int] | None:
    """(the domain's test groups, the fewest its comparisons need) when it has fewer, else None."""
    rows = comparisons[comparisons["test_domain"] == domain]
    if rows.empty:
        return None
    groups, needed = int(rows["n_groups"].iloc[0]), int(rows["min_groups"].max())
    return (groups, needed) if groups < needed else None


def domain_finding(tables: RunTables, domain: str) -> str:
    """One bullet per test domain: the best on each report metric, and what its lead is worth, said once."""
    summary, comparisons = tables.summary, tables.comparisons
    first = summary[summary["test_domain"] == domain].iloc[0]
    text = f"- **{domain}** ({counted(first['n'], 'image')}, {counted(first['n_groups'], 'group')}): "
    short = too_few_groups(comparisons, domain)
    parts = []
    for metric in REPORT_METRICS:
        order = ranked(summary, domain, metric)
        best, runner_up = order.iloc[0], order.iloc[1]
        said = f"{best_word(metric)}: {_named(best.model)} ({best['mean']:.3f})"
        if short is None:
            said += f", {lead(comparisons, domain, metric, best.model, runner_up.model)}"
        parts.append(said)
    text += "; ".join(parts) + "."
    if short is not None:
        text += (
            f" Too few groups to tell any two models apart: {short[0]}, where this domain's comparisons need "
            f"{short[1]} (below)."
        )
    return text


def saturation_finding(summary: pd.DataFrame) -> str:
    """The outputs' colorfulness against the truth's, grouped by what the intervals say."""
    rows = summary[(summary["metric"] == "colorfulness_ratio") & ~summary["model"].isin(BASELINES)]
    if rows.empty:
        return ""
    needed = minimum_groups(1)
    short = rows[rows["n_groups"] < needed].drop_duplicates("test_domain")
    states: dict[str, list[str]] = {}
    for row in rows[rows["n_groups"] >= needed].itertuples():
        state = "washed out" if row.ci_high < 1 else "over-saturated" if row.ci_low > 1 else "as colourful as the truth"
        states.setdefault(state, []).append(f"{row.model} on {row.test_domain} {row.mean:.0%}")
    said = [f"{state}: {', '.join(cells)}" for state, cells in states.items()]
    if len(short):
        cells = ", ".join(f"{row.test_domain} ({row.n_groups})" for row in short.itertuples())
        said.append(f"too few groups to tell on {cells}")
    return (
        f"- **Saturation**, the outputs' colorfulness as a share of the truth's (95% interval below 1: washed "
        f"out; an interval needs {needed} groups): {'; '.join(said)}."
    )


def gap_reading(row: pd.Series) -> str:
    """A generalization gap in words: worse or better out of its domain, no clear gap, or too few groups."""
    fewest = min(row["n_groups_in"], row["n_groups_out"])
    if fewest < minimum_groups(1):
        return f"too few groups to tell ({fewest})"
    if row["ci_low"] > 0:
        return "worse out of its domain"
    return "better out of its domain" if row["ci_high"] < 0 else "no clear gap"


def gap_lines(gaps: pd.DataFrame) -> list[str]:
    """Each domain's model: its CIEDE2000 out of its domain less in it (eval/generalization.csv)."""
    if gaps.empty:
        return []
    said = "; ".join(
        f"{row['model']} {row['gap']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]: {gap_reading(row)}"
        for _, row in gaps.iterrows()
    )
    return [
        f"- **Generalization gap**, CIEDE2000 on the other domains' test images less on its own (each domain "
        f"resampled by its groups): {said}."
    ]


def findings_lines(tables: RunTables) -> list[str]:
    lines = [domain_finding(tables, d) for d in test_domains(tables.summary)]
    lines += [line for line in [saturation_finding(tables.summary)] if line]
    return lines + gap_lines(tables.gaps)


def deciding_comparisons(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The comparisons that decide something, on the report's metrics: the significant ones, and on each test
    domain and metric the best model against the runner-up (by the comparisons' own means)."""
    shown = comparisons[comparisons["metric"].isin(REPORT_METRICS)]
    keep = shown["significant"].astype(bool)
    for (_, metric), part in shown.groupby(["test_domain", "metric"], sort=False):
        means = pd.concat([part.set_index("model_a")["mean_a"], part.set_index("model_b")["mean_b"]])
        losses = METRICS[metric].loss(means.groupby(level=0).first()).sort_values(kind="stable")
        best, runner_up = losses.index[:2]
        keep |= shown.index.isin(
            part[part["model_a"].isin([best, runner_up]) & part["model_b"].isin([best, runner_up])].index
        )
    chosen = shown[keep]
    return pd.DataFrame(
        {
            "test domain": chosen["test_domain"],
            "metric": chosen["metric"].map(lambda m: METRICS[m].name),
            "A vs B": chosen["model_a"] + " vs " + chosen["model_b"],
            "difference [95% interval]": [
                f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                for d, lo, hi in zip(chosen["loss_diff"], chosen["ci_low"], chosen["ci_high"])
            ],
            "Holm p": [f"{p:.2g}" for p in chosen["p_holm"]],
            "verdict": [comparison_verdict(row) for _, row in chosen.iterrows()],
        }
    )


def comparison_verdict(row: pd.Series) -> str:
    """One comparison in words: the better model, no significant difference, or too few groups to tell."""
    if row["significant"]:
        return f"{row['better']} better"
    if row["n_groups"] < row["min_groups"]:
        return f"cannot tell: {row['min_groups']} groups needed"
    return "no significant difference"


def comparison_table(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Every comparison, one row per test domain, metric and pair (the evaluate notebook shows it)."""
    table = comparisons.assign(
        metric=comparisons["metric"].map(lambda m: METRICS[m].label),
        pair=comparisons["model_a"] + " vs " + comparisons["model_b"],
        difference=[
            f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            for d, lo, hi in zip(comparisons["loss_diff"], comparisons["ci_low"], comparisons["ci_high"])
        ],
        p=[f"{p:.2g} (Holm {ph:.2g})" for p, ph in zip(comparisons["p_wilcoxon"], comparisons["p_holm"])],
        images=[f"{n} ({g})" for n, g in zip(comparisons["n"], comparisons["n_groups"])],
        verdict=[comparison_verdict(row) for _, row in comparisons.iterrows()],
    )
    return table[["test_domain", "metric", "pair", "images", "difference", "p", "verdict"]].rename(
        columns={"images": "images (groups)"}
    )


def minimum_groups_lines(tables: RunTables) -> list[str]:
    """The one rule for the fewest groups a verdict needs, and its number for each family of tests in this run."""
    families = [("one test, or one interval: (f), a generalization gap, a saturation interval", 1)]
    per_family = tables.comparisons.groupby(["test_domain", "metric"]).size()
    families += [
        ("the paired comparisons of one test domain and metric, Holm over them", int(k))
        for k in sorted(per_family.unique())
    ]
    saturation = tables.claims[(tables.claims["claim"] == "g") & (tables.claims["tests"] != "")]
    families += [("(g): every model on every test domain, one Holm family", int(k)) for k in saturation["tests"][:1]]
    rows = [{"family of tests": name, "tests": k, "groups needed": minimum_groups(k)} for name, k in families]
    return [
        f"A test over n groups cannot go below p = {ALPHA} with too few of them: the exact signed-rank test's "
        "smallest two-sided p over n groups is 2 / 2^n (every group's difference the same way), and Holm "
        "multiplies a family's smallest p by the family's size k. The fewest groups is the smallest n with "
        f"k x 2 / 2^n < {ALPHA}; an interval is held to one test's number. The numbers differ with the family:",
        "",
        pd.DataFrame(rows).to_markdown(index=False),
    ]


def seed_lines(tables: RunTables) -> list[str]:
    """The run-to-run variation: the range of the training seeds' means per model and test domain."""
    by_seed = tables.by_seed
    if by_seed is None or by_seed["seed"].nunique() < 2:
        return [
            "One training seed: how much the results move between training runs is not measured here; "
            "`seeds=3` trains and evaluates every model three times."
        ]
    shown = by_seed[by_seed["metric"].isin(REPORT_METRICS) & ~by_seed["model"].isin(BASELINES)]
    ranges = shown.groupby(["model", "test_domain", "metric"], sort=False)["mean"].agg(lambda m: m.max() - m.min())
    table = ranges.unstack("metric").rename(columns=lambda m: f"{METRICS[m].name}: range of the seeds' means")
    return [
        f"{by_seed['seed'].nunique()} training seeds per model (initial weights, batch order, flips; the same "
        "data). When a range is as wide as the gaps between models, one run cannot rank them; the other tables "
        "average each image's score over the seeds.",
        "",
        table.round(3).reset_index().to_markdown(index=False),
    ]


def answer_lines(tables: RunTables) -> list[str]:
    """What the run shows, in at most three lines: the claims, the best colour per test domain, the caveat."""
    claims = tables.claims.drop_duplicates(["claim", "reading"])
    if (claims["verdict"] == NOT_TESTABLE).all():
        lines = [f"**The paper's claims**: not testable here ({claims['reason'].iloc[0]})."]
    else:
        tally = claims["verdict"].value_counts()
        counts = ", ".join(f"{tally[v]} {v}" for v in (HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE) if v in tally)
        lines = [f"**The paper's claims**, {len(claims)} readings: {counts}."]
    best = []
    for domain in test_domains(tables.summary):
        order = ranked(tables.summary, domain, ANSWER_METRIC)
        short = too_few_groups(tables.comparisons, domain)
        worth = (
            f"too few groups to tell ({short[0]}; {short[1]} needed)"
            if short
            else lead(tables.comparisons, domain, ANSWER_METRIC, order.iloc[0]["model"], order.iloc[1]["model"])
        )
        best.append(f"on {domain} test images {_named(order.iloc[0]['model'])}, {worth}")
    lines.append(f"**Best colour** ({best_word(ANSWER_METRIC)}): {'; '.join(best)}.")
    if tables.parameters.get("source") == "demo":
        lines.append("**Demo data**: this run shows the pipeline working, not the paper's result.")
    return lines
