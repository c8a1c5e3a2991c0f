"""The paper's claims (its Results section), checked on a run's own test scores.

Each claim is declared once (:data:`CLAIMS`) with the paper's words, what is measured, what the claim says in
correct terms, and its test: one of the kinds of :mod:`utils.eval.claim_kinds`, which reads the run's evidence
and gives the verdict and the figures. Its verdict comes from the run's data alone, with the test group (a film,
a show, a photograph) as the unit of evidence (utils.core.statistics):

- Orderings (a)-(e), :class:`Ordering`: the paired comparisons of :func:`statistics.compare_models`
  (Wilcoxon signed-rank over groups, Holm within test domain and metric, cluster-bootstrap interval).
  ``holds``: every pair the claim needs is significant in the claimed direction; ``contradicted``: at least
  one is significant the other way; else inconclusive. The paper read CIEDE2000, a distance, as "higher is
  better", so (a)-(c) have two readings: *as stated* (the named models have the higher CIEDE2000, what its
  bars show) and *as meant* (they have the better colour: the lower CIEDE2000).
- (f) SSIM differs little between models next to CIEDE2000, :class:`Spread`: :func:`statistics.spread_ratio`.
- (g) the outputs lack saturation, :class:`Saturation`: :func:`statistics.saturation_tests`.

A test domain with fewer groups than its test can reach significance with makes the verdict "inconclusive at this
n", its ``reason`` "N groups of ... test images; at least M are needed ...". With several training seeds, the same verdicts are
computed on each seed's own table, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from utils.core import statistics
from utils.core.domains import MIXED, PAPER_DOMAINS, paper_domains_present
from utils.eval.claim_kinds import CONTRADICTED as CONTRADICTED  # the report counts every verdict word
from utils.eval.claim_kinds import (
    HOLDS,
    INCONCLUSIVE,
    NOT_TESTABLE,
    ClaimTest,
    Evidence,
    Ordering,
    Reading,
    Saturation,
    Spread,
    gather_evidence,
)
from utils.imaging.metric_table import METRICS

AS_STATED, AS_MEANT, ONE_READING = "as stated", "as meant", "one reading"
# the test images and groups each claim reads, one column per paper domain (empty where it reads none there)
SIZE_COLUMNS = [f"{kind}_{domain}" for domain in PAPER_DOMAINS for kind in ("n", "n_groups")]
CLAIM_COLUMNS = [
    "claim", "figure", "reading", "paper_says", "measurement", "in_correct_terms", "this_run", "verdict", "reason",
    "seeds_holding", "key_figures", *SIZE_COLUMNS, "tests", "min_groups",
]  # fmt: skip
# tests: how many tests share the Holm family the verdict is adjusted over (1 for an interval); min_groups: the
# fewest groups with which that family can decide (utils.core.statistics.minimum_groups)


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how it is tested: ``test`` is its kind (:class:`Ordering`, :class:`Spread`,
    :class:`Saturation`, any :class:`ClaimTest`), which reads the evidence and gives the verdict and figures."""

    key: str
    figure: str
    paper_says: str
    measurement: str
    readings: tuple[Reading, ...]
    test: ClaimTest

    def __post_init__(self) -> None:
        if not isinstance(self.test, ClaimTest):
            kinds = ", ".join(kind.__name__ for kind in ClaimTest.__subclasses__())
            raise TypeError(
                f"claim ({self.key}): its test is {self.test!r}, not a kind of test; a claim is tested by a "
                f"ClaimTest ({kinds}, or a new subclass of ClaimTest in utils/eval/claim_kinds.py)"
            )


# (a) and (c): the same claim, "mixed scores best", on each test domain; read both ways
MIXED_BEST_BY_CIEDE2000 = (
    Reading(AS_STATED, "mixed has the highest CIEDE2000: its colours are the furthest from the truth"),
    Reading(AS_MEANT, "mixed has the lowest CIEDE2000: its colours are the closest to the truth", named_higher=False),
)

