"""The paper's claims (its Results section), checked on a run's own test scores.

Each claim is declared once (:data:`CLAIMS`) with the paper's words, what is measured and what the
claim says in correct terms; its verdict comes from the run's data alone, with the test group (a film, a
show, a photograph) as the unit of evidence (utils.core.statistics):

- Orderings (a)-(e): the paired comparisons of :func:`statistics.compare_models` (Wilcoxon signed-rank
  over groups, Holm within test domain and metric, cluster-bootstrap interval). ``holds``: every pair the
  claim needs is significant in the claimed direction; ``contradicted``: at least one is significant the
  other way; else inconclusive. The paper read CIEDE2000, a distance, as "higher is better", so (a)-(c)
  have two readings: *as stated* (the named models have the higher CIEDE2000, what its bars show) and
  *as meant* (they have the better colour: the lower CIEDE2000).
- (f) SSIM differs little between models next to CIEDE2000: :func:`statistics.spread_ratio`.
- (g) the outputs lack saturation: :func:`statistics.saturation_tests`.

A test domain with fewer groups than its test can reach significance with makes the verdict "inconclusive at this
n", its ``reason`` "N groups of ... test images; at least M are needed ...". With several training seeds, the same verdicts are
computed on each seed's own table, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.core import statistics
from utils.core.domains import MIXED, PAPER_DOMAINS, paper_domains_present
from utils.core.metric_table import METRICS
from utils.core.statistics import ALPHA, GRAY, minimum_groups

HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE = "holds", "contradicted", "inconclusive at this n", "not testable"
AS_STATED, AS_MEANT, ONE_READING = "as stated", "as meant", "one reading"
# the test images and groups each claim reads, one column per paper domain (empty where it reads none there)
SIZE_COLUMNS = [f"{kind}_{domain}" for domain in PAPER_DOMAINS for kind in ("n", "n_groups")]
CLAIM_COLUMNS = [
    "claim", "figure", "reading", "paper_says", "measurement", "in_correct_terms", "this_run", "verdict", "reason",
    "seeds_holding", "key_figures", *SIZE_COLUMNS, "tests", "min_groups",
]  # fmt: skip
# tests: how many tests share the Holm family the verdict is adjusted over (1 for an interval); min_groups: the
# fewest groups with which that family can decide (utils.core.statistics.minimum_groups)
DIGITS = {"ciede2000": 2, "ssim": 3, "colorfulness_ratio": 2}  # decimals shown per metric


@dataclass(frozen=True)
class Reading:
    """One way to read a claim: its name, what it then says in correct terms, and for an ordering
    whether the named models' metric value is the higher one."""

    name: str
    in_correct_terms: str
    named_higher: bool = True


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how it is tested: ``test`` is "order" (``named`` against each of
    ``others`` on ``metric`` and ``test_domain``), "spread" (f) or "saturation" (g)."""

    key: str
    figure: str
    paper_says: str
    measurement: str
    readings: tuple[Reading, ...]
    test: str
    test_domain: str = ""
    metric: str = ""
    named: tuple[str, ...] = ()
    others: tuple[str, ...] = ()


# (a) and (c): the same claim, "mixed scores best", on each test domain; read both ways
MIXED_BEST_BY_CIEDE2000 = (
    Reading(AS_STATED, "mixed has the highest CIEDE2000: its colours are the furthest from the truth"),
    Reading(AS_MEANT, "mixed has the lowest CIEDE2000: its colours are the closest to the truth", named_higher=False),
)

CLAIMS: tuple[Claim, ...] = (
    Claim(
        key="a", figure="Fig. 4a", test="order", test_domain="cartoon", metric="ciede2000",
        named=("mixed",), others=("cartoon", "movie"),
        paper_says="the average score for the dataset trained with mixed images is higher compared to other scores, "
        "with it consistently yielding better results",
        measurement="CIEDE2000 on cartoon test images: mixed against the cartoon and movie models",
        readings=MIXED_BEST_BY_CIEDE2000,
    ),
    Claim(
        key="b", figure="Fig. 4a", test="order", test_domain="cartoon", metric="ciede2000",
        named=("cartoon", "mixed"), others=("movie",),
        paper_says="in instances where a cartoon dataset was present, it demonstrated superior performance compared "
        "to the movie dataset",
        measurement="CIEDE2000 on cartoon test images: the cartoon and mixed models each against the movie model",
        readings=(
            Reading(AS_STATED, "cartoon and mixed have a higher CIEDE2000 than movie: worse colour"),
            Reading(AS_MEANT, "cartoon and mixed have a lower CIEDE2000 than movie: better colour", named_higher=False),
        ),
    ),
    Claim(
        key="c", figure="Fig. 4b", test="order", test_domain="movie", metric="ciede2000",
        named=("mixed",), others=("cartoon", "movie"),
        paper_says="the mixed dataset exhibits significantly higher scores compared to others, reflecting "
        "outstanding performance",
        measurement="CIEDE2000 on movie (real) test images: mixed against the cartoon and movie models",
        readings=MIXED_BEST_BY_CIEDE2000,
    ),
    Claim(
        key="d", figure="Fig. 5a", test="order", test_domain="cartoon", metric="ssim",
        named=("movie",), others=("cartoon", "mixed"),
        paper_says="when using Cartoon images as input, our model using the Movie has a higher SSIM Score",
        measurement="SSIM on cartoon test images: movie against the cartoon and mixed models",
        readings=(Reading(ONE_READING, "movie has the highest SSIM: the best structure (SSIM is read the right way)"),),
    ),
    Claim(
        key="e", figure="Fig. 5b", test="order", test_domain="movie", metric="ssim",
        named=("mixed",), others=("cartoon", "movie"),
        paper_says="using real images as input makes our Mix model the worst overall",
        measurement="SSIM on movie (real) test images: mixed against the cartoon and movie models",
        readings=(Reading(ONE_READING, "mixed has the lowest SSIM: the worst structure", named_higher=False),),
    ),
    Claim(
        key="f", figure="Fig. 5 vs 4", test="spread",
        paper_says="the differences among the scores is fairly minimum, in contrast to the said score",
        measurement="per test domain: (max - min of the models' means) / pooled per-image SD, SSIM's over "
        "CIEDE2000's; holds when the ratio's 95% interval (a bootstrap resampling the test groups, the same "
        "groups for every model and both metrics) lies below 1 on every test domain",
        readings=(
            Reading(ONE_READING, "on every test domain the models' SSIM means lie fewer per-image standard "
                    "deviations apart than their CIEDE2000 means"),
        ),
    ),
    Claim(
        key="g", figure="Sec. 3.1, App. A.4", test="saturation",
        paper_says="a general flaw of the colorized images produced by our models was a lack of saturation",
        measurement="colorfulness of each model's output / the truth's, per image; per model and test domain, "
        "its mean with a group-resampled 95% interval, and a Wilcoxon signed-rank test over the groups' mean "
        "ratio minus 1, Holm over every model and test domain",
        readings=(
            Reading(ONE_READING, "every model's outputs are less colourful than the originals on every test domain "
                    "(Hasler-Suesstrunk colorfulness)"),
        ),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Evidence:
    """What the verdicts read from one per-image table: its trained models and test domains, the paired
    comparisons, (f)'s spread ratios, (g)'s colourfulness tests, and each test domain's images and groups."""

    models: tuple[str, ...]
    domains: tuple[str, ...]
    comparisons: pd.DataFrame
    spread: pd.DataFrame
    saturation: pd.DataFrame
    images: dict[str, int]
    groups: dict[str, int]


