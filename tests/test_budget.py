"""The time budget (``time_limit_hours``): training stops at a checkpoint and resumes exactly, a run cut
short ends cleanly as a partial run; a checkpoint of other data is refused; the per-epoch progress line."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import run_with_data
from tests.test_train import assert_same_weights
from utils import pipeline
from utils.core import config, errors
from utils.core.config import model_dir
from utils.core.parameters import RunParams
from utils.nets.checkpoints import load_checkpoint
from utils.run import scheduler
from utils.run.notebook_step import Step
from utils.train import time_budget, training


@pytest.fixture(scope="module")
def params(tiny_params: RunParams) -> RunParams:
    """Two epochs of 5 batches (22 training images, batch 4), under an 11-hour budget."""
    return dataclasses.replace(tiny_params, epochs=2, time_limit_hours=11.0)


@pytest.fixture(scope="module")
def uninterrupted(two_epochs_straight: Path) -> Path:
    """The same two epochs in one go (without a budget, which does not shape training), at the same thread count:
    a stop and a resume must give its weights, bit for bit."""
    return two_epochs_straight


def assert_equals_uninterrupted(run_dir: Path, uninterrupted: Path, what: str) -> None:
    ours, reference = (model_dir(d, "cartoon", 0) for d in (run_dir, uninterrupted))
    assert_same_weights(load_checkpoint(ours / "checkpoint_last.pt"), load_checkpoint(reference / "checkpoint_last.pt"),
                        what)  # fmt: skip
    losses = ["loss_D", "loss_G_GAN", "loss_G_L1", "val_loss_G_L1", "val_ciede2000"]
    np.testing.assert_array_equal(
        pd.read_csv(ours / "history.csv")[losses], pd.read_csv(reference / "history.csv")[losses]
    )


@pytest.mark.slow  # trains two epochs (tests/conftest.py: two_epochs_straight)
def test_the_budget_stops_training_after_an_epoch_and_a_rerun_finishes_as_if_uninterrupted(
    tmp_path: Path, prepared_run: Path, params: RunParams, uninterrupted: Path, monkeypatch, capsys
) -> None:
    run_dir = run_with_data(tmp_path / "run", prepared_run)
    monkeypatch.setenv(time_budget.TEST_BUDGET_EPOCHS_ENV, "1")  # spent once one epoch has finished
    history = training.train(params, run_dir, "cartoon", show_progress=False)
    assert list(history.epoch) == [1]
    assert training.training_record(params, history) == {"epochs_done": 1, "epochs_planned": 2, "partial": True}
    last = load_checkpoint(model_dir(run_dir, "cartoon", 0) / "checkpoint_last.pt")
    assert (last["position"]["epoch"], last["position"]["batch"]) == (2, 0)
    assert (
        "the time budget of 11 h ran out; stopped after 1 of 2 epochs. Run the training again"
        in capsys.readouterr().out
    )

    monkeypatch.delenv(time_budget.TEST_BUDGET_EPOCHS_ENV)
    history = training.train(params, run_dir, "cartoon", show_progress=False)
    assert list(history.epoch) == [1, 2] and not training.training_record(params, history)["partial"]
    assert_equals_uninterrupted(run_dir, uninterrupted, "stopped by the budget after epoch 1, then resumed")


@pytest.mark.slow  # trains two epochs (tests/conftest.py: two_epochs_straight)
def test_a_deadline_inside_an_epoch_stops_at_a_sync_point_and_resumes_exactly(
    tmp_path: Path, prepared_run: Path, params: RunParams, uninterrupted: Path, monkeypatch
) -> None:
    run_dir = run_with_data(tmp_path / "run", prepared_run)
    monkeypatch.setattr(training, "LOG_EVERY", 2)  # sync points after batches 2, 4 and 5 of each epoch
    steps = 0
    real_step = training.gan_step

    def counted_step(*args, **kwargs) -> torch.Tensor:
        nonlocal steps
        steps += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "gan_step", counted_step)
    # the clock passes the deadline during step 8 (epoch 2, batch 3): the sync point after batch 4 finds it
    monkeypatch.setattr(
        time_budget.TimeBudget, "now", staticmethod(lambda: time.time() + (86_400 if steps >= 8 else 0))
    )
    history = training.train(params, run_dir, "cartoon", show_progress=False)
    assert list(history.epoch) == [1] and steps == 9
    last = load_checkpoint(model_dir(run_dir, "cartoon", 0) / "checkpoint_last.pt")
    assert (last["position"]["epoch"], last["position"]["batch"], last["step"]) == (2, 4, 9)

    monkeypatch.undo()
    training.train(params, run_dir, "cartoon", show_progress=False)
    assert_equals_uninterrupted(run_dir, uninterrupted, "stopped by the budget inside epoch 2, then resumed")


def budget_record(deadline: dt.datetime, **more: str) -> dict:
    started = deadline - dt.timedelta(hours=11)
    return {"budget": {"time_limit_hours": 11.0, "started": started.isoformat(), "deadline": deadline.isoformat(),
                       **more}}  # fmt: skip


def test_a_deadline_already_past_starts_nothing(
    tmp_path: Path, prepared_run: Path, params: RunParams, monkeypatch, capsys
) -> None:
    run_dir = run_with_data(tmp_path / "run", prepared_run)
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    (run_dir / "run.json").write_text(json.dumps(budget_record(past)))  # the pipeline's deadline, passed

    def nothing_may_start(*args: object) -> None:
        raise AssertionError("training started after the deadline")

    monkeypatch.setattr(training, "training_sets", nothing_may_start)
    history = training.train(params, run_dir, "movie", show_progress=False)
    assert history.empty and not model_dir(run_dir, "movie", 0).exists()
    assert training.training_record(params, history) == {"epochs_done": 0, "epochs_planned": 2, "partial": True}
    assert "model movie: the time budget of 11 h ran out before its turn; nothing trained" in capsys.readouterr().out
    # a finished pipeline's deadline binds no one: a train notebook run alone counts from its own start
    (run_dir / "run.json").write_text(json.dumps(budget_record(past, finished=past.isoformat())))
    budget = time_budget.TimeBudget.for_run(params, run_dir)
    assert budget.deadline == pytest.approx(time.time() + 11 * 3600, abs=60) and not budget.spent(0)
    assert time_budget.TimeBudget.for_run(dataclasses.replace(params, time_limit_hours=1e-9), tmp_path).spent(0)
    assert time_budget.TimeBudget.for_run(dataclasses.replace(params, time_limit_hours=0.0), run_dir).deadline == np.inf


def test_time_limit_hours_is_validated() -> None:
    for bad in ("-1", "nan", "inf"):
        with pytest.raises(errors.ParameterError, match="'time_limit_hours'"):
            config.resolve_params("demo", {"time_limit_hours": bad})
    assert config.resolve_params("demo").time_limit_hours == 0.0  # off unless asked for


@pytest.mark.slow  # trains two epochs (tests/conftest.py: two_epochs_straight)
def test_a_checkpoint_of_other_data_is_refused_naming_the_file(
    tmp_path: Path, prepared_run: Path, params: RunParams, uninterrupted: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(prepared_run / "data", run_dir / "data")
    shutil.copytree(uninterrupted / "models", run_dir / "models")
    manifest_path = run_dir / "data" / "manifest.csv"
    manifest = pd.read_csv(manifest_path)
    movie_row = manifest.index[(manifest.domain == "movie") & (manifest.split == "train")][0]
    manifest.loc[movie_row, "sha1"] = "0" * 40
    manifest.to_csv(manifest_path, index=False)
    # a movie image changed: not the cartoon model's data, which resumes (all its epochs are done)
    assert list(training.train(params, run_dir, "cartoon", show_progress=False).epoch) == [1, 2]
    cartoon_row = manifest.index[(manifest.domain == "cartoon") & (manifest.split == "train")][-1]
    manifest.loc[cartoon_row, "sha1"] = "0" * 40
    manifest.to_csv(manifest_path, index=False)
    with pytest.raises(ValueError) as err:
        training.train(params, run_dir, "cartoon", show_progress=False)
    message = str(err.value)
    assert str(model_dir(run_dir, "cartoon", 0) / "checkpoint_last.pt") in message
    assert "the data changed" in message and "resume=False" in message


def fake_histories(run_dir: Path, epochs: dict[str, int]) -> None:
    """What the train notebooks leave: ``epochs[model]`` rows in each model's history.csv."""
    for model, n in epochs.items():
        out = model_dir(run_dir, model, 0)
        out.mkdir(parents=True, exist_ok=True)
        rows = [{"epoch": e, "phase": "gan", "seconds": 3.0} for e in range(1, n + 1)]
        pd.DataFrame(rows, columns=training.HISTORY_COLUMNS).to_csv(out / "history.csv", index=False)


