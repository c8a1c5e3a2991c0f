"""Group-level statistics (utils.core.statistics): copies of an image within its group change nothing but n and the
per-image SD; each image its own group is the per-image analysis; the signed-rank test, the cluster bootstrap, Holm
and the minimum number of groups against independent references; the rules docs/results.md states, held."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata, wilcoxon

from tests.helpers import KIT_ROOT
from tests.test_claims import AS_STATED, per_image_scores
from tests.test_docs import tables
from utils.core import statistics
from utils.core.statistics import BASELINE_SEED, Groups
from utils.eval import evaluate
from utils.imaging.metrics import METRICS

N_BOOTSTRAP = 300


# --- the key property: the group is the unit, however many images it holds ---------------------


def grouped_two_seed_scores(n_groups: int = 8, per_group: int = 5, effect: float = 5.0) -> pd.DataFrame:
    """Two seeds' per-image scores with groups: every image of a group shares an offset per model (crops of
    one photograph move together), as large as the models' differences, so images are far from independent."""
    table = per_image_scores(AS_STATED, n=n_groups * per_group, group_size=per_group)
    rng = np.random.default_rng(7)
    offsets = {
        key: rng.normal(0, effect, n_groups) for key in itertools.product(("cartoon", "movie"), set(table.model))
    }
    shift = [offsets[(d, m)][g] for d, m, g in zip(table.test_domain, table.model, table.group)]
    table = table.assign(ciede2000=table.ciede2000 + shift)
    trained = ~table.model.isin(statistics.BASELINES)
    second = table[trained].assign(ciede2000=lambda t: t.ciede2000 + rng.normal(0, 1.0, len(t)), seed=1)
    return pd.concat([table.assign(seed=np.where(trained, 0, BASELINE_SEED)), second], ignore_index=True)


