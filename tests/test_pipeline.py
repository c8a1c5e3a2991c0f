"""The whole kit through papermill on a tiny profile, as `make demo` runs it, on messy data laid
out like Kaggle's input mount (every bad-input kind, groups, duplicates across groups)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY
from tests.messy_data import write_kaggle_like_dataset
from utils import config, pipeline
from utils.metrics import METRICS


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("pipeline")
    write_kaggle_like_dataset(base / "input" / "datasets" / "someone" / "cartoon-frames", seed=1)
    write_kaggle_like_dataset(base / "input" / "movie-stills", seed=2)
    overrides = {**TINY, "source": "kaggle", "cartoon_dataset": "someone/cartoon-frames",
                 "movie_dataset": "someone/movie-stills", "kaggle_input_root": base / "input"}  # fmt: skip
    run_dir = base / "run"
    pipeline.run_pipeline("demo", run_dir, {k: str(v) for k, v in overrides.items()}, progress=False)
    return run_dir


def _outputs(notebook: Path) -> list[dict]:
    nb = json.loads(notebook.read_text())
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def test_run_directory_holds_every_stage_output(pipeline_run: Path) -> None:
    run = pipeline_run
    record = json.loads((run / "run.json").read_text())
    assert record["profile"] == "demo" and record["parameters"]["image_size"] == TINY["image_size"]
    assert record["parameters"]["source"] == "kaggle" and record["stages"]["prepare"]["rejected"] > 0
    assert {"prepare", "train_cartoon", "train_movie", "train_mixed", "evaluate", "figures"} <= set(record["stages"])
    assert {"torch", "timm", "kornia"} <= set(record["packages"]) and "gpus" in record["devices"]
    for domain in config.DOMAINS:
        for split in ("train", "test"):
            assert (run / "data" / f"{domain}_{split}.npy").is_file()
    for model in config.MODEL_DOMAINS:
        out = run / "models" / model
        for name in ("checkpoint_last.pt", "best.pt", "history.csv", "samples/epoch_01.png"):
            assert (out / name).is_file(), f"{model}: {name}"
    for name in (
        "loss_curves",
        "ciede2000",
        "ssim",
        "ssim_ab",
        "psnr",
        "saturation",
        "chroma_ratio",
        "examples_cartoon",
        "examples_movie",
    ):
        assert (run / "figures" / f"{name}.png").is_file()
    rendered = sorted(p.name for p in (run / "notebooks").glob("*.ipynb"))
    assert rendered == [
        "01_prepare_data.ipynb",
        "02_train_cartoon.ipynb",
        "02_train_mixed.ipynb",
        "02_train_movie.ipynb",
        "03_evaluate.ipynb",
        "04_figures.ipynb",
        "05_colorize.ipynb",
    ]


def test_metrics_tables_cover_models_and_both_baselines(pipeline_run: Path) -> None:
    per_image = pd.read_csv(pipeline_run / "eval" / "per_image.csv")
    assert set(per_image.model) == {"gray", "truth", "cartoon", "movie", "mixed"}
    assert set(METRICS) <= set(per_image.columns)
    counts = per_image.groupby(["model", "test_domain"]).size()
    assert (counts == TINY["test_per_domain"]).all() and len(counts) == 10
    summary = pd.read_csv(pipeline_run / "eval" / "summary.csv")
    assert list(summary.columns) == ["model", "test_domain", "metric", "mean", "ci_low", "ci_high", "std", "n"]
    assert set(summary.metric) == set(METRICS) and len(summary) == 10 * len(METRICS)
    assert (summary.ci_low <= summary["mean"]).all() and (summary["mean"] <= summary.ci_high).all()
    gray, truth = per_image[per_image.model == "gray"], per_image[per_image.model == "truth"]
    assert (gray.ciede2000 > 0).all() and gray.ssim.between(0, 1).all()
    assert (gray.colorfulness_ratio < 0.05).all() and (gray.chroma_ratio < 0.05).all()  # no colour at all
    # the truth through the same round trip: the pipeline loses next to nothing
    assert (truth.ciede2000 < 0.5).all() and (truth.ssim > 0.99).all() and (truth.ssim_ab > 0.99).all()
    assert truth.colorfulness_ratio.between(0.98, 1.02).all()
    comparisons = pd.read_csv(pipeline_run / "eval" / "comparisons.csv")
    ranked = [m for m, info in METRICS.items() if info.ranked]
    assert set(comparisons.metric) == set(ranked) and "truth" not in set(comparisons.model_a) | set(comparisons.model_b)
    assert len(comparisons) == 2 * len(ranked) * 6  # 4 candidates (gray and 3 models): 6 pairs per domain and metric


def test_prepare_notebook_reports_rejections_by_reason(pipeline_run: Path) -> None:
    outputs = _outputs(pipeline_run / "notebooks" / "01_prepare_data.ipynb")
    shown = "".join("".join(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "corrupt" in shown and "duplicate" in shown


def test_figures_are_inline_and_report_states_directions(pipeline_run: Path) -> None:
    images = [o for o in _outputs(pipeline_run / "notebooks" / "04_figures.ipynb") if "image/png" in o.get("data", {})]
    assert len(images) >= 9
    assert any("image/png" in o.get("data", {}) for o in _outputs(pipeline_run / "notebooks" / "02_train_mixed.ipynb"))
    report = (pipeline_run / "report.md").read_text()
    assert "CIEDE2000 (lower is better)" in report and "SSIM (higher is better)" in report
    assert "| gray" in report and "| truth" in report and "| mixed" in report
    assert "## Findings" in report and "best is" in report and "ahead of" in report
    assert "of the truth's colorfulness" in report and "Wilcoxon" in report


def test_failing_cell_names_notebook_cell_and_error(tmp_path: Path, pipeline_run: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "data").mkdir(parents=True)
    (run_dir / "data" / "manifest.csv").write_text((pipeline_run / "data" / "manifest.csv").read_text())
    step = pipeline.Step(
        "03_evaluate.ipynb", "03_evaluate.ipynb", {"profile": "demo", "run_dir": str(run_dir), "overrides": TINY}
    )
    with pytest.raises(pipeline.StageFailed) as err:
        pipeline.run_step(step, run_dir, progress=False)
    message = str(err.value)
    assert "03_evaluate.ipynb" in message and "cell" in message and "ParameterError" in message
    assert "'models'" in message
    assert (run_dir / "notebooks" / "03_evaluate.ipynb").is_file()