def test_a_partial_run_ends_cleanly_without_evaluation_and_says_how_to_continue(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    run_dir = tmp_path / "run"
    ran: list[str] = []
    trained = {"cartoon": 2, "movie": 1, "mixed": 0}  # the budget ran out in movie's second epoch
    monkeypatch.setattr(pipeline, "run_step", lambda step, run_dir, progress: ran.append(step.stage))
    monkeypatch.setattr(pipeline, "record_timing", lambda *args: None)
    monkeypatch.setattr(pipeline, "plan_training", lambda *args: "the plan")  # it reads the prepared data

    def training(steps: list[Step], run_dir: Path, *args: object) -> None:
        budget = json.loads((run_dir / "run.json").read_text())["budget"]  # where each train process reads it
        started, deadline = (dt.datetime.fromisoformat(budget[k]) for k in ("started", "deadline"))
        assert deadline - started == dt.timedelta(hours=11) and "finished" not in budget
        ran.extend(step.stage for step in steps)
        fake_histories(run_dir, trained)

    monkeypatch.setattr(pipeline, "run_train_steps", training)
    command = ["--profile", "demo", "--run-dir", str(run_dir), "-p", "epochs=2", "-p", "time_limit_hours=11"]
    assert pipeline.main(command) == 0
    assert ran == ["prepare", "train_cartoon_seed0", "train_movie_seed0", "train_mixed_seed0"]
    record = json.loads((run_dir / "run.json").read_text())
    partial = record["partial"]
    assert partial["reason"] == "time budget of 11 h ran out"
    assert partial["models"] == {"cartoon_seed0": "2 of 2 epochs", "movie_seed0": "1 of 2 epochs",
                                 "mixed_seed0": "0 of 2 epochs"}  # fmt: skip
    assert f"--run-dir {run_dir} -p epochs=2 -p time_limit_hours=11" in partial["continue"]
    assert "python -m utils.kaggle push --continue" in partial["continue"]
    assert record["budget"]["finished"]  # the deadline binds no later train notebook
    report = (run_dir / "report.md").read_text()
    assert (
        "This run is partial: the time budget of 11 h ran out" in report and "| movie_seed0 | 1 of 2 epochs |" in report
    )
    assert "## How to continue" in report and "push --continue" in report and "python -m utils.pipeline" in report
    assert "did not run" in capsys.readouterr().out

    ran.clear()
    trained.update(movie=2, mixed=2)  # the continuation finishes every model
    assert pipeline.main(command) == 0
    assert ran[-3:] == ["evaluate", "figures", "colorize"]
    assert json.loads((run_dir / "run.json").read_text())["partial"] is None


def test_the_epoch_line_carries_the_losses_and_the_time_left(tmp_path: Path) -> None:
    def history(seconds: list[float], phase: str = "gan") -> list[dict[str, str]]:
        row = {"loss_D": 0.6931, "loss_G_GAN": 0.72, "loss_G_L1": 11.31, "val_ciede2000": 22.876, "images_per_s": 5.23}
        rows = [{**row, "epoch": i, "phase": phase, "seconds": s} for i, s in enumerate(seconds, 1)]
        if phase == "pretrain":
            rows = [{**r, "loss_D": float("nan"), "loss_G_GAN": float("nan")} for r in rows]
        path = tmp_path / f"{phase}_{len(seconds)}.csv"
        pd.DataFrame(rows, columns=training.HISTORY_COLUMNS).to_csv(path, index=False)  # as the trainer writes it
        return scheduler.ModelProgress(path, 3).epochs()  # as the pipeline reads it

    cartoon, movie = history([80.0, 84.0]), history([90.0])
    models, run = scheduler.seconds_left([cartoon, movie, []], [3, 3, 3], later_epochs=3)
    typical = (80 + 84 + 90) / 3  # the round's mean epoch: for mixed (no epoch yet) and the later round
    assert models == pytest.approx([82.0, 180.0, 3 * typical]) and run == pytest.approx(3 * typical + 3 * typical)
    line = scheduler.epoch_line("[2/7] 02_train_cartoon_seed0", cartoon[-1], 3, models[0], run)
    assert line == (
        "[2/7] 02_train_cartoon_seed0 epoch 2/3 done in 84 s: D 0.693, G_GAN 0.72, G_L1 11.3, "
        "val CIEDE2000 22.88, 5.2 images/s; model ETA 1.4 min, run ETA 8.5 min"
    )
    pretrain = scheduler.epoch_line("[4/7] 02_train_mixed_seed0", history([7.0], "pretrain")[0], 3, 14.0, 7200.0)
    assert "done in 7 s: G_L1 11.3, val CIEDE2000 22.88, 5.2 images/s; model ETA 14 s, run ETA 2.0 h" in pretrain