def copied(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """Every image k times, each copy a new image of the same group."""
    return pd.concat([table.assign(image_index=table.image_index * k + j) for j in range(k)], ignore_index=True)


def without_image_counts(text: pd.Series) -> pd.Series:
    return text.str.replace(r"\d+ images", "N images", regex=True)


@pytest.mark.parametrize("k", [3, 10])
def test_copying_every_image_within_its_group_changes_nothing_but_n_and_std(k: int) -> None:
    once = evaluate.evaluation_tables(grouped_two_seed_scores(), N_BOOTSTRAP, seed=0)
    again = evaluate.evaluation_tables(copied(grouped_two_seed_scores(), k), N_BOOTSTRAP, seed=0)
    for name in ("summary", "summary_by_seed"):
        a, b = once[name], again[name]
        assert (b["n"] == k * a["n"]).all() and (b["n_groups"] == a["n_groups"]).all()
        for column in ("mean", "ci_low", "ci_high"):
            np.testing.assert_allclose(b[column], a[column], rtol=1e-9, err_msg=f"{name}.{column}")
        # the per-image SD (ddof = 1) of n images, each k times: sqrt(k (n - 1) / (k n - 1)) of what it was
        shrink = np.sqrt(k * (a["n"] - 1) / (k * a["n"] - 1))
        np.testing.assert_allclose(b["std"], a["std"] * shrink, rtol=1e-9, err_msg=f"{name}.std")
        varied = a["std"] > 0  # the truth's SSIM is 1 on every image
        assert varied.mean() > 0.5 and (b["std"][varied] < a["std"][varied]).all()
    a, b = once["comparisons"], again["comparisons"]
    for column in ("loss_diff", "ci_low", "ci_high", "p_wilcoxon", "p_holm"):
        np.testing.assert_allclose(b[column], a[column], rtol=1e-9, err_msg=column)
    assert (
        (
            b[["better", "significant", "n_groups", "min_groups"]]
            == a[["better", "significant", "n_groups", "min_groups"]]
        )
        .all()
        .all()
    )
    a, b = once["claims"], again["claims"]
    assert b["verdict"].tolist() == a["verdict"].tolist() and b["seeds_holding"].tolist() == a["seeds_holding"].tolist()
    for column in ("this_run", "key_figures"):  # every shown interval and p, to the digit
        assert without_image_counts(b[column]).tolist() == without_image_counts(a[column]).tolist()
    assert set(a["verdict"]) & {"holds", "contradicted"} and "inconclusive at this n" in set(a["verdict"])


def test_the_copies_would_move_a_per_image_analysis() -> None:
    """The same data with each image its own group (the per-image analysis): copies shrink its p-values, so the
    invariance above is the grouping's doing."""
    table = statistics.seed_averaged(grouped_two_seed_scores())
    p_values = []
    for k in (1, 10):
        per_image = copied(table, k).assign(group=lambda t: t.image_index)
        p_values.append(statistics.compare_models(per_image, METRICS, N_BOOTSTRAP)["p_wilcoxon"].to_numpy())
    assert (p_values[1] < p_values[0] / 100).mean() > 0.5


# --- each image its own group: the per-image analysis --------------------------------------------


def per_image_reference_ci(values: np.ndarray, n_bootstrap: int, seed: int) -> tuple[float, float]:
    """The images' percentile bootstrap, written out: resample images with replacement."""
    picks = np.random.default_rng(seed).integers(0, len(values), size=(n_bootstrap, len(values)))
    low, high = np.percentile(values[picks].mean(axis=1), [2.5, 97.5])
    return float(low), float(high)


def test_each_image_its_own_group_is_the_per_image_analysis() -> None:
    table = per_image_scores(AS_STATED, n=30)  # group == image_index
    comparisons = statistics.compare_models(table, METRICS, N_BOOTSTRAP, seed=4)
    for row in comparisons[comparisons.metric.isin(["ciede2000", "ssim"])].itertuples():
        part = table[table.test_domain == row.test_domain].sort_values("image_index")
        loss = METRICS[row.metric].loss
        diff = (loss(part[part.model == row.model_a][row.metric].to_numpy())
                - loss(part[part.model == row.model_b][row.metric].to_numpy()))  # fmt: skip
        assert row.p_wilcoxon == pytest.approx(wilcoxon(diff).pvalue, rel=1e-12)
        assert (row.ci_low, row.ci_high) == pytest.approx(per_image_reference_ci(diff, N_BOOTSTRAP, 4), rel=1e-9)
        assert row.n == row.n_groups == 30
    summary = statistics.summarize(table, list(METRICS), N_BOOTSTRAP, seed=4)
    cell = summary[(summary.model == "mixed") & (summary.test_domain == "movie") & (summary.metric == "ssim")].iloc[0]
    values = table[(table.model == "mixed") & (table.test_domain == "movie")].sort_values("image_index")["ssim"]
    assert (cell.ci_low, cell.ci_high) == pytest.approx(per_image_reference_ci(values.to_numpy(), N_BOOTSTRAP, 4))


# --- the exact test over groups against brute-force enumeration of sign flips ----------------------


def sign_flip_p(differences: np.ndarray) -> float:
    """Two-sided signed-rank p by enumerating all 2^n sign assignments (zeros dropped, ties given mean ranks)."""
    d = differences[differences != 0]
    ranks = rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    flips = np.array(list(itertools.product([0, 1], repeat=len(d))))
    null = flips @ ranks
    tail = min((null <= observed).mean(), (null >= observed).mean())
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("case", ["distinct", "ties", "a zero"])
def test_the_paired_test_over_groups_equals_enumerated_sign_flips(case: str) -> None:
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 6, size=9)  # 9 groups of 1 to 5 images
    labels = np.repeat([f"photo{i}" for i in range(9)], sizes)
    a = rng.normal(10, 3, len(labels))
    b = a - rng.normal(0.6, 1.0, len(labels))
    if case != "distinct":  # one group's images set so that its mean difference ties another's, or is 0
        target = 0.0 if case == "a zero" else (a - b)[labels == "photo0"].mean()
        inside = labels == "photo1"
        b[inside] = a[inside] - target
    result = statistics.paired_comparison(a, b, Groups.of(labels), N_BOOTSTRAP)
    group_means = pd.Series(a - b).groupby(labels).mean().to_numpy()
    assert result.p == pytest.approx(sign_flip_p(group_means), rel=1e-9)
    assert (result.n, result.n_groups) == (len(labels), 9)
    assert result.difference == pytest.approx((a - b).mean())