def trained_models_in(per_image: pd.DataFrame) -> tuple[str, ...]:
    """The trained models of a per-image table, in the run's order (the baselines aside)."""
    return tuple(str(m) for m in pd.unique(per_image["model"]) if m not in statistics.BASELINES)


def paper_part(per_image: pd.DataFrame) -> pd.DataFrame:
    """The paper's part of a run: its two test domains, the baselines and its models (mixed only where it mixes the
    paper's two domains alone); the whole table when the paper's domains are not all there."""
    domains = set(per_image["test_domain"])
    if not paper_domains_present(tuple(domains)):
        return per_image
    models = {*PAPER_DOMAINS, *statistics.BASELINES, *([MIXED] if domains == set(PAPER_DOMAINS) else [])}
    return per_image[per_image["model"].isin(models) & per_image["test_domain"].isin(PAPER_DOMAINS)]


def untestable_reason(
    claim: Claim, models: tuple[str, ...], domains: tuple[str, ...], mixed_of: tuple[str, ...] = ()
) -> str:
    """Why the claim cannot be tested on a run with these trained models and test domains ('' if it can).
    ``mixed_of``: the domains of a mixed model the run trained that is not the paper's (it mixes other domains)."""
    if not paper_domains_present(domains):
        return (
            f"the paper's claims are about its {' and '.join(PAPER_DOMAINS)} domains; this run's test domains "
            f"are {', '.join(domains)}"
        )
    has = f"this run has {', '.join(models) or 'no trained model'}"
    if claim.test == "order":
        absent = [m for m in (*claim.named, *claim.others) if m not in models]
        if MIXED in absent and mixed_of:
            return (
                f"needs a mixed model of {' and '.join(PAPER_DOMAINS)} alone, as the paper's; this run's mixed "
                f"model trained on {', '.join(mixed_of)}"
            )
        if absent:
            return f"needs the {' and '.join(absent)} model{'s' if len(absent) > 1 else ''}; {has}"
        if claim.test_domain not in domains:
            return f"no {claim.test_domain} test images in this run"
    if claim.test == "spread" and len(models) < 2:
        return f"needs two trained models; {has}"
    if claim.test == "saturation" and not models:
        return f"needs a trained model; {has}"
    return ""


