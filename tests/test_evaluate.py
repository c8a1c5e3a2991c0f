"""Evaluation: intervals and paired comparisons on scores, the findings in words, and scoring (eager and compiled)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from tests.helpers import write_manifest
from utils.core import statistics
from utils.core.errors import UnreadableFileError
from utils.eval import evaluate, report_findings
from utils.imaging import scoring
from utils.imaging.metrics import METRICS


def test_bootstrap_interval_is_seeded_and_near_the_normal_theory_width() -> None:
    values = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    groups = statistics.Groups.of(np.arange(400) // 4)  # groups of 4 independent images: as wide as 400 images
    low, high = statistics.cluster_bootstrap_ci(values, groups, 2000, seed=3)
    assert (low, high) == statistics.cluster_bootstrap_ci(values, groups, 2000, seed=3)
    assert low < values.mean() < high
    normal_width = 2 * 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert high - low == pytest.approx(normal_width, rel=0.15)


def test_paired_comparison_uses_the_per_image_differences() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(5.0, 3.0, size=200)
    b = a + rng.normal(0.3, 0.2, size=200)  # b is worse on every image by a little; unpaired, lost in the spread
    groups = statistics.Groups.of(np.arange(200))
    diff, low, high, p, n, n_groups = statistics.paired_comparison(a, b, groups, 2000, seed=0)
    assert diff == pytest.approx((a - b).mean()) and low < diff < high < 0
    assert p == pytest.approx(wilcoxon(a - b).pvalue) and p < 1e-10
    assert statistics.paired_comparison(a, a, groups, 2000, seed=0).p == 1.0


def synthetic_per_image(n: int = 60) -> pd.DataFrame:
    """Three models on one domain: 'good' beats 'gray' clearly, 'twin' equals 'good' up to noise."""
    rng = np.random.default_rng(2)
    base = rng.uniform(5, 25, size=n)
    rows = []
    for model, shift, ratio in (("gray", 4.0, 0.0), ("good", 0.0, 0.8), ("twin", 0.0, 0.8)):
        noise = rng.normal(0, 0.3, size=n) if model == "twin" else 0.0
        values = {m: rng.uniform(0.2, 0.9, size=n) for m in METRICS}
        values |= {"ciede2000": base + shift + noise, "colorfulness_ratio": ratio + noise * 0.01}
        rows.append(pd.DataFrame({"model": model, "test_domain": "movie", "image_index": np.arange(n), "group": np.arange(n),
                                  **values}))  # fmt: skip
    truth = {m: np.ones(n) for m in METRICS} | {"ciede2000": np.zeros(n)}
    rows.append(pd.DataFrame({"model": "truth", "test_domain": "movie", "image_index": np.arange(n), "group": np.arange(n),
                              **truth}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_comparisons_name_the_better_model_and_only_real_differences_are_significant() -> None:
    comparisons = statistics.compare_models(synthetic_per_image(), METRICS, 1000, seed=0)
    assert "truth" not in set(comparisons.model_a) | set(comparisons.model_b)
    de = comparisons[comparisons.metric == "ciede2000"].set_index(["model_a", "model_b"])
    assert de.loc[("gray", "good"), "better"] == "good" and de.loc[("gray", "good"), "significant"]
    assert de.loc[("gray", "good"), "loss_diff"] == pytest.approx(4.0)
    assert not de.loc[("good", "twin"), "significant"]
    ratio = comparisons[comparisons.metric == "colorfulness_ratio"].set_index(["model_a", "model_b"])
    assert ratio.loc[("gray", "good"), "better"] == "good"  # 0.8 is nearer 1 than 0
    assert ratio.loc[("gray", "good"), "loss_diff"] == pytest.approx(1.0 - 0.2)


def run_tables(summary: pd.DataFrame, comparisons: pd.DataFrame) -> report_findings.RunTables:
    claims = pd.DataFrame({"claim": ["a"], "reading": ["one reading"], "verdict": ["not testable"], "reason": ["x"]})
    return report_findings.RunTables(summary, comparisons, claims, pd.DataFrame(), None, {})


def test_summary_and_findings_read_the_right_way_round() -> None:
    per_image = synthetic_per_image()
    summary = statistics.summarize(per_image, list(METRICS), 1000, seed=0)
    assert list(summary.columns) == statistics.SUMMARY_COLUMNS
    comparisons = statistics.compare_models(per_image, METRICS, 1000, seed=0)
    tables = run_tables(summary.assign(test_domain="movie"), comparisons)
    movie = next(line for line in report_findings.findings_lines(tables) if line.startswith("- **movie**"))
    ciede = movie.split("; highest SSIM")[0]
    best, runner_up = ("good", "twin") if "lowest CIEDE2000: the good model" in ciede else ("twin", "good")
    assert f"lowest CIEDE2000: the {best} model" in ciede  # the lower the better
    assert f"ahead of the {runner_up} model, not significantly" in ciede  # the runner-up: its twin
    answer = report_findings.answer_lines(tables)[1]
    assert f"on movie test images the {best} model, ahead of the {runner_up} model, not significantly" in answer
    table = report_findings.metric_table(summary, "ciede2000")
    assert list(table.index[:2]) == ["gray", "truth"]
    assert table.loc["truth", "movie"].startswith("0.000 [") and "**" not in table.loc["truth", "movie"]
    assert table.loc["images (groups)", "movie"] == "60 (60)"


def test_findings_on_few_groups_say_they_cannot_tell() -> None:
    per_image = synthetic_per_image().assign(group=lambda t: t["image_index"] // 20)  # 60 images of 3 photographs
    summary = statistics.summarize(per_image, list(METRICS), 1000, seed=0)
    comparisons = statistics.compare_models(per_image, METRICS, 1000, seed=0)
    lines = report_findings.findings_lines(run_tables(summary, comparisons))
    domain = next(line for line in lines if line.startswith("- **movie**"))
    assert domain.endswith("Too few groups to tell any two models apart: 3, where this domain's comparisons need 7 "
                           "(below).")  # Holm over 3 pairs; said once for the domain  # fmt: skip
    assert domain.count("groups") == 2 and "significantly" not in domain
    saturation = next(line for line in lines if line.startswith("- **Saturation**"))
    assert "too few groups to tell on movie (3)" in saturation and "washed out:" not in saturation
    assert report_findings.comparison_table(comparisons)["verdict"].eq("cannot tell: 7 groups needed").all()


def _batch(n: int) -> tuple:
    import torch

    from utils.data.demo import demo_cartoon_frames
    from utils.imaging import color

    frames = torch.from_numpy(np.stack([c.rgb for c in demo_cartoon_frames(n, 32, seed=4)]))
    rgb = color.uint8_to_rgb(frames)
    l_norm, ab = color.normalize_lab(color.rgb_to_lab(rgb))
    return rgb, l_norm, 0.5 * ab


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("g++") and not shutil.which("c++"), reason="torch.compile needs a C++ compiler")
def test_compiled_scoring_equals_eager_and_pads_a_short_batch() -> None:
    scorer = scoring.BatchScorer(compiled=True, batch_size=8)
    rgb, l_norm, ab = _batch(5)
    compiled = scorer(rgb, l_norm, ab)
    assert scorer.compiled is not None, "torch.compile failed on this machine"
    eager = scoring.score_batch(rgb, l_norm, ab)
    assert set(compiled) == set(METRICS)
    for name, values in eager.items():
        assert compiled[name].shape == (5,)
        np.testing.assert_allclose(compiled[name].numpy(), values.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_compiler_failure_falls_back_to_eager_scoring(monkeypatch, capsys) -> None:
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: broken)
    scorer = scoring.BatchScorer(compiled=True, batch_size=8)
    rgb, l_norm, ab = _batch(3)
    scores = scorer(rgb, l_norm, ab)
    assert scorer.compiled is None and "scoring eagerly" in capsys.readouterr().out
    assert torch.equal(scores["ciede2000"], scoring.score_batch(rgb, l_norm, ab)["ciede2000"])


def test_each_test_image_gets_its_group_from_the_manifest(tmp_path) -> None:
    manifest = {"domain": ["movie"] * 3 + ["cartoon"], "split": ["test"] * 4, "index": [2, 0, 1, 0]}
    write_manifest(tmp_path, **manifest, group=["b", "a", "a", "c"])
    assert evaluate.image_groups(tmp_path, "movie", 3).tolist() == ["a", "a", "b"]  # in shard order
    with pytest.raises(ValueError, match=r"manifest.csv: 3 movie test rows for 4 images in the movie test shard"):
        evaluate.image_groups(tmp_path, "movie", 4)
    write_manifest(tmp_path, **manifest, group=["b", None, "a", "c"])
    with pytest.raises(UnreadableFileError, match=r"manifest.csv: damaged, group missing or unreadable on some rows"):
        evaluate.image_groups(tmp_path, "movie", 3)