def test_the_minimum_groups_is_where_every_group_agreeing_first_reaches_alpha() -> None:
    # all n groups of one sign: the two-sided exact p is 2 / 2^n; Holm multiplies the smallest p by the family size
    for family in (1, 2, 6, 12):
        expected = next(n for n in range(1, 30) if family * 2 / 2**n < 0.05)
        assert statistics.minimum_groups(family) == expected
    assert (statistics.minimum_groups(1), statistics.minimum_groups(6)) == (6, 8)


def test_holm_is_the_step_down_adjustment() -> None:
    assert statistics.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert statistics.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert statistics.holm([]) == []


# --- the cluster bootstrap against a case computed by hand ---------------------------------------


def test_the_cluster_bootstrap_draws_whole_groups() -> None:
    # three groups: one image of 1, two of 2, three of 6; a resample is 3 groups drawn with replacement,
    # its mean the images' mean: 27 equally likely draws, enumerated here
    values = np.array([1.0, 2.0, 2.0, 6.0, 6.0, 6.0])
    groups = Groups.of(["a", "b", "b", "c", "c", "c"])
    sums, counts = np.array([1.0, 4.0, 18.0]), np.array([1, 2, 3])
    exact = np.array([sums[list(d)].sum() / counts[list(d)].sum() for d in itertools.product(range(3), repeat=3)])
    resampled = statistics.cluster_bootstrap_means(values, groups, 20_000, seed=1)
    support = np.unique(exact)
    assert np.isin(np.round(resampled, 12), np.round(support, 12)).all()  # only whole groups are ever drawn
    for point in support:  # the distribution, to sampling error (SD of a proportion here < 0.0036)
        assert (resampled <= point + 1e-12).mean() == pytest.approx((exact <= point + 1e-12).mean(), abs=0.015)
    # P(all three draws are group a) = 1/27 > 2.5%: the interval runs from group a's mean to group c's
    assert statistics.cluster_bootstrap_ci(values, groups, 20_000, seed=1) == (1.0, 6.0)


def test_two_groups_give_an_interval_from_one_groups_mean_to_the_other() -> None:
    values = np.r_[np.full(40, 3.0), np.full(24, 9.0)]  # 64 crops of 2 photographs
    assert statistics.cluster_bootstrap_ci(values, Groups.of(np.r_[np.zeros(40), np.ones(24)]), 2000) == (3.0, 9.0)


def test_groups_refuse_an_image_without_a_group_and_ignore_the_images_order() -> None:
    with pytest.raises(ValueError, match="1 image"):
        Groups.of(["a", None, "b"])
    with pytest.raises(ValueError, match="per_image: no 'group' column"):
        statistics.groups_of(pd.DataFrame({"image_index": [0, 1]}))
    rng = np.random.default_rng(3)
    labels, values = rng.integers(0, 7, 50), rng.normal(size=50)
    order = rng.permutation(50)
    assert statistics.cluster_bootstrap_ci(values, Groups.of(labels), 500, 2) == pytest.approx(
        statistics.cluster_bootstrap_ci(values[order], Groups.of(labels[order]), 500, 2)
    )


def test_summary_and_comparisons_give_groups_beside_images() -> None:
    table = per_image_scores(AS_STATED, n=40, group_size=5)
    summary = statistics.summarize(table, list(METRICS), N_BOOTSTRAP)
    assert (
        list(summary.columns) == statistics.SUMMARY_COLUMNS and set(summary.n) == {40} and set(summary.n_groups) == {8}
    )
    comparisons = statistics.compare_models(table, METRICS, N_BOOTSTRAP)
    assert list(comparisons.columns) == statistics.COMPARISON_COLUMNS
    assert set(comparisons.n_groups) == {8} and set(comparisons.min_groups) == {8}  # 6 pairs: 4 candidates
    assert not re.search("truth", " ".join(comparisons.model_a) + " ".join(comparisons.model_b))


def test_the_benchmark_reports_the_kits_time_a_baseline_and_their_ratio(tmp_path) -> None:
    from benchmarks import bench_statistics
    from benchmarks.results import read_results

    out = tmp_path / "bench.json"
    assert bench_statistics.main(["--images", "60", "--groups", "6", "--n-bootstrap", "100", "--repeats", "1",
                                  "--json", str(out)]) == 0  # fmt: skip
    figures = {f.name: f for f in read_results(out).figures}
    kit, loop = figures["kit: summary (cluster bootstrap)"], figures["baseline: summary by a loop over resamples"]
    assert figures["speed-up of the summary over the loop"].value == pytest.approx(loop.value / kit.value)
    assert figures["kit: evaluation statistics (every table)"].met