def gather_evidence(
    per_image: pd.DataFrame, n_bootstrap: int, seed: int, comparisons: pd.DataFrame | None = None
) -> Evidence:
    """Everything the verdicts need from one per-image table (``comparisons``: its compare_models, if at hand)."""
    models = trained_models_in(per_image)
    domains = tuple(str(d) for d in pd.unique(per_image["test_domain"]))
    if comparisons is None:
        comparisons = statistics.compare_models(per_image, METRICS, n_bootstrap, seed)
    spread = pd.DataFrame(
        [statistics.spread_ratio(per_image, d, models, n_bootstrap, seed) for d in domains] if len(models) >= 2 else [],
        columns=["test_domain", "ssim_spread", "ciede2000_spread", "log_ratio", "ci_low", "ci_high"],
    )
    saturation = statistics.saturation_tests(per_image, models, domains, n_bootstrap, seed)
    by_domain = per_image.drop_duplicates(["test_domain", "image_index"]).groupby("test_domain")
    images, groups = by_domain.size().to_dict(), by_domain["group"].nunique().to_dict()
    return Evidence(models, domains, comparisons, spread, saturation, images, groups)


def pair_row(comparisons: pd.DataFrame, domain: str, metric: str, a: str, b: str) -> pd.Series:
    """The comparisons' row of models ``a`` and ``b`` (either order) on one test domain and metric."""
    rows = comparisons[
        (comparisons["test_domain"] == domain)
        & (comparisons["metric"] == metric)
        & comparisons["model_a"].isin([a, b])
        & comparisons["model_b"].isin([a, b])
    ]
    if rows.empty:
        raise ValueError(f"comparisons: no row for {a} vs {b} on {metric}, {domain} test images")
    return rows.iloc[0]


def needed_pairs(claim: Claim, comparisons: pd.DataFrame) -> list[tuple[str, str, pd.Series]]:
    """(named, other, comparisons' row) for every pair an ordering claim needs."""
    return [
        (n, o, pair_row(comparisons, claim.test_domain, claim.metric, n, o)) for n in claim.named for o in claim.others
    ]


def claimed_better(claim: Claim, reading: Reading, named: str, other: str) -> str:
    """The model of the pair with the lower loss (the better one) if the reading is right."""
    named_has_higher_loss = reading.named_higher == (METRICS[claim.metric].goal == "lower")
    return other if named_has_higher_loss else named


