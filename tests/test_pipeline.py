"""The whole kit through papermill on a tiny profile, as `make demo` runs it, on messy data laid
out like Kaggle's input mount (every bad-input kind, groups, duplicates across groups); the train
notebooks two at a time, as separate processes."""

from __future__ import annotations

import base64
import datetime as dt
import json
import multiprocessing
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch

from tests.conftest import TINY
from tests.helpers import assert_report_answers_first
from tests.messy_data import write_kaggle_like_dataset
from utils import pipeline
from utils.core import config, errors
from utils.core.domains import DEMO_DOMAINS, DEMO_MODELS
from utils.core.run_dir import hold_run_dir, record_stage_fields
from utils.imaging.metrics import METRICS
from utils.nets import environment
from utils.run import scheduler
from utils.run.notebook_step import KIT_ROOT, StageFailed, Step, run_step
from utils.train import training


def run_overrides(run_dir: Path, **more: str) -> dict[str, str]:
    """The pipeline test's parameters: TINY sizes, Kaggle-like input beside the run directory, two train
    notebooks at once."""
    overrides = {**TINY, "source": "kaggle", "cartoon_dataset": "someone/cartoon-frames",
                 "movie_dataset": "someone/movie-stills", "kaggle_input_root": run_dir.parent / "input",
                 "train_concurrency": 2, **more}  # fmt: skip
    return {k: str(v) for k, v in overrides.items()}


BATCH_REFUSAL: dict[str, object] = {}  # what the pipeline run's first try, with a batch no model fills, left


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory) -> Path:
    """The whole pipeline, tried first with a batch larger than any model's training images (refused after prepare,
    before any model trains), then run to the end with the batch the refusal suggests."""
    base = tmp_path_factory.mktemp("pipeline")
    write_kaggle_like_dataset(base / "input" / "datasets" / "someone" / "cartoon-frames", seed=1)
    write_kaggle_like_dataset(base / "input" / "movie-stills", seed=2)
    run_dir = base / "run"
    with pytest.raises(errors.ParameterError) as refused:
        pipeline.run_pipeline("demo", run_dir, run_overrides(run_dir, batch_size=200), progress=False)
    BATCH_REFUSAL.update(message=str(refused.value), prepared=(run_dir / "data" / "prepared.json").is_file(),
                         written=sorted(p.name for p in run_dir.glob("models/**/*") if p.is_file()))  # fmt: skip
    suggested = re.search(r"use batch_size=(\d+)", str(refused.value))
    batch = suggested.group(1) if suggested else TINY["batch_size"]
    pipeline.run_pipeline("demo", run_dir, run_overrides(run_dir, batch_size=batch), progress=False)
    BATCH_REFUSAL["batch_size"] = json.loads((run_dir / "run.json").read_text())["parameters"]["batch_size"]
    return run_dir


@pytest.mark.slow
def test_a_batch_no_model_fills_is_refused_after_prepare_and_the_suggested_one_finishes(pipeline_run: Path) -> None:
    message = str(BATCH_REFUSAL["message"])
    assert re.search(r"parameter 'batch_size' = 200: larger than the \d+ training images of model '\w+'; use "
                     r"batch_size=\d+", message), message  # fmt: skip
    assert BATCH_REFUSAL["prepared"] and BATCH_REFUSAL["written"] == []  # after prepare; no model written
    suggested = int(re.search(r"use batch_size=(\d+)", message).group(1))
    assert BATCH_REFUSAL["batch_size"] == suggested  # the same run directory, finished with it
    assert (pipeline_run / "report.md").is_file()