CLAIMS: tuple[Claim, ...] = (
    Claim(
        key="a", figure="Fig. 4a",
        test=Ordering(test_domain="cartoon", metric="ciede2000", named=("mixed",), others=("cartoon", "movie")),
        paper_says="the average score for the dataset trained with mixed images is higher compared to other scores, "
        "with it consistently yielding better results",
        measurement="CIEDE2000 on cartoon test images: mixed against the cartoon and movie models",
        readings=MIXED_BEST_BY_CIEDE2000,
    ),
    Claim(
        key="b", figure="Fig. 4a",
        test=Ordering(test_domain="cartoon", metric="ciede2000", named=("cartoon", "mixed"), others=("movie",)),
        paper_says="in instances where a cartoon dataset was present, it demonstrated superior performance compared "
        "to the movie dataset",
        measurement="CIEDE2000 on cartoon test images: the cartoon and mixed models each against the movie model",
        readings=(
            Reading(AS_STATED, "cartoon and mixed have a higher CIEDE2000 than movie: worse colour"),
            Reading(AS_MEANT, "cartoon and mixed have a lower CIEDE2000 than movie: better colour", named_higher=False),
        ),
    ),
    Claim(
        key="c", figure="Fig. 4b",
        test=Ordering(test_domain="movie", metric="ciede2000", named=("mixed",), others=("cartoon", "movie")),
        paper_says="the mixed dataset exhibits significantly higher scores compared to others, reflecting "
        "outstanding performance",
        measurement="CIEDE2000 on movie (real) test images: mixed against the cartoon and movie models",
        readings=MIXED_BEST_BY_CIEDE2000,
    ),
    Claim(
        key="d", figure="Fig. 5a",
        test=Ordering(test_domain="cartoon", metric="ssim", named=("movie",), others=("cartoon", "mixed")),
        paper_says="when using Cartoon images as input, our model using the Movie has a higher SSIM Score",
        measurement="SSIM on cartoon test images: movie against the cartoon and mixed models",
        readings=(Reading(ONE_READING, "movie has the highest SSIM: the best structure (SSIM is read the right way)"),),
    ),
    Claim(
        key="e", figure="Fig. 5b",
        test=Ordering(test_domain="movie", metric="ssim", named=("mixed",), others=("cartoon", "movie")),
        paper_says="using real images as input makes our Mix model the worst overall",
        measurement="SSIM on movie (real) test images: mixed against the cartoon and movie models",
        readings=(Reading(ONE_READING, "mixed has the lowest SSIM: the worst structure", named_higher=False),),
    ),
    Claim(
        key="f", figure="Fig. 5 vs 4", test=Spread(),
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
        key="g", figure="Sec. 3.1, App. A.4", test=Saturation(),
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


def paper_part(per_image: pd.DataFrame) -> pd.DataFrame:
    """The paper's part of a run: its two test domains, the baselines and its models (mixed only where it mixes the
    paper's two domains alone); the whole table when the paper's domains are not all there."""
    domains = set(per_image["test_domain"])
    if not paper_domains_present(tuple(domains)):
        return per_image
    models = {*PAPER_DOMAINS, *statistics.BASELINES, *([MIXED] if domains == set(PAPER_DOMAINS) else [])}
    return per_image[per_image["model"].isin(models) & per_image["test_domain"].isin(PAPER_DOMAINS)]


def mixed_domains_left_out(per_image: pd.DataFrame) -> tuple[str, ...]:
    """The domains of the run's mixed model when it is not the paper's (it mixes other domains than its two, so the
    claims leave it out); () otherwise."""
    domains = tuple(str(d) for d in pd.unique(per_image["test_domain"]))
    if MIXED not in set(per_image["model"]) or set(domains) == set(PAPER_DOMAINS):
        return ()
    return domains if paper_domains_present(domains) else ()


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
    return claim.test.missing(models, domains, mixed_of)


def too_few_groups(claim: Claim, evidence: Evidence) -> str:
    """Why the verdict is inconclusive when a test domain the claim reads has fewer groups than its test needs to
    reach significance ('' otherwise): "2 groups of movie test images; at least 8 are needed ..."."""
    for domain, n_groups, needed in claim.test.groups_needed(evidence):
        if n_groups < needed:
            return (
                f"{n_groups} group{'s' if n_groups != 1 else ''} of {domain} test images; at least {needed} are "
                f"needed {claim.test.confidence(evidence)}"
            )
    return ""


def verdict(claim: Claim, reading: Reading, evidence: Evidence, mixed_of: tuple[str, ...] = ()) -> tuple[str, str]:
    """The claim's verdict under one reading, from one table's evidence: (the word, why, when the data decide
    nothing: not testable, or too few groups; '' otherwise)."""
    if reason := untestable_reason(claim, evidence.models, evidence.domains, mixed_of):
        return NOT_TESTABLE, reason
    if short := too_few_groups(claim, evidence):
        return INCONCLUSIVE, short
    return claim.test.evaluate(reading, evidence), ""


def sizes(claim: Claim, evidence: Evidence) -> dict[str, int | None]:
    """The test images and groups a claim reads, per paper domain (:data:`SIZE_COLUMNS`; None where it reads none)."""
    counts: dict[str, int | None] = dict.fromkeys(SIZE_COLUMNS)
    for domain in (d for d in claim.test.domains_read(evidence) if d in PAPER_DOMAINS):
        counts[f"n_{domain}"], counts[f"n_groups_{domain}"] = evidence.images[domain], evidence.groups[domain]
    return counts


def seeds_holding(claim: Claim, reading: Reading, here: str, seeds: list[Evidence]) -> str:
    """In how many training seeds the claim holds under the reading ("2 of 3"); with one seed, the run's own
    verdict ``here`` ("1 of 1")."""
    if not seeds:
        return f"{int(here == HOLDS)} of 1"
    return f"{sum(verdict(claim, reading, e)[0] == HOLDS for e in seeds)} of {len(seeds)}"


def claim_rows(
    claim: Claim, evidence: Evidence, summary: pd.DataFrame, seeds: list[Evidence], mixed_of: tuple[str, ...]
) -> list[list[object]]:
    """The claim's rows of :data:`CLAIM_COLUMNS`, one per reading."""
    if untestable := untestable_reason(claim, evidence.models, evidence.domains, mixed_of):
        figures, key, counts = f"not testable: {untestable}", "", dict.fromkeys(SIZE_COLUMNS)
        family: tuple[int | None, int | None] = (None, None)
    else:
        figures, key = claim.test.describe(evidence, summary), claim.test.key_figures(evidence)
        counts, family = sizes(claim, evidence), claim.test.family(evidence)
    rows = []
    for reading in claim.readings:
        here, why = verdict(claim, reading, evidence, mixed_of)
        holding = "n/a" if untestable else seeds_holding(claim, reading, here, seeds)
        said = [claim.key, claim.figure, reading.name, claim.paper_says, claim.measurement, reading.in_correct_terms]
        rows.append([*said, figures, here, why, holding, key, *counts.values(), *family])
    return rows


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
    rows = [row for claim in CLAIMS for row in claim_rows(claim, evidence, summary, seeds, mixed_of)]
    table = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    return table.astype(dict.fromkeys([*SIZE_COLUMNS, "tests", "min_groups"], "Int64"))