# --- the generalization gap: out of a model's domain less in it ----------------------------------------------------


def reference_gap_interval(own: np.ndarray, other: np.ndarray, own_k: int, other_k: int, seed: int) -> tuple:
    """Two independent image bootstraps written out (each domain its own seeded stream), their difference."""
    draws = []
    for values, k in ((own, own_k), (other, other_k)):
        picks = np.random.default_rng(seed + k).integers(0, len(values), size=(N_BOOTSTRAP, len(values)))
        draws.append(values[picks].mean(axis=1))
    return tuple(np.percentile(draws[1] - draws[0], [2.5, 97.5]))


def test_the_generalization_gap_is_out_of_domain_less_in_domain_over_whole_groups() -> None:
    table = per_image_scores(AS_STATED, n=30)  # each image its own group: the per-image bootstrap, written out
    gaps = statistics.generalization_gaps(table, "ciede2000", N_BOOTSTRAP, seed=4).set_index("model")
    assert list(gaps.index) == ["cartoon", "movie"]  # mixed has no domain of its own; nor the baselines
    domains = list(pd.unique(table.test_domain))
    for model in ("cartoon", "movie"):
        other = next(d for d in domains if d != model)
        scores = {d: table[(table.model == model) & (table.test_domain == d)].sort_values("image_index")["ciede2000"]
                  for d in (model, other)}  # fmt: skip
        row = gaps.loc[model]
        assert row.gap == pytest.approx(scores[other].mean() - scores[model].mean())
        assert row.in_mean == pytest.approx(scores[model].mean()) and row.n_groups_in == row.n_groups_out == 30
        reference = reference_gap_interval(scores[model].to_numpy(), scores[other].to_numpy(),
                                           domains.index(model), domains.index(other), 4)  # fmt: skip
        assert (row.ci_low, row.ci_high) == pytest.approx(reference, rel=1e-9)
    grouped = per_image_scores(AS_STATED, n=40, group_size=5)
    once = statistics.generalization_gaps(grouped, "ciede2000", N_BOOTSTRAP, seed=4)
    thrice = statistics.generalization_gaps(copied(grouped, 3), "ciede2000", N_BOOTSTRAP, seed=4)
    pd.testing.assert_frame_equal(once, thrice)  # copies within a group: the same groups, the same interval


def test_the_pairs_compared_grow_linearly_with_the_models_and_keep_every_pair_the_paper_needs() -> None:
    table = per_image_scores(AS_STATED, n=24)
    paper = statistics.compare_models(table, METRICS, N_BOOTSTRAP, seed=4)
    families = paper.groupby(["test_domain", "metric"]).size()
    assert (families == 6).all()  # gray and the paper's three models: every pair, as ever
    mixed = table[table.model == "mixed"]
    scores = list(METRICS)
    extra = [mixed.assign(model=f"mix{f}", **{k: mixed[k] * (1 + 0.03 * f) for k in scores})  # no ties for the best
             for f in (0.1, 0.2, 0.3, 0.4, 0.6, 0.7)]  # fmt: skip
    many = pd.concat([table, *extra], ignore_index=True)  # 9 models and gray: 45 pairs if every pair were compared
    comparisons = statistics.compare_models(many, METRICS, N_BOOTSTRAP, seed=4)
    models = [m for m in pd.unique(many.model) if m not in statistics.BASELINES]
    for (domain, metric), family in comparisons.groupby(["test_domain", "metric"]):
        pairs = {frozenset(p) for p in zip(family.model_a, family.model_b)}
        means = many[(many.test_domain == domain) & (many.model != "truth")].groupby("model")[metric].mean()
        best = METRICS[metric].loss(means).idxmin()
        assert {frozenset((m, "gray")) for m in models} <= pairs
        assert {frozenset((best, m)) for m in [*models, "gray"] if m != best} <= pairs
        assert {frozenset(p) for p in (("cartoon", "movie"), ("cartoon", "mixed"), ("movie", "mixed"))} <= pairs
        assert len(pairs) <= 2 * len(models) + 3 < 45


# --- the rules docs/results.md states, each held -------------------------------------------------------------------