def prepared_copy(pipeline_run: Path, run_dir: Path) -> Path:
    """A run directory holding the pipeline run's data and devices, and no trained model."""
    shutil.copytree(pipeline_run / "data", run_dir / "data")
    record = json.loads((pipeline_run / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({"devices": record["devices"]}))
    return run_dir


def train_steps(run_dir: Path, overrides: dict[str, str]) -> list[Step]:
    return [s for s in pipeline.plan_steps("demo", run_dir, overrides) if s.stage.startswith("train_")]


def _outputs(notebook: Path) -> list[dict]:
    nb = json.loads(notebook.read_text())
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


@pytest.mark.slow
def test_run_directory_holds_every_stage_output(pipeline_run: Path) -> None:
    run = pipeline_run
    record = json.loads((run / "run.json").read_text())
    assert record["profile"] == "demo" and record["parameters"]["image_size"] == TINY["image_size"]
    assert record["parameters"]["source"] == "kaggle" and record["stages"]["prepare"]["rejected"] > 0
    assert {"prepare", "train_cartoon_seed0", "train_movie_seed0", "train_mixed_seed0", "evaluate", "figures"} <= set(
        record["stages"]
    )
    assert {"torch", "timm", "kornia"} <= set(record["packages"]) and "gpus" in record["devices"]
    for domain in DEMO_DOMAINS:
        for split in ("train", "test"):
            assert (run / "data" / f"{domain}_{split}.npy").is_file()
    for model in DEMO_MODELS:
        out = config.model_dir(run, model, 0)
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
        "02_train_cartoon_seed0.ipynb",
        "02_train_mixed_seed0.ipynb",
        "02_train_movie_seed0.ipynb",
        "03_evaluate.ipynb",
        "04_figures.ipynb",
        "05_colorize.ipynb",
    ]
    for model in DEMO_MODELS:  # each train notebook's outputs, live, in its own log
        log = (run / "logs" / f"train_{model}_seed0.log").read_text()
        assert f"{model} epoch 1/1" in log and "without encryption" not in log  # ipykernel's start-up warning


@pytest.mark.slow
def test_run_json_holds_each_stages_startup(pipeline_run: Path) -> None:
    stages = json.loads((pipeline_run / "run.json").read_text())["stages"]
    assert set(stages) == {
        "prepare",
        "train_cartoon_seed0",
        "train_movie_seed0",
        "train_mixed_seed0",
        "evaluate",
        "figures",
        "colorize",
    }
    for name, stage in stages.items():
        startup = stage["startup"]
        assert set(startup) == {"launch_s", "kernel_s", "imports_s", "total_s"}, name
        assert startup["kernel_s"] > 0 and startup["imports_s"] > 0 and startup["launch_s"] >= 0, name
        parts = startup["launch_s"] + startup["kernel_s"] + startup["imports_s"]
        assert abs(startup["total_s"] - parts) < 0.02 and startup["total_s"] < stage["seconds"], name
        assert 0 <= stage["shutdown_s"] < stage["seconds"], name
        if name.startswith("train_"):  # a process of its own: python and papermill start first
            assert startup["launch_s"] > 0.1, name


