"""How each kind of claim is tested (utils.eval.claims declares the claims): one :class:`ClaimTest` subclass per
kind reads the evidence of one per-image table (:class:`Evidence`) and gives what eval/claims.csv holds for it:
what the run lacks for the test, the groups it needs, its Holm family, the verdict, the run's numbers in full
and the key figures.

- :class:`Ordering`: named models against others on one metric and test domain, from the paired comparisons
  of :func:`statistics.compare_models`.
- :class:`Spread`: SSIM's standardised spread between the models over CIEDE2000's, from
  :func:`statistics.spread_ratio`.
- :class:`Saturation`: the outputs' colorfulness over the truth's, from :func:`statistics.saturation_tests`.

A new kind is a new subclass with every abstract method its own: the claims call these methods and nothing
else, so no code outside the kind's class depends on which kind a claim is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.core import statistics
from utils.core.domains import MIXED, PAPER_DOMAINS
from utils.core.statistics import ALPHA, GRAY, minimum_groups
from utils.imaging.metric_table import METRICS

HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE = "holds", "contradicted", "inconclusive at this n", "not testable"
DIGITS = {"ciede2000": 2, "ssim": 3, "colorfulness_ratio": 2}  # decimals shown per metric
GroupsNeeded = list[tuple[str, int, int]]  # (test domain, its groups, the fewest its test decides with)


@dataclass(frozen=True)
class Reading:
    """One way to read a claim: its name, what it then says in correct terms, and for an ordering
    whether the named models' metric value is the higher one."""

    name: str
    in_correct_terms: str
    named_higher: bool = True


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


def run_has(models: tuple[str, ...]) -> str:
    return f"this run has {', '.join(models) or 'no trained model'}"


def per_domain(counts: dict[str, int], domains: tuple[str, ...]) -> str:
    return ", ".join(f"{d} {counts[d]}" for d in domains)


def mean_with_interval(cells: pd.DataFrame, model: str, domain: str, metric: str) -> str:
    """'model mean [low, high]' from the summary indexed by (model, test_domain, metric)."""
    row, digits = cells.loc[(model, domain, metric)], DIGITS[metric]
    return f"{model} {row['mean']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"


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


class ClaimTest(ABC):
    """How one kind of claim is tested, from the evidence of one per-image table."""

    @abstractmethod
    def missing(self, models: tuple[str, ...], domains: tuple[str, ...], mixed_of: tuple[str, ...]) -> str:
        """What a run of the paper's domains with these trained models and test domains lacks for the test ('' if
        nothing). ``mixed_of``: the domains of a mixed model the run trained that is not the paper's."""

    def domains_read(self, evidence: Evidence) -> tuple[str, ...]:
        """The test domains whose images the verdict reads: every one."""
        return evidence.domains

    @abstractmethod
    def groups_needed(self, evidence: Evidence) -> GroupsNeeded:
        """Each test domain the verdict reads, with its groups and the fewest its test can decide with."""

    @abstractmethod
    def confidence(self, evidence: Evidence) -> str:
        """What the fewest groups are needed for: "for p < 0.05 (Holm, 6 pairs)"."""

    @abstractmethod
    def family(self, evidence: Evidence) -> tuple[int, int]:
        """(the tests in the Holm family the verdict is adjusted over, the fewest groups it can decide with)."""

    @abstractmethod
    def evaluate(self, reading: Reading, evidence: Evidence) -> str:
        """The verdict under ``reading``: holds, contradicted or inconclusive."""

    @abstractmethod
    def describe(self, evidence: Evidence, summary: pd.DataFrame) -> str:
        """The run's numbers behind the claim, in full, as one line of text (``summary``: statistics.summarize)."""

    @abstractmethod
    def key_figures(self, evidence: Evidence) -> str:
        """The few numbers the verdict is decided on, for the report's compact table."""