def test_loss_diff_is_the_mean_over_images_and_the_test_is_over_the_groups_means() -> None:
    """Groups of 20, 8, 4, 2, 2 and four of 1 image; mixed is worse by 3 on the large group's 20 cartoon images
    only: the image-weighted mean and the mean of the groups' means differ by far more than the noise."""
    table = per_image_scores(AS_STATED, n=40)
    labels = np.repeat(np.arange(9), [20, 8, 4, 2, 2, 1, 1, 1, 1])
    table = table.assign(group=labels[table.image_index])
    worse = (table.model == "mixed") & (table.test_domain == "cartoon") & (table.group == 0)
    table.loc[worse, "ciede2000"] += 3.0
    comparisons = statistics.compare_models(table, METRICS, N_BOOTSTRAP, seed=4)
    groups = Groups.of(labels)
    for row in comparisons[comparisons.metric.isin(["ciede2000", "ssim"])].itertuples():
        part = table[table.test_domain == row.test_domain].sort_values("image_index")
        a, b = (part[part.model == m][row.metric].to_numpy() for m in (row.model_a, row.model_b))
        loss = METRICS[row.metric].loss
        diff = loss(a) - loss(b)
        assert row.loss_diff == pytest.approx(diff.mean(), rel=1e-12)  # each image weighs the same
        assert (row.mean_a, row.mean_b) == pytest.approx((a.mean(), b.mean()), rel=1e-12)
        assert row.p_wilcoxon == pytest.approx(wilcoxon(groups.means(diff)).pvalue, rel=1e-12)  # a group is one
        assert (row.ci_low, row.ci_high) == pytest.approx(statistics.cluster_bootstrap_ci(diff, groups, N_BOOTSTRAP, 4))
    shifted = comparisons[(comparisons.test_domain == "cartoon") & (comparisons.metric == "ciede2000")
                          & (comparisons.model_a == "movie") & (comparisons.model_b == "mixed")].iloc[0]  # fmt: skip
    part = table[table.test_domain == "cartoon"].sort_values("image_index")
    diff = part[part.model == "movie"]["ciede2000"].to_numpy() - part[part.model == "mixed"]["ciede2000"].to_numpy()
    assert abs(groups.means(diff).mean() - diff.mean()) > 1.0  # not the mean of the groups' means
    assert shifted.loss_diff == pytest.approx(diff.mean(), rel=1e-12)


def test_the_best_is_gray_or_a_model_whose_mean_has_the_lowest_loss_and_on_a_tie_the_first_in_the_table() -> None:
    table = per_image_scores(AS_STATED, n=24)
    mixed = table[table.model == "mixed"]
    ahead = mixed.assign(model="mix0.9", ciede2000=mixed.ciede2000 - 8)  # the lowest CIEDE2000 ...
    tied = ahead.assign(model="mix0.1")  # ... tied, and later in the table: not the best, though its name sorts first
    ratios = np.where(mixed.image_index % 2 == 0, 0.5, 1.5)  # mean 1: the best ratio, each image 0.5 off
    off = mixed.assign(model="mix0.5", ciede2000=mixed.ciede2000 + 1, colorfulness_ratio=ratios)
    many = pd.concat([table, ahead, tied, off], ignore_index=True)
    many.loc[many.model == "gray", "psnr"] = 100.0  # gray leads PSNR
    comparisons = statistics.compare_models(many, METRICS, N_BOOTSTRAP, seed=4)
    candidates = [m for m in pd.unique(many.model) if m != "truth"]  # gray among them, in the table's order
    models = [m for m in candidates if m != "gray"]
    paper = {frozenset(p) for p in itertools.combinations(("cartoon", "movie", "mixed"), 2)}
    bests = {}
    for (domain, metric), family in comparisons.groupby(["test_domain", "metric"]):
        means = many[many.test_domain == domain].groupby("model")[metric].mean()
        losses = [float(METRICS[metric].loss(means[m])) for m in candidates]
        best = candidates[losses.index(min(losses))]  # the first of the lowest
        pairs = {frozenset(p) for p in zip(family.model_a, family.model_b)}
        assert pairs == {frozenset((m, "gray")) for m in models} | {frozenset((best, m)) for m in candidates
                                                                    if m != best} | paper  # fmt: skip
        m = len(models)
        assert len(pairs) == (
            m + 3 if best == "gray" else 2 * m if best in ("cartoon", "movie", "mixed") else 2 * m + 2
        )
        bests[(domain, metric)] = best
    for domain in ("cartoon", "movie"):
        assert bests[(domain, "ciede2000")] == "mix0.9"  # the tie: the first in the table, not the truth's 0
        assert bests[(domain, "colorfulness_ratio")] == "mix0.5"  # the loss of the mean, not the mean loss
        assert bests[(domain, "psnr")] == "gray"