def order_verdict(claim: Claim, reading: Reading, comparisons: pd.DataFrame) -> str:
    """holds: every needed pair significant the claimed way; contradicted: one significant the other way."""
    outcomes = [
        row["better"] == claimed_better(claim, reading, named, other)
        for named, other, row in needed_pairs(claim, comparisons)
        if bool(row["significant"])
    ]
    if not all(outcomes):
        return CONTRADICTED
    return HOLDS if len(outcomes) == len(claim.named) * len(claim.others) else INCONCLUSIVE


def spread_verdict(spread: pd.DataFrame) -> str:
    """holds: the log ratio's interval below 0 on every domain; contradicted: above 0 on one."""
    if (spread["ci_low"] > 0).any():
        return CONTRADICTED
    return HOLDS if (spread["ci_high"] < 0).all() else INCONCLUSIVE


def saturation_verdict(saturation: pd.DataFrame) -> str:
    """holds: every model x domain's ratio significantly below 1 (Holm p < 0.05 and its interval below 1);
    contradicted: one significantly above 1; else inconclusive."""
    significant = saturation["p_holm"] < ALPHA
    if (significant & (saturation["ci_low"] > 1)).any():
        return CONTRADICTED
    return HOLDS if (significant & (saturation["ci_high"] < 1)).all() else INCONCLUSIVE


def too_few_groups(claim: Claim, evidence: Evidence) -> str:
    """Why the verdict is inconclusive when a test domain the claim reads has fewer groups than its test needs to
    reach significance ('' otherwise): "2 groups of movie test images; at least 8 are needed ..."."""
    if claim.test == "order":
        family = int(
            (
                (evidence.comparisons["test_domain"] == claim.test_domain)
                & (evidence.comparisons["metric"] == claim.metric)
            ).sum()
        )
        short = [
            (claim.test_domain, int(row["n_groups"]), int(row["min_groups"]))
            for _, _, row in needed_pairs(claim, evidence.comparisons)
        ]
        test = f"for p < {ALPHA} (Holm, {family} pairs)"
    elif claim.test == "spread":
        short = [(d, evidence.groups[d], minimum_groups(1)) for d in evidence.domains]
        test = "for 95% confidence"
    else:
        short = [(r.test_domain, int(r.n_groups), int(r.min_groups)) for r in evidence.saturation.itertuples()]
        test = f"for p < {ALPHA} (Holm, {len(evidence.saturation)} tests)"
    for domain, n_groups, needed in short:
        if n_groups < needed:
            return (
                f"{n_groups} group{'s' if n_groups != 1 else ''} of {domain} test images; at least {needed} are "
                f"needed {test}"
            )
    return ""


def family(claim: Claim, evidence: Evidence) -> tuple[int, int]:
    """(the tests in the Holm family the claim's verdict is adjusted over, the fewest groups it can decide with)."""
    if claim.test == "order":
        rows = evidence.comparisons[
            (evidence.comparisons["test_domain"] == claim.test_domain)
            & (evidence.comparisons["metric"] == claim.metric)
        ]
        return len(rows), int(rows["min_groups"].max())
    if claim.test == "spread":
        return 1, minimum_groups(1)
    return len(evidence.saturation), int(evidence.saturation["min_groups"].max())


def verdict(claim: Claim, reading: Reading, evidence: Evidence, mixed_of: tuple[str, ...] = ()) -> tuple[str, str]:
    """The claim's verdict under one reading, from one table's evidence: (the word, why, when the data decide
    nothing: not testable, or too few groups; '' otherwise)."""
    if reason := untestable_reason(claim, evidence.models, evidence.domains, mixed_of):
        return NOT_TESTABLE, reason
    if short := too_few_groups(claim, evidence):
        return INCONCLUSIVE, short
    if claim.test == "order":
        return order_verdict(claim, reading, evidence.comparisons), ""
    if claim.test == "spread":
        return spread_verdict(evidence.spread), ""
    return saturation_verdict(evidence.saturation), ""


def mean_with_interval(cells: pd.DataFrame, model: str, domain: str, metric: str) -> str:
    """'model mean [low, high]' from the summary indexed by (model, test_domain, metric)."""
    row, digits = cells.loc[(model, domain, metric)], DIGITS[metric]
    return f"{model} {row['mean']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"