@dataclass(frozen=True)
class Ordering(ClaimTest):
    """Each of the ``named`` models against each of the ``others`` on ``metric`` and ``test_domain``:
    holds when every pair is significant the claimed way, contradicted when one is significant the other way."""

    test_domain: str
    metric: str
    named: tuple[str, ...]
    others: tuple[str, ...]

    def missing(self, models: tuple[str, ...], domains: tuple[str, ...], mixed_of: tuple[str, ...]) -> str:
        absent = [m for m in (*self.named, *self.others) if m not in models]
        if MIXED in absent and mixed_of:
            return (
                f"needs a mixed model of {' and '.join(PAPER_DOMAINS)} alone, as the paper's; this run's mixed "
                f"model trained on {', '.join(mixed_of)}"
            )
        if absent:
            return f"needs the {' and '.join(absent)} model{'s' if len(absent) > 1 else ''}; {run_has(models)}"
        if self.test_domain not in domains:
            return f"no {self.test_domain} test images in this run"
        return ""

    def domains_read(self, evidence: Evidence) -> tuple[str, ...]:
        return (self.test_domain,)

    def needed_pairs(self, comparisons: pd.DataFrame) -> list[tuple[str, str, pd.Series]]:
        """(named, other, comparisons' row) for every pair the ordering needs."""
        return [
            (n, o, pair_row(comparisons, self.test_domain, self.metric, n, o)) for n in self.named for o in self.others
        ]

    def family_rows(self, comparisons: pd.DataFrame) -> pd.DataFrame:
        """The comparisons of the test domain and metric: the Holm family the pairs are adjusted over."""
        return comparisons[(comparisons["test_domain"] == self.test_domain) & (comparisons["metric"] == self.metric)]

    def groups_needed(self, evidence: Evidence) -> GroupsNeeded:
        return [
            (self.test_domain, int(row["n_groups"]), int(row["min_groups"]))
            for _, _, row in self.needed_pairs(evidence.comparisons)
        ]

    def confidence(self, evidence: Evidence) -> str:
        return f"for p < {ALPHA} (Holm, {len(self.family_rows(evidence.comparisons))} pairs)"

    def family(self, evidence: Evidence) -> tuple[int, int]:
        rows = self.family_rows(evidence.comparisons)
        return len(rows), int(rows["min_groups"].max())

    def claimed_better(self, reading: Reading, named: str, other: str) -> str:
        """The model of the pair with the lower loss (the better one) if the reading is right."""
        named_has_higher_loss = reading.named_higher == (METRICS[self.metric].goal == "lower")
        return other if named_has_higher_loss else named

    def evaluate(self, reading: Reading, evidence: Evidence) -> str:
        outcomes = [
            row["better"] == self.claimed_better(reading, named, other)
            for named, other, row in self.needed_pairs(evidence.comparisons)
            if bool(row["significant"])
        ]
        if not all(outcomes):
            return CONTRADICTED
        return HOLDS if len(outcomes) == len(self.named) * len(self.others) else INCONCLUSIVE

    def describe(self, evidence: Evidence, summary: pd.DataFrame) -> str:
        cells = summary.set_index(["model", "test_domain", "metric"])
        d, metric = self.test_domain, self.metric
        named = ", ".join(mean_with_interval(cells, m, d, metric) for m in self.named)
        others = ", ".join(mean_with_interval(cells, m, d, metric) for m in self.others)
        pairs = self.needed_pairs(evidence.comparisons)
        p_values = ", ".join(f"{n}/{o} {row['p_holm']:.2g}" for n, o, row in pairs)
        gray = f"; {mean_with_interval(cells, GRAY, d, metric)}" if (GRAY, d, metric) in cells.index else ""
        return (
            f"{named} vs {others}; Holm p {p_values}{gray}; {evidence.images[d]} images in {evidence.groups[d]} groups"
        )

    def named_minus_other(self, named: str, row: pd.Series) -> str:
        """'named - other difference [interval], Holm p': the named model's metric minus the other's (in the
        metric's own units, not its loss), from the comparisons' row that decides the pair."""
        other = row["model_b"] if row["model_a"] == named else row["model_a"]
        sign = (1 if row["model_a"] == named else -1) * (1 if METRICS[self.metric].goal == "lower" else -1)
        low, high = sorted((sign * row["ci_low"], sign * row["ci_high"]))
        digits = DIGITS[self.metric]
        return (
            f"{named} - {other} {sign * row['loss_diff']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}], "
            f"Holm p {row['p_holm']:.2g}"
        )

    def key_figures(self, evidence: Evidence) -> str:
        d = self.test_domain
        pairs = "; ".join(self.named_minus_other(n, row) for n, _, row in self.needed_pairs(evidence.comparisons))
        return f"{pairs}; {evidence.images[d]} images, {evidence.groups[d]} groups"