def exact_signed_rank_p(differences: np.ndarray) -> float:
    """The two-sided signed-rank p from the exact distribution of the sum of positive ranks over all 2^n sign
    flips, by dynamic programming over doubled mean ranks (integers): zeros dropped, ties given mean ranks."""
    d = differences[differences != 0]
    doubled = np.rint(2 * rankdata(np.abs(d))).astype(int)
    counts = np.zeros(doubled.sum() + 1)
    counts[0] = 1.0
    for rank in doubled:
        counts[rank:] = counts[rank:] + counts[:-rank]  # the right side is evaluated first: the old counts
    null = counts / counts.sum()
    observed = doubled[d > 0].sum()
    return min(1.0, 2 * min(null[: observed + 1].sum(), null[observed:].sum()))


def normal_signed_rank_p(differences: np.ndarray) -> float:
    """The two-sided normal approximation: zeros dropped, the variance corrected for ties, no continuity correction."""
    d = differences[differences != 0]
    n = len(d)
    _, tied = np.unique(np.abs(d), return_counts=True)
    variance = (n * (n + 1) * (2 * n + 1) - (tied**3 - tied).sum() / 2) / 24
    z = (rankdata(np.abs(d))[d > 0].sum() - n * (n + 1) / 4) / np.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


def groups_differences(n: int, case: str) -> np.ndarray:
    """n groups' mean differences: distinct, with one tie (two equal absolute values), or with one 0."""
    d = np.random.default_rng(n).normal(0.8, 1.0, n)
    if case == "a tie":
        d[1] = -d[0]
    if case == "a zero":
        d[2] = 0.0
    return d


def test_the_exact_reference_is_the_enumeration_of_sign_flips() -> None:
    for case in ("distinct", "a tie", "a zero"):
        d = groups_differences(10, case)
        assert exact_signed_rank_p(d) == pytest.approx(sign_flip_p(d), rel=1e-12)


@pytest.mark.parametrize(
    "n, case, rule",
    [(13, "a tie", "exact"), (13, "a zero", "exact"), (14, "a tie", "normal"), (14, "a zero", "normal"),
     (14, "distinct", "exact"), (50, "distinct", "exact"), (50, "a tie", "normal"), (51, "distinct", "normal")],
)  # fmt: skip
def test_the_signed_rank_p_is_exact_or_the_normal_approximation_as_the_docs_say(n: int, case: str, rule: str) -> None:
    d = groups_differences(n, case)
    exact, normal = exact_signed_rank_p(d), normal_signed_rank_p(d)
    assert abs(exact - normal) > 0.02 * min(exact, normal)  # the case tells the two apart
    assert statistics.signed_rank_p(d) == pytest.approx(exact if rule == "exact" else normal, rel=1e-9)


def test_the_signed_rank_p_is_1_when_every_group_has_a_difference_of_0() -> None:
    assert statistics.signed_rank_p(np.zeros(7)) == 1.0


def test_the_minimum_groups_table_in_the_docs_is_the_codes() -> None:
    """Each row of docs/results.md's table: a range of family sizes, every one needing the row's groups, by the code
    and by 2 / 2^n x family < 0.05 written out; the ranges run on from 1, each as wide as it can be."""
    page = (KIT_ROOT / "docs" / "results.md").read_text()
    (table,) = [t for t in tables(page) if t[0][0] == "tests in the family"]
    assert table[0][-1] == "groups needed"
    start = 1
    for row in table[1:]:
        low, _, high = row[0].partition("–")
        low, high, needed = int(low), int(high or low), int(row[-1])
        assert low == start
        for family in range(low, high + 1):
            assert statistics.minimum_groups(family) == needed
            assert needed == next(n for n in range(1, 64) if 2 * 0.5**n * family < 0.05)
        assert statistics.minimum_groups(high + 1) == needed + 1
        start = high + 1
    assert start > 25  # up to 11 models' comparisons