@pytest.mark.slow
def test_concurrent_train_notebooks_give_the_weights_of_sequential_runs(pipeline_run: Path, tmp_path: Path) -> None:
    """The pipeline trained cartoon and movie at once, two processes with their share of the cores each;
    trained one after the other here, at that thread count, each model's weights are the same, bit for bit."""
    notebooks = {
        m: json.loads((pipeline_run / "notebooks" / f"02_train_{m}_seed0.ipynb").read_text())
        for m in ("cartoon", "movie")
    }
    spans = {m: [dt.datetime.fromisoformat(nb["metadata"]["papermill"][k]) for k in ("start_time", "end_time")]
             for m, nb in notebooks.items()}  # fmt: skip
    assert spans["cartoon"][0] < spans["movie"][1] and spans["movie"][0] < spans["cartoon"][1]  # they overlapped
    overrides = run_overrides(pipeline_run, batch_size=BATCH_REFUSAL["batch_size"])  # the batch the run took
    first_round = scheduler.train_rounds(train_steps(pipeline_run, overrides), 2, [], scheduler.cpu_cores())[0]
    assert [launch.model for launch in first_round] == ["cartoon", "movie"]
    run_dir = prepared_copy(pipeline_run, tmp_path / "run")
    params = config.resolve_params("demo", overrides)
    threads = torch.get_num_threads()
    torch.set_num_threads(first_round[0].threads)
    try:
        for model in ("cartoon", "movie"):
            training.train(params, run_dir, model, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    for model in ("cartoon", "movie"):
        ours, pipelines = (torch.load(config.model_dir(d, model, 0) / "checkpoint_last.pt", weights_only=True)
                           for d in (run_dir, pipeline_run))  # fmt: skip
        for net in ("generator", "discriminator"):
            assert ours[net].keys() == pipelines[net].keys()
            assert all(torch.equal(ours[net][k], pipelines[net][k]) for k in ours[net]), f"{model} {net}"


@pytest.mark.slow
def test_a_failing_model_is_named_and_the_other_finishes(
    pipeline_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = prepared_copy(pipeline_run, tmp_path / "run")
    corrupt = config.model_dir(run_dir, "cartoon", 0) / "checkpoint_last.pt"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not a checkpoint")  # resuming from it raises, naming the file
    overrides = run_overrides(run_dir, models="cartoon,movie")
    with pytest.raises(StageFailed) as err:
        scheduler.run_train_steps(train_steps(run_dir, overrides), run_dir, config.resolve_params("demo", overrides))
    message = str(err.value)
    assert "1 of 2 models failed" in message and "model cartoon_seed0" in message and "model movie" not in message
    assert str(corrupt) in message and "UnreadableFileError" in message and "02_train_cartoon_seed0.ipynb" in message
    assert str(run_dir / "logs" / "train_cartoon_seed0.log") in message
    out = capsys.readouterr().out
    assert out.index("02_train_movie_seed0 started") < out.index(
        "02_train_cartoon_seed0 FAILED"
    )  # at once, not one by one
    assert (config.model_dir(run_dir, "movie", 0) / "best.pt").is_file() and "02_train_movie_seed0 done" in out
    stages = json.loads((run_dir / "run.json").read_text())["stages"]
    assert set(stages) == {"train_movie_seed0"} and stages["train_movie_seed0"]["startup"]["total_s"] > 0


def test_the_pipeline_stops_before_evaluate_when_a_model_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    ran = []
    monkeypatch.setattr(pipeline, "run_step", lambda step, run_dir, progress: ran.append(step.stage))
    monkeypatch.setattr(pipeline, "record_timing", lambda *args: None)
    monkeypatch.setattr(pipeline, "plan_training", lambda *args: "the plan")  # it reads the prepared data

    def failing_training(steps: list[Step], *args: object) -> None:
        ran.extend(step.stage for step in steps)
        raise StageFailed("1 of 3 models failed to train\nmodel movie: ...")

    monkeypatch.setattr(pipeline, "run_train_steps", failing_training)
    exit_code = pipeline.main(["--profile", "demo", "--run-dir", str(tmp_path / "run"), "-p", "epochs=1"])
    assert exit_code == 1 and "model movie" in capsys.readouterr().err
    assert ran == ["prepare", "train_cartoon_seed0", "train_movie_seed0", "train_mixed_seed0"]


@pytest.mark.slow
def test_ctrl_c_leaves_no_notebook_process_behind(pipeline_run: Path, tmp_path: Path) -> None:
    run_dir = prepared_copy(pipeline_run, tmp_path / "run")
    overrides = run_overrides(run_dir, models="cartoon,movie", epochs=100)
    script = (  # the train phase alone, as the pipeline runs it, taking Ctrl-C as a terminal's foreground process
        "import json, signal, sys; from pathlib import Path; from utils.core import config; from utils import pipeline; from utils.run import scheduler; "
        "signal.signal(signal.SIGINT, signal.default_int_handler); "
        "run_dir, overrides = Path(sys.argv[1]), json.loads(sys.argv[2]); "
        "steps = [s for s in pipeline.plan_steps('demo', run_dir, overrides) if s.stage.startswith('train_')]; "
        "scheduler.run_train_steps(steps, run_dir, config.resolve_params('demo', overrides))"
    )
    launcher = subprocess.Popen([sys.executable, "-c", script, str(run_dir), json.dumps(overrides)],
                                cwd=KIT_ROOT, stdout=subprocess.DEVNULL)  # fmt: skip
    logs = [run_dir / "logs" / f"train_{m}_seed0.log" for m in ("cartoon", "movie")]
    deadline = time.monotonic() + 120
    while not all(log.is_file() and "Executing Cell 2" in log.read_text() for log in logs):  # kernels at work
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    notebook_processes = psutil.Process(launcher.pid).children(recursive=True)
    assert sum("ipykernel" in " ".join(p.cmdline()) for p in notebook_processes) == 2
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(60) != 0
    assert not psutil.wait_procs(notebook_processes, timeout=10)[1]  # every kernel and papermill process is gone


@pytest.mark.slow
def test_metrics_tables_cover_models_and_both_baselines(pipeline_run: Path) -> None:
    per_image = pd.read_csv(pipeline_run / "eval" / "per_image.csv")
    assert set(per_image.model) == {"gray", "truth", "cartoon", "movie", "mixed"}
    assert set(METRICS) <= set(per_image.columns)
    counts = per_image.groupby(["model", "test_domain"]).size()
    assert (counts == TINY["test_per_domain"]).all() and len(counts) == 10
    summary = pd.read_csv(pipeline_run / "eval" / "summary.csv")
    assert list(summary.columns) == [
        "model",
        "test_domain",
        "metric",
        "mean",
        "ci_low",
        "ci_high",
        "std",
        "n",
        "n_groups",
    ]
    manifest = pd.read_csv(pipeline_run / "data" / "manifest.csv").query("split == 'test'")
    groups = manifest.groupby("domain")["group"].nunique()
    assert (summary["n_groups"] == summary["test_domain"].map(groups)).all() and (per_image.group.notna()).all()
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
    assert (comparisons["n_groups"] == comparisons["test_domain"].map(groups)).all() and (
        comparisons.min_groups == 8
    ).all()


@pytest.mark.slow
def test_prepare_notebook_reports_rejections_by_reason(pipeline_run: Path) -> None:
    outputs = _outputs(pipeline_run / "notebooks" / "01_prepare_data.ipynb")
    shown = "".join("".join(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "corrupt" in shown and "duplicate" in shown


@pytest.mark.slow
def test_prepare_notebook_shows_what_grouping_joined_in_each_domain(pipeline_run: Path) -> None:
    outputs = _outputs(pipeline_run / "notebooks" / "01_prepare_data.ipynb")
    shown = [base64.b64decode(o["data"]["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    for domain in DEMO_DOMAINS:
        assert (pipeline_run / "figures" / f"groups_{domain}.png").read_bytes() in shown, domain


@pytest.mark.slow
def test_the_report_answers_first_and_the_figures_notebook_shows_its_figures(pipeline_run: Path) -> None:
    assert_report_answers_first(pipeline_run / "report.md", max_kb=15)
    report = (pipeline_run / "report.md").read_text()
    assert "CIEDE2000 (lower is better)" in report and "SSIM (higher is better)" in report
    assert "| gray" in report and "| truth" in report and "| mixed" in report
    assert report.count("| as meant") == 3 and "groups" in report and str(pipeline_run) not in report
    # the rendered notebook shows the report's sections with the same figures, in the same order, byte for byte
    outputs = _outputs(pipeline_run / "notebooks" / "04_figures.ipynb")
    shown = [base64.b64decode(o["data"]["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    linked = re.findall(r"!\[[^]]*\]\(figures/([^)]+)\)", report)
    assert shown == [(pipeline_run / "figures" / name).read_bytes() for name in linked]
    texts = ["".join(o["data"]["text/markdown"]) for o in outputs if "text/markdown" in o.get("data", {})]
    assert texts[0].startswith("# Cross-domain colorization: results") and "## Findings" in "".join(texts)
    assert any(
        "image/png" in o.get("data", {}) for o in _outputs(pipeline_run / "notebooks" / "02_train_mixed_seed0.ipynb")
    )


@pytest.mark.slow
def test_failing_cell_names_notebook_cell_and_error(tmp_path: Path, pipeline_run: Path, capfd) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "data").mkdir(parents=True)
    (run_dir / "data" / "manifest.csv").write_text((pipeline_run / "data" / "manifest.csv").read_text())
    parameters = {"profile": "demo", "run_dir": str(run_dir), "overrides": TINY}
    step = Step("03_evaluate.ipynb", "03_evaluate.ipynb", parameters, "evaluate")
    with pytest.raises(StageFailed) as err:
        run_step(step, run_dir, progress=False)
    message = str(err.value)
    assert "03_evaluate.ipynb" in message and "cell" in message and "ParameterError" in message
    assert "'models'" in message
    assert (run_dir / "notebooks" / "03_evaluate.ipynb").is_file()
    assert "without encryption" not in capfd.readouterr().err  # the kernel's warnings are off, its cell errors not


def _record_stages(run_dir: Path, worker: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    params = config.resolve_params("demo", TINY)
    barrier.wait()
    for i in range(15):
        record_stage_fields(run_dir, f"stage_{worker}_{i}", seconds=i)
    environment.record_run(run_dir, f"train_{worker}", "demo", params)


@pytest.mark.slow
def test_run_json_written_by_processes_at_once_loses_no_stage(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_record_stages, args=(tmp_path, w, barrier)) for w in range(4)]
    with hold_run_dir(tmp_path, "the pipeline"):  # as the pipeline's train notebooks: each writes under its hold
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
            assert worker.exitcode == 0
    stages = json.loads((tmp_path / "run.json").read_text())["stages"]
    assert set(stages) == {f"stage_{w}_{i}" for w in range(4) for i in range(15)} | {f"train_{w}" for w in range(4)}


@pytest.mark.parametrize(
    ("concurrency", "gpus", "gpus_per_model", "expected"),
    [
        (2, ["0", "1"], 0, [[("cartoon", ("0",)), ("movie", ("1",))], [("mixed", ("0", "1"))]]),  # Kaggle T4 x2
        (2, ["0", "1"], 1, [[("cartoon", ("0",)), ("movie", ("1",))], [("mixed", ("0",))]]),  # gpus=1: no DDP
        (3, ["5"], 0, [[("cartoon", ("5",)), ("movie", ("5",)), ("mixed", ("5",))]]),  # one big GPU, shared
        (1, ["2", "3"], 0, [[("cartoon", ("2", "3"))], [("movie", ("2", "3"))], [("mixed", ("2", "3"))]]),
        (3, ["0", "1", "2", "3"], 0, [[("cartoon", ("0",)), ("movie", ("1",)), ("mixed", ("2",))]]),
    ],
)
def test_train_rounds_share_the_gpus(concurrency: int, gpus: list[str], gpus_per_model: int, expected: list) -> None:
    steps = train_steps(Path("run"), {})
    rounds = scheduler.train_rounds(steps, concurrency, gpus, cores=4, gpus_per_model=gpus_per_model)
    assert [[(launch.model, launch.gpus) for launch in round_] for round_ in rounds] == expected
    environment = rounds[0][0].environment()
    assert environment["CUDA_VISIBLE_DEVICES"] == ",".join(expected[0][0][1])


def test_train_rounds_share_the_cpu_cores() -> None:
    rounds = scheduler.train_rounds(train_steps(Path("run"), {}), 2, [], cores=2)
    assert [[(launch.model, launch.threads) for launch in round_] for round_ in rounds] == [
        [("cartoon", 1), ("movie", 1)],
        [("mixed", 2)],  # alone: every core
    ]
    environment = rounds[0][0].environment()
    assert environment["OMP_NUM_THREADS"] == "1" and "CUDA_VISIBLE_DEVICES" not in environment
    three_at_once = scheduler.train_rounds(train_steps(Path("run"), {}), 3, [], cores=2)
    assert [launch.threads for launch in three_at_once[0]] == [1, 1, 1]


def test_train_concurrency_auto_and_chosen() -> None:
    auto, chosen = config.resolve_params("demo"), config.resolve_params("demo", {"train_concurrency": 5})
    assert scheduler.train_concurrency(auto, n_gpus=2, n_models=3) == 2  # one per GPU
    assert scheduler.train_concurrency(auto, n_gpus=4, n_models=3) == 3  # never more than the models
    assert scheduler.train_concurrency(auto, n_gpus=0, n_models=3) == 3  # the CPU: all at once
    assert scheduler.train_concurrency(chosen, n_gpus=1, n_models=3) == 3
    assert scheduler.train_concurrency(chosen, n_gpus=0, n_models=1) == 1


def test_the_gpus_are_those_the_prepare_stage_saw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = config.resolve_params("demo")
    (tmp_path / "run.json").write_text(json.dumps({"devices": {"gpus": ["Tesla T4", "Tesla T4"]}}))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert scheduler.visible_gpus(params, tmp_path) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # the kernel's GPU 0 is this machine's GPU 2
    assert scheduler.visible_gpus(params, tmp_path) == ["2", "3"]
    assert scheduler.visible_gpus(config.resolve_params("demo", {"device": "cpu"}), tmp_path) == []
    with pytest.raises(errors.ParameterError, match="run.json is missing"):
        scheduler.visible_gpus(params, tmp_path / "elsewhere")
