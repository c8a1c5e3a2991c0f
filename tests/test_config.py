from __future__ import annotations

import dataclasses
import math

import pytest

from utils import pipeline
from utils.core import config, errors, parameters
from utils.core.errors import ParameterError
from utils.core.parameters import RunParams, changed_training_parameters, resumable_parameters
from utils.core.profiles import PROFILES


def test_profiles_resolve_and_validate() -> None:
    for profile in PROFILES:
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


FLOAT_PARAMETERS = [f.name for f in dataclasses.fields(RunParams) if type(f.default) is float]


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
    assert resumable_parameters() <= {f.name for f in dataclasses.fields(RunParams)}
    shaping = {"lr", "beta1", "beta2", "lambda_l1", "batch_size", "image_size", "seed", "pretrained", "flip",
               "pretrain_epochs", "precision", "gamut", "val_fraction", "train_per_domain", "source",
               "group_pattern"}  # fmt: skip
    assert not shaping & resumable_parameters()
    params = config.resolve_params("demo")
    saved = params.to_dict()
    now = dataclasses.replace(params, lr=1e-4, num_workers=4, epochs=7, models=("cartoon",))
    assert changed_training_parameters(saved, now) == {"lr": (2e-4, 1e-4)}
    older = {name: value for name, value in saved.items() if name != "lr"}  # a checkpoint of a kit without 'lr'
    assert changed_training_parameters(older, now) == {}


# --- each parameter's declaration -----------------------------------------------------------------------------

# What each parameter accepts, as its declaration says it: a record of the accepted values, kept here so that a
# declaration changed by mistake fails a test. Parameters missing here have no declared range or choices.
ACCEPTS = {
    "source": "one of demo, folder, kaggle", "image_size": "a positive multiple of 32", "resize": "one of crop, stretch",
    "min_colorfulness": "non-negative", "max_pixels": "positive", "near_duplicate_bits": "in [0, 64]",
    "prepare_workers": "non-negative", "decode_timeout_s": "positive", "train_per_domain": "at least 2",
    "test_per_domain": "at least 1", "val_fraction": "in (0, 1)", "seed": "non-negative", "epochs": "at least 1",
    "batch_size": "at least 2", "lr": "positive", "beta1": "in [0, 1)", "beta2": "in [0, 1)",
    "lambda_l1": "non-negative", "pretrain_epochs": "non-negative", "seeds": "at least 1",
    "precision": "one of auto, fp32, fp16, bf16", "gpus": "non-negative", "train_concurrency": "non-negative",
    "checkpoint_minutes": "non-negative", "keep_every": "non-negative", "time_limit_hours": "non-negative",
    "eval_batch_size": "at least 1", "n_examples": "at least 1", "n_bootstrap": "at least 100",
    "gamut": "one of chroma, clip", "device": "one of auto, cpu, cuda", "num_workers": "non-negative",
}  # fmt: skip


def test_every_parameter_is_declared_with_a_meaning_and_accepts_what_it_did() -> None:
    assert list(parameters.DECLARATIONS) == [f.name for f in dataclasses.fields(RunParams)]
    assert all(declaration.meaning for declaration in parameters.DECLARATIONS.values())
    accepts = {name: d.accepts() for name, d in parameters.DECLARATIONS.items() if d.accepts()}
    assert accepts == ACCEPTS


def step(value: float, name: str, up: bool) -> float:
    """The next value of ``name``'s type above (or below) ``value``: 1 for an integer, the next float for a float."""
    if name in parameters.FLOAT_FIELDS:
        return math.nextafter(value, math.inf if up else -math.inf)
    return value + 1 if up else value - 1


def edge_values(name: str) -> tuple[list, list]:
    """Values just inside ``name``'s declared range (or its choices), and just outside it."""
    declaration = parameters.DECLARATIONS[name]
    if declaration.choices:
        return list(declaration.choices), [f"not-{declaration.choices[0]}"]
    inside, outside = [], []
    if declaration.at_least is not None:
        inside, outside = inside + [declaration.at_least], outside + [step(declaration.at_least, name, up=False)]
    if declaration.above is not None:
        inside, outside = inside + [step(declaration.above, name, up=True)], outside + [declaration.above]
    if declaration.at_most is not None:
        inside, outside = inside + [declaration.at_most], outside + [step(declaration.at_most, name, up=True)]
    if declaration.below is not None:
        inside, outside = inside + [step(declaration.below, name, up=False)], outside + [declaration.below]
    if declaration.multiple_of is not None:
        inside, outside = inside + [2 * declaration.multiple_of], outside + [declaration.multiple_of + 1]
    return inside, outside