def named_minus_other(claim: Claim, named: str, row: pd.Series) -> str:
    """'named - other difference [interval], Holm p': the named model's metric minus the other's (in the
    metric's own units, not its loss), from the comparisons' row that decides the pair."""
    other = row["model_b"] if row["model_a"] == named else row["model_a"]
    sign = (1 if row["model_a"] == named else -1) * (1 if METRICS[claim.metric].goal == "lower" else -1)
    low, high = sorted((sign * row["ci_low"], sign * row["ci_high"]))
    digits = DIGITS[claim.metric]
    return (
        f"{named} - {other} {sign * row['loss_diff']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}], "
        f"Holm p {row['p_holm']:.2g}"
    )


def per_domain(counts: dict[str, int], domains: tuple[str, ...]) -> str:
    return ", ".join(f"{d} {counts[d]}" for d in domains)


def run_figures(claim: Claim, evidence: Evidence, summary: pd.DataFrame) -> str:
    """The run's numbers behind a claim, in full, as one line of text."""
    cells = summary.set_index(["model", "test_domain", "metric"])
    if claim.test == "order":
        d, metric = claim.test_domain, claim.metric
        named = ", ".join(mean_with_interval(cells, m, d, metric) for m in claim.named)
        others = ", ".join(mean_with_interval(cells, m, d, metric) for m in claim.others)
        p_values = ", ".join(f"{n}/{o} {row['p_holm']:.2g}" for n, o, row in needed_pairs(claim, evidence.comparisons))
        gray = f"; {mean_with_interval(cells, GRAY, d, metric)}" if (GRAY, d, metric) in cells.index else ""
        return (
            f"{named} vs {others}; Holm p {p_values}{gray}; {evidence.images[d]} images in {evidence.groups[d]} groups"
        )
    if claim.test == "spread":
        return "; ".join(
            f"{r.test_domain}: SSIM {r.ssim_spread:.2f} SD, CIEDE2000 {r.ciede2000_spread:.2f} SD, ratio "
            f"{np.exp(r.log_ratio):.2f} [{np.exp(r.ci_low):.2f}, {np.exp(r.ci_high):.2f}] "
            f"({evidence.images[r.test_domain]} images in {evidence.groups[r.test_domain]} groups)"
            for r in evidence.spread.itertuples()
        )
    by_domain = (
        f"{d}: "
        + ", ".join(
            f"{r.model} {r.ratio:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] Holm p {r.p_holm:.2g}"
            for r in evidence.saturation[evidence.saturation["test_domain"] == d].itertuples()
        )
        + f" ({evidence.images[d]} images in {evidence.groups[d]} groups)"
        for d in evidence.domains
    )
    return "output / truth colorfulness: " + "; ".join(by_domain)


def key_figures(claim: Claim, evidence: Evidence) -> str:
    """The few numbers a claim's verdict is decided on, for the report's compact table."""
    if claim.test == "order":
        d = claim.test_domain
        pairs = "; ".join(named_minus_other(claim, n, row) for n, _, row in needed_pairs(claim, evidence.comparisons))
        return f"{pairs}; {evidence.images[d]} images, {evidence.groups[d]} groups"
    if claim.test == "spread":
        ratios = ", ".join(
            f"{r.test_domain} {np.exp(r.log_ratio):.2f} [{np.exp(r.ci_low):.2f}, {np.exp(r.ci_high):.2f}]"
            for r in evidence.spread.itertuples()
        )
        return f"SSIM / CIEDE2000 spread: {ratios}; groups {per_domain(evidence.groups, evidence.domains)}"
    table = evidence.saturation
    return (
        f"output / truth colorfulness {table['ratio'].min():.2f} to {table['ratio'].max():.2f}, highest upper "
        f"bound {table['ci_high'].max():.2f}, largest Holm p {table['p_holm'].max():.2g}; groups "
        f"{per_domain(evidence.groups, evidence.domains)}"
    )


