"""Run-to-run variation: every model trained once per seed, each seed's models scored, the report counts them."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.helpers import run_with_data
from utils.core import config
from utils.eval import evaluate, plots, report
from utils.nets.checkpoints import load_checkpoint
from utils.train import training

pytestmark = pytest.mark.slow  # two models trained per seed, then evaluated


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory: pytest.TempPathFactory, prepared_run: Path, tiny_params, one_epoch_run) -> Path:
    """Seed 0 of each model is conftest's one-epoch run (``seeds`` and ``models`` do not shape a model's training:
    a resume may change them), seed 1 is trained here."""
    params = dataclasses.replace(tiny_params, seeds=2, models=("cartoon", "mixed"), n_bootstrap=200)
    run = run_with_data(tmp_path_factory.mktemp("seeds") / "run", prepared_run)
    for model in params.models:
        trained = config.model_dir(one_epoch_run(model), model, 0)
        shutil.copytree(trained, config.model_dir(run, model, 0), copy_function=os.link)  # writes replace files
        training.train(params, run, model, 1, show_progress=False)
    evaluate.evaluate_models(params, run, show_progress=False)
    (run / "figures").mkdir()
    report.write_report(run)
    return run


def test_each_seed_trains_its_own_models_on_the_same_data(two_seed_run: Path) -> None:
    for model in ("cartoon", "mixed"):
        first, second = (load_checkpoint(config.model_dir(two_seed_run, model, s) / "best.pt") for s in (0, 1))
        assert first["position"]["seed"] == 0 and second["position"]["seed"] == 1
        assert first["position"]["train_images"] == second["position"]["train_images"]  # one split of the data
        differ = [k for k in first["generator"] if not torch.equal(first["generator"][k], second["generator"][k])]
        assert len(differ) > len(first["generator"]) // 2, f"{model}: the seeds trained the same weights"


def test_every_seed_is_scored_and_the_summary_averages_them(two_seed_run: Path) -> None:
    per_image = pd.read_csv(two_seed_run / "eval" / "per_image.csv")
    counts = per_image.groupby(["model", "seed"]).size().to_dict()
    n = 2 * 8  # two test domains of 8 images
    assert counts == {("cartoon", 0): n, ("cartoon", 1): n, ("mixed", 0): n, ("mixed", 1): n,
                      ("gray", -1): n, ("truth", -1): n}  # fmt: skip
    by_seed = pd.read_csv(two_seed_run / "eval" / "summary_by_seed.csv")
    summary = pd.read_csv(two_seed_run / "eval" / "summary.csv")
    for model in ("cartoon", "mixed"):
        rows = by_seed[(by_seed.model == model) & (by_seed.metric == "ciede2000") & (by_seed.test_domain == "movie")]
        assert sorted(rows.seed) == [0, 1] and rows["mean"].nunique() == 2
        pooled = summary[(summary.model == model) & (summary.metric == "ciede2000") & (summary.test_domain == "movie")]
        assert pooled["mean"].item() == pytest.approx(rows["mean"].mean())
        assert pooled["n"].item() == 8  # an image averaged over the seeds is still one image
        assert (
            pooled["n_groups"].item()
            == rows["n_groups"].iloc[0]
            == per_image.query("test_domain == 'movie'")["group"].nunique()
        )


def test_each_image_carries_its_group_from_the_manifest(two_seed_run: Path) -> None:
    per_image = pd.read_csv(two_seed_run / "eval" / "per_image.csv")
    manifest = pd.read_csv(two_seed_run / "data" / "manifest.csv").query("split == 'test'")
    for (domain, model, seed), part in per_image.groupby(["test_domain", "model", "seed"]):
        expected = manifest[manifest.domain == domain].sort_values("index")["group"].astype(str).tolist()
        assert part.sort_values("image_index")["group"].astype(str).tolist() == expected, (domain, model, seed)


def test_the_report_gives_each_seed_and_counts_the_verdicts_over_both(two_seed_run: Path) -> None:
    text = (two_seed_run / "report.md").read_text()
    assert text.index("## The paper's claims") < text.index("## Findings") < text.index("### Run-to-run variation")
    variation = text[text.index("### Run-to-run variation") : text.index("## The data and the training")]
    assert "2 training seeds per model" in variation and "CIEDE2000: range of the seeds' means" in variation
    assert all(f"| {model} " in variation for model in ("cartoon", "mixed"))
    assert text.splitlines()[2].startswith("`run`: models") and str(two_seed_run.parent) not in text  # its name
    claims = pd.read_csv(two_seed_run / "eval" / "claims.csv", keep_default_na=False)
    testable = claims[~claims.verdict.str.startswith("not testable")]
    assert len(testable) and testable.seeds_holding.str.endswith("of 2").all()


def test_figures_show_each_seed_as_a_point(two_seed_run: Path) -> None:
    import matplotlib.pyplot as plt

    shown = []
    original = plt.Axes.scatter
    try:
        plt.Axes.scatter = lambda ax, x, y, **kw: shown.append(list(y)) or original(ax, x, y, **kw)
        plots.plot_metric(two_seed_run, "ciede2000")
    finally:
        plt.Axes.scatter = original
    by_seed = pd.read_csv(two_seed_run / "eval" / "summary_by_seed.csv").query("metric == 'ciede2000'")
    assert len(shown) == 2 * 2 and all(len(points) == 2 for points in shown)  # 2 models x 2 domains, 2 seeds each
    assert sorted(v for points in shown for v in points) == pytest.approx(sorted(by_seed["mean"]))