def with_context(name: str, value: object, tmp_path) -> dict:
    """``-p name=value`` as the command line gives it, with the other parameters a source needs."""
    needs = {"folder": {"domains": {"a": str(tmp_path), "b": str(tmp_path)}},
             "kaggle": {"cartoon_dataset": "a/b", "movie_dataset": "c/d"}}  # fmt: skip
    return {
        **(needs.get(value, {}) if name == "source" else {}),
        name: repr(value) if isinstance(value, float) else value,
    }


@pytest.mark.parametrize("name", sorted(ACCEPTS))
def test_each_declared_bound_accepts_just_inside_and_refuses_just_outside(name: str, tmp_path) -> None:
    inside, outside = edge_values(name)
    assert inside and outside
    for value in inside:
        assert getattr(config.resolve_params("demo", with_context(name, value, tmp_path)), name) == value
    for value in outside:
        with pytest.raises(ParameterError, match=f"^parameter '{name}' = .*: must (be|lie) "):
            config.resolve_params("demo", with_context(name, value, tmp_path))


def test_a_refusal_names_the_parameter_the_value_and_what_is_allowed() -> None:
    refusals = {
        ("epochs", "0"): "parameter 'epochs' = 0: must be at least 1",
        ("near_duplicate_bits", "65"): "parameter 'near_duplicate_bits' = 65: must lie in [0, 64] (bits of the "
                                       "192-bit perceptual hash; 0 = folder groups only)",
        ("val_fraction", "1"): "parameter 'val_fraction' = 1.0: must lie in (0, 1)",
        ("image_size", "48"): "parameter 'image_size' = 48: must be a positive multiple of 32 (the encoder "
                              "downsamples 32x)",
        ("device", "tpu"): "parameter 'device' = 'tpu': must be one of auto, cpu, cuda",
    }  # fmt: skip
    for (name, value), message in refusals.items():
        with pytest.raises(ParameterError) as refused:
            config.resolve_params("demo", {name: value})
        assert str(refused.value) == message


def redeclared(monkeypatch, name: str, **rules: object) -> None:
    """``name``'s declaration with ``rules`` changed, for this test only."""
    declaration = dataclasses.replace(parameters.DECLARATIONS[name], **rules)
    monkeypatch.setitem(parameters.DECLARATIONS, name, declaration)


def test_validate_follows_the_declarations(monkeypatch) -> None:
    assert config.resolve_params("demo", {"epochs": 2, "device": "cuda", "lr": "5"}).epochs == 2
    redeclared(monkeypatch, "epochs", at_least=3)
    redeclared(monkeypatch, "device", choices=("auto", "cpu"))
    redeclared(monkeypatch, "lr", above=None, at_least=0, below=1)
    with pytest.raises(ParameterError, match="'epochs' = 2: must be at least 3$"):
        config.resolve_params("demo", {"epochs": 2})
    with pytest.raises(ParameterError, match="'device' = 'cuda': must be one of auto, cpu$"):
        config.resolve_params("demo", {"epochs": 3, "device": "cuda"})
    with pytest.raises(ParameterError, match=r"'lr' = 5.0: must lie in \[0, 1\)$"):
        config.resolve_params("demo", {"epochs": 3, "lr": "5"})
    assert config.resolve_params("demo", {"epochs": 3, "lr": "0"}).lr == 0.0  # at_least=0 now admits it


def test_a_declaration_with_two_lower_bounds_or_choices_and_a_range_is_refused() -> None:
    for rules in ({"at_least": 0, "above": 0}, {"at_most": 1, "below": 1}, {"choices": ("a",), "at_least": 0},
                  {"multiple_of": 32, "at_least": 1}, {"multiple_of": 32, "at_least": 32, "at_most": 64}):  # fmt: skip
        with pytest.raises(ValueError):
            parameters.Declared("a meaning", **rules)


def test_the_resume_check_reads_the_declarations(monkeypatch) -> None:
    declared = {name for name, d in parameters.DECLARATIONS.items() if d.resumable}
    assert resumable_parameters() == declared and {"epochs", "num_workers", "device"} <= declared
    params = config.resolve_params("demo")
    saved = params.to_dict()
    now = dataclasses.replace(params, lr=1e-4, epochs=7)
    assert changed_training_parameters(saved, now) == {"lr": (2e-4, 1e-4)}
    redeclared(monkeypatch, "lr", resumable=True)
    redeclared(monkeypatch, "epochs", resumable=False)
    assert changed_training_parameters(saved, now) == {"epochs": (2, 7)}
    assert "lr" in resumable_parameters() and "epochs" not in resumable_parameters()
