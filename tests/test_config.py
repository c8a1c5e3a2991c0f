from __future__ import annotations

import dataclasses
import math

import pytest

from utils import pipeline
from utils.core import config, errors
from utils.core.errors import ParameterError


def test_profiles_resolve_and_validate() -> None:
    for profile in config.PROFILES:
        params = config.resolve_params(profile, {"source": "demo"})
        assert params.image_size % 32 == 0
    assert config.resolve_params("paper", {"source": "demo"}).image_size == 256


def test_overrides_are_converted_from_strings() -> None:
    params = config.resolve_params(
        "demo", {"epochs": "3", "pretrained": "false", "lr": "1e-3", "models": "cartoon,mixed"}
    )
    assert (params.epochs, params.pretrained, params.lr, params.models) == (3, False, 1e-3, ("cartoon", "mixed"))


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"epoch": 3}, "'epoch'"),  # unknown name
        ({"image_size": 100}, "'image_size'"),
        ({"image_size": 0}, "'image_size'"),
        ({"epochs": 0}, "'epochs'"),
        ({"epochs": "two"}, "'epochs'"),
        ({"models": "cartoon,anime"}, "'models'"),
        ({"source": "web"}, "'source'"),
        ({"source": "folder"}, "'cartoon_dir'"),
        ({"val_fraction": 1.5}, "'val_fraction'"),
        ({"pretrained": "maybe"}, "'pretrained'"),
        ({"batch_size": 1}, "'batch_size'"),
    ],
)
def test_invalid_parameters_are_named(overrides: dict, named: str) -> None:
    with pytest.raises(ParameterError, match=named):
        config.resolve_params("demo", overrides)


FLOAT_PARAMETERS = [f.name for f in dataclasses.fields(config.RunParams) if type(f.default) is float]


@pytest.mark.parametrize("name", FLOAT_PARAMETERS)
def test_non_finite_floats_are_refused_naming_the_parameter(name: str) -> None:
    assert {"lr", "lambda_l1", "min_colorfulness"} <= set(FLOAT_PARAMETERS)
    for bad in ("nan", "inf", "-inf", math.nan):
        with pytest.raises(ParameterError, match=f"'{name}' = .*finite"):
            config.resolve_params("demo", {name: bad})


def test_a_negative_seed_is_refused_naming_the_parameter() -> None:
    with pytest.raises(ParameterError, match="'seed' = -1: must be non-negative"):
        config.resolve_params("demo", {"seed": -1})
    assert config.resolve_params("demo", {"seed": 0}).seed == 0


def test_unknown_profile_and_domain() -> None:
    with pytest.raises(ParameterError, match="profile"):
        config.resolve_params("fast")
    with pytest.raises(ParameterError, match="'domain'"):
        config.check_domain("anime", config.resolve_params("demo"))


def test_later_stages_need_earlier_outputs(tmp_path, prepared_run, tiny_params) -> None:
    with pytest.raises(ParameterError, match="'run_dir'.*no such run directory"):
        config.check_stage_inputs(tmp_path / "missing", "train", tiny_params)
    with pytest.raises(ParameterError, match="manifest.csv is missing"):
        config.check_stage_inputs(tmp_path, "train", tiny_params)
    assert config.check_stage_inputs(prepared_run, "train", tiny_params) == prepared_run
    with pytest.raises(ParameterError, match="'models'"):
        config.check_stage_inputs(prepared_run, "evaluate", tiny_params)


def test_pipeline_rejects_bad_parameters_before_any_work(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    code = pipeline.main(["--profile", "demo", "--run-dir", str(run_dir), "-p", "image_size=100"])
    assert code == 2
    assert "'image_size'" in capsys.readouterr().err
    assert not run_dir.exists()
    assert pipeline.main(["--run-dir", str(run_dir), "-p", "domain=anime"]) == 2
    assert "unknown parameter 'domain'" in capsys.readouterr().err
    assert pipeline.main(["--run-dir", str(run_dir), "-p", "epochs"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_plan_runs_one_train_notebook_per_model(tmp_path) -> None:
    steps = pipeline.plan_steps("demo", tmp_path, {"models": "movie,mixed"})
    assert [s.rendered for s in steps] == [
        "01_prepare_data.ipynb",
        "02_train_movie_seed0.ipynb",
        "02_train_mixed_seed0.ipynb",
        "03_evaluate.ipynb",
        "04_figures.ipynb",
        "05_colorize.ipynb",
    ]
    assert steps[1].parameters["domain"] == "movie" and steps[-1].parameters["model"] == "mixed"
    assert all(s.parameters["overrides"] == {"models": "movie,mixed"} for s in steps)


def test_each_seed_trains_every_model_in_a_folder_of_its_own(tmp_path) -> None:
    params = config.resolve_params("demo", {"seeds": 2, "seed": 5, "models": "movie,mixed"})
    assert config.training_seeds(params) == (5, 6)
    assert config.trained_models(params) == [("movie", 5), ("mixed", 5), ("movie", 6), ("mixed", 6)]
    assert config.model_dir(tmp_path, "mixed", 6) == tmp_path / "models" / "seed6" / "mixed"
    trains = [s for s in pipeline.plan_steps("demo", tmp_path, {"seeds": "2", "seed": "5", "models": "movie,mixed"})
              if s.notebook == "02_train.ipynb"]  # fmt: skip
    assert [(s.rendered, s.parameters["seed_index"], s.stage) for s in trains] == [
        ("02_train_movie_seed5.ipynb", 0, "train_movie_seed5"),
        ("02_train_mixed_seed5.ipynb", 0, "train_mixed_seed5"),
        ("02_train_movie_seed6.ipynb", 1, "train_movie_seed6"),
        ("02_train_mixed_seed6.ipynb", 1, "train_mixed_seed6"),
    ]
    with pytest.raises(errors.ParameterError, match="'seed_index' = 2"):
        config.training_seed(params, 2)
    with pytest.raises(errors.ParameterError, match="'seeds'"):
        config.resolve_params("demo", {"seeds": 0})


def test_a_resume_may_change_only_parameters_that_exist_and_do_not_shape_training() -> None:
    assert config.RESUME_MAY_CHANGE <= {f.name for f in dataclasses.fields(config.RunParams)}
    shaping = {"lr", "beta1", "beta2", "lambda_l1", "batch_size", "image_size", "seed", "pretrained", "flip",
               "pretrain_epochs", "precision", "gamut", "val_fraction", "train_per_domain", "source",
               "group_pattern"}  # fmt: skip
    assert not shaping & config.RESUME_MAY_CHANGE
    params = config.resolve_params("demo")
    saved = params.to_dict()
    now = dataclasses.replace(params, lr=1e-4, num_workers=4, epochs=7, models=("cartoon",))
    assert config.changed_training_parameters(saved, now) == {"lr": (2e-4, 1e-4)}
    older = {name: value for name, value in saved.items() if name != "lr"}  # a checkpoint of a kit without 'lr'
    assert config.changed_training_parameters(older, now) == {}