def sizes(claim: Claim, evidence: Evidence) -> dict[str, int | None]:
    """The test images and groups a claim reads, per paper domain (:data:`SIZE_COLUMNS`; None where it reads none)."""
    read = (claim.test_domain,) if claim.test == "order" else evidence.domains
    counts: dict[str, int | None] = dict.fromkeys(SIZE_COLUMNS)
    for domain in (d for d in read if d in PAPER_DOMAINS):
        counts[f"n_{domain}"], counts[f"n_groups_{domain}"] = evidence.images[domain], evidence.groups[domain]
    return counts


def assess_claims(
    per_image: pd.DataFrame,
    per_seed: dict[int, pd.DataFrame] | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    comparisons: pd.DataFrame | None = None,
    summary: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every claim of :data:`CLAIMS` under each of its readings, checked on a run's per-image scores.

    Args:
        per_image: one row per model, test domain and image, with its ``group`` (the seed-averaged scores,
            baselines included).
        per_seed: each training seed's own per-image table (same shape); None: ``per_image`` is one seed's.
        n_bootstrap, seed: the bootstrap's resamples and seed (the comparisons' and intervals').
        comparisons, summary: ``statistics.compare_models`` and ``statistics.summarize`` of ``per_image``
            when already at hand (eval/comparisons.csv, eval/summary.csv); computed otherwise.

    Returns:
        One row per claim and reading (:data:`CLAIM_COLUMNS`): the claim, the paper's words, what is
        measured, what it says in correct terms, this run's numbers, the verdict (holds, contradicted,
        inconclusive, not testable), in how many training seeds it holds ("2 of 3"), the key figures,
        and the test images and groups it reads.
    """
    statistics.check_per_image(per_image, "per_image", list(METRICS))
    for training_seed, table in (per_seed or {}).items():
        statistics.check_per_image(table, f"per_seed[{training_seed}]", list(METRICS))
    mixed_of = mixed_domains_left_out(per_image)
    if len(part := paper_part(per_image)) != len(per_image):  # other models or domains: the paper's part alone
        per_image, comparisons, summary = part, None, None
        per_seed = {s: paper_part(table) for s, table in per_seed.items()} if per_seed else per_seed
    evidence = gather_evidence(per_image, n_bootstrap, seed, comparisons)
    if summary is None:
        summary = statistics.summarize(per_image, list(METRICS), n_bootstrap, seed)
    seeds = [gather_evidence(table, n_bootstrap, seed) for table in (per_seed or {}).values()]
    rows = []
    for claim in CLAIMS:
        untestable = untestable_reason(claim, evidence.models, evidence.domains, mixed_of)
        figures = f"not testable: {untestable}" if untestable else run_figures(claim, evidence, summary)
        key = "" if untestable else key_figures(claim, evidence)
        counts = dict.fromkeys(SIZE_COLUMNS) if untestable else sizes(claim, evidence)
        tests, needed = (None, None) if untestable else family(claim, evidence)
        for reading in claim.readings:
            here, why = verdict(claim, reading, evidence, mixed_of)
            if untestable:
                holding = "n/a"
            elif seeds:
                holding = f"{sum(verdict(claim, reading, e)[0] == HOLDS for e in seeds)} of {len(seeds)}"
            else:
                holding = f"{int(here == HOLDS)} of 1"
            rows.append(
                [
                    claim.key,
                    claim.figure,
                    reading.name,
                    claim.paper_says,
                    claim.measurement,
                    reading.in_correct_terms,
                    figures,
                    here,
                    why,
                    holding,
                    key,
                    *counts.values(),
                    tests,
                    needed,
                ]
            )
    table = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    return table.astype(dict.fromkeys([*SIZE_COLUMNS, "tests", "min_groups"], "Int64"))


def mixed_domains_left_out(per_image: pd.DataFrame) -> tuple[str, ...]:
    """The domains of the run's mixed model when it is not the paper's (it mixes other domains than its two, so the
    claims leave it out); () otherwise."""
    domains = tuple(str(d) for d in pd.unique(per_image["test_domain"]))
    if MIXED not in set(per_image["model"]) or set(domains) == set(PAPER_DOMAINS):
        return ()
    return domains if paper_domains_present(domains) else ()