@dataclass(frozen=True)
class Spread(ClaimTest):
    """SSIM's standardised spread between the trained models over CIEDE2000's, per test domain
    (:func:`spread_verdict`): holds when its interval lies below 1 on every test domain."""

    def missing(self, models: tuple[str, ...], domains: tuple[str, ...], mixed_of: tuple[str, ...]) -> str:
        return f"needs two trained models; {run_has(models)}" if len(models) < 2 else ""

    def groups_needed(self, evidence: Evidence) -> GroupsNeeded:
        return [(d, evidence.groups[d], minimum_groups(1)) for d in evidence.domains]

    def confidence(self, evidence: Evidence) -> str:
        return "for 95% confidence"

    def family(self, evidence: Evidence) -> tuple[int, int]:
        return 1, minimum_groups(1)

    def evaluate(self, reading: Reading, evidence: Evidence) -> str:
        return spread_verdict(evidence.spread)

    def describe(self, evidence: Evidence, summary: pd.DataFrame) -> str:
        return "; ".join(
            f"{r.test_domain}: SSIM {r.ssim_spread:.2f} SD, CIEDE2000 {r.ciede2000_spread:.2f} SD, ratio "
            f"{np.exp(r.log_ratio):.2f} [{np.exp(r.ci_low):.2f}, {np.exp(r.ci_high):.2f}] "
            f"({evidence.images[r.test_domain]} images in {evidence.groups[r.test_domain]} groups)"
            for r in evidence.spread.itertuples()
        )

    def key_figures(self, evidence: Evidence) -> str:
        ratios = ", ".join(
            f"{r.test_domain} {np.exp(r.log_ratio):.2f} [{np.exp(r.ci_low):.2f}, {np.exp(r.ci_high):.2f}]"
            for r in evidence.spread.itertuples()
        )
        return f"SSIM / CIEDE2000 spread: {ratios}; groups {per_domain(evidence.groups, evidence.domains)}"


@dataclass(frozen=True)
class Saturation(ClaimTest):
    """Every model's colorfulness over the truth's on every test domain, one Holm family
    (:func:`saturation_verdict`): holds when each is significantly below 1."""

    def missing(self, models: tuple[str, ...], domains: tuple[str, ...], mixed_of: tuple[str, ...]) -> str:
        return "" if models else f"needs a trained model; {run_has(models)}"

    def groups_needed(self, evidence: Evidence) -> GroupsNeeded:
        return [(r.test_domain, int(r.n_groups), int(r.min_groups)) for r in evidence.saturation.itertuples()]

    def confidence(self, evidence: Evidence) -> str:
        return f"for p < {ALPHA} (Holm, {len(evidence.saturation)} tests)"

    def family(self, evidence: Evidence) -> tuple[int, int]:
        return len(evidence.saturation), int(evidence.saturation["min_groups"].max())

    def evaluate(self, reading: Reading, evidence: Evidence) -> str:
        return saturation_verdict(evidence.saturation)

    def describe(self, evidence: Evidence, summary: pd.DataFrame) -> str:
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

    def key_figures(self, evidence: Evidence) -> str:
        table = evidence.saturation
        return (
            f"output / truth colorfulness {table['ratio'].min():.2f} to {table['ratio'].max():.2f}, highest upper "
            f"bound {table['ci_high'].max():.2f}, largest Holm p {table['p_holm'].max():.2g}; groups "
            f"{per_domain(evidence.groups, evidence.domains)}"
        )
