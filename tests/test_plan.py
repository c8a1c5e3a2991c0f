"""The plan of a run: what is refused before any work (a GPU profile without a GPU, a batch no model fills), what
is warned of (too few test groups), what it estimates, and the command-line manners around it."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import TINY
from utils import pipeline
from utils.core import config
from utils.core.config import KIT_ROOT
from utils.core.errors import ParameterError
from utils.core.parameters import PRETRAINED_IF_CACHED
from utils.core.profiles import PROFILE_USES, PROFILES
from utils.data import datasets
from utils.data.shards import check_batch_size, largest_batch, load_manifest
from utils.nets import environment
from utils.run import plan
from utils.run.notebook_step import Step
from utils.run.scheduler import TrainLaunch
from utils.train import training
from utils.train.step_timing import StepTimes

FOLDERS = {"anime": "a", "photo": "p", "stamp": "s"}


def folder_domains(tmp_path: Path) -> str:
    for folder in FOLDERS.values():
        (tmp_path / folder).mkdir(exist_ok=True)
    return json.dumps({name: str(tmp_path / folder) for name, folder in FOLDERS.items()})


def the_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    printed = capsys.readouterr().err.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("error: "), printed
    return printed[0]


# --- the device against the profile ---------------------------------------------------------------


def test_a_gpu_profile_on_a_machine_without_one_is_refused_before_any_work(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run_dir = tmp_path / "run"
    domains = folder_domains(tmp_path)
    argv = ["--profile", "paper", "--run-dir", str(run_dir), "-p", "source=folder", "-p", f"domains={domains}"]
    assert pipeline.main(argv) == 2
    line = the_error_line(capsys)
    assert "profile 'paper' is meant for a GPU" in line and environment.cpu_model() in line
    suggested = re.search(r"`(python -m utils\.pipeline --profile quick [^`]+)`", line)
    assert suggested and "-p device=cpu" in line, line
    assert not run_dir.exists()  # nothing prepared
    # the suggested command is a valid run of the quick profile on the same data
    quick = pipeline.build_parser().parse_args(shlex.split(suggested.group(1))[3:])
    params = config.resolve_params(quick.profile, config.parse_overrides(quick.param))
    assert params.domain_names == tuple(FOLDERS) and params.source == "folder"
    # an explicit device=cpu is the user's choice
    pipeline.plan_steps("paper", run_dir, {"source": "folder", "domains": domains, "device": "cpu"})


def test_on_kaggle_the_refusal_names_the_accelerator_setting(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    params = config.resolve_params("paper", {"cartoon_dataset": "a/b", "movie_dataset": "c/d"})
    with pytest.raises(ParameterError, match="this Kaggle session has none: .* accelerator GPU T4 x2"):
        environment.check_profile_device("paper", params, "runs/mine", {})


def test_the_suggested_cpu_command_keeps_the_data_in_a_run_directory_of_its_own() -> None:
    overrides = {"cartoon_dataset": "a/b", "movie_dataset": "c/d"}
    suggested = shlex.split(config.command_for_profile("paper", "quick", "runs/mine", overrides))
    assert suggested[3:7] == ["--profile", "quick", "--run-dir", "runs/mine-quick"]
    assert "source=kaggle" in suggested and "cartoon_dataset=a/b" in suggested  # the paper profile's source kept
    folder = shlex.split(config.command_for_profile("paper", "quick", "runs/mine", {"source": "folder"}))
    assert folder.count("-p") == 1


def test_the_train_command_refuses_a_gpu_profile_without_a_gpu(prepared_run, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["--run-dir", str(prepared_run), "--profile", "paper", "--domain", "cartoon", "-p", "source=demo"]
    argv += [arg for name, value in TINY.items() for arg in ("-p", f"{name}={value}")]
    assert training.main(argv) == 2
    line = the_error_line(capsys)
    assert "profile 'paper' is meant for a GPU" in line and "--profile quick" in line
    assert not list(prepared_run.glob("models/**/*.pt"))


# --- the batch against every model's training images -----------------------------------------------


def test_a_batch_no_model_fills_names_the_model_and_the_largest_batch_that_works(tiny_params) -> None:
    params = dataclasses.replace(tiny_params, batch_size=16)
    with pytest.raises(ParameterError, match=r"'batch_size' = 16: larger than the 9 training images of model 'b'; "
                       r"use batch_size=9\b"):  # fmt: skip
        check_batch_size(params, {"a": 40, "b": 9, "mixed": 12})
    check_batch_size(params, {"a": 16, "b": 16})
    with pytest.raises(ParameterError, match="a batch needs at least 2"):
        check_batch_size(params, {"a": 40, "b": 1})
    with pytest.raises(ParameterError, match="model 'a' trains on 3 GPU processes, and the global batch must split "
                       "evenly across them; use batch_size=39"):  # fmt: skip
        check_batch_size(params, {"a": 40}, {"a": 3})
    # one model on two GPUs, another on one: the batch that works splits in two and fits the fewest images
    with pytest.raises(ParameterError, match=r"model 'b'; use batch_size=8\b"):
        check_batch_size(params, {"a": 40, "b": 9}, {"a": 1, "b": 2})
    assert largest_batch({"a": 40, "b": 9}, step=2) == 8


def test_the_plan_checks_the_batch_against_the_gpu_processes_each_model_will_train_on(
    prepared_run, tiny_params, monkeypatch
) -> None:
    trains = [Step("02_train.ipynb", f"02_train_{m}_seed0.ipynb", {"domain": m, "seed_index": 0}, f"train_{m}_seed0")
              for m in tiny_params.models]  # fmt: skip
    step = {t.parameters["domain"]: t for t in trains}
    on_t4x2 = [[TrainLaunch(step["cartoon"], ("0",), 2), TrainLaunch(step["movie"], ("1",), 2)],
               [TrainLaunch(step["mixed"], ("0", "1"), 4)]]  # fmt: skip
    monkeypatch.setattr(plan, "planned_rounds", lambda *args: on_t4x2)
    with pytest.raises(ParameterError, match="model 'mixed' trains on 2 GPU processes"):
        plan.make_plan(prepared_run, dataclasses.replace(tiny_params, batch_size=3), trains)


def test_the_plans_training_images_are_those_training_uses(prepared_run, tiny_params) -> None:
    params = dataclasses.replace(tiny_params, mix_fractions=(0.25,), models=("cartoon", "movie", "mixed", "mix0.25"))
    trains = [Step("02_train.ipynb", f"02_train_{m}_seed0.ipynb", {"domain": m, "seed_index": 0}, f"train_{m}_seed0")
              for m in params.models]  # fmt: skip
    manifest = load_manifest(prepared_run)
    for model_plan in plan.plan_models(prepared_run, params, trains, manifest):
        train_set, val_set = datasets.training_sets(prepared_run, model_plan.model, params)
        assert (model_plan.images, model_plan.val_images) == (len(train_set), len(val_set)), model_plan
        assert model_plan.steps_per_epoch == len(train_set) // params.batch_size
        assert 1 <= model_plan.groups <= model_plan.images
        assert model_plan.epochs_left == model_plan.epochs == params.epochs


def test_training_alone_refuses_a_batch_larger_than_its_images_naming_the_value(prepared_run, tiny_params) -> None:
    params = dataclasses.replace(tiny_params, batch_size=500)
    with pytest.raises(ParameterError, match=r"model 'cartoon'; use batch_size=\d+"):
        training.train(params, prepared_run, "cartoon", show_progress=False)
    assert not list(prepared_run.glob("models/**/*.pt"))


# --- the test groups --------------------------------------------------------------------------------


def manifest_with_groups(test_groups: int, all_groups: int) -> pd.DataFrame:
    rows = [("anime", "test", i, f"g{i}") for i in range(test_groups)]
    rows += [("anime", "train", i, f"g{i}") for i in range(test_groups, all_groups)]
    rows += [(d, s, i, f"{d}{i}") for d in ("photo", "stamp") for s in ("test", "train") for i in range(40)]
    return pd.DataFrame(rows, columns=["domain", "split", "index", "group"])


def test_too_few_test_groups_warn_and_say_what_gives_more(tmp_path) -> None:
    params = config.resolve_params("quick", {"domains": folder_domains(tmp_path)})
    needed = plan.groups_the_verdicts_need(params)
    assert needed >= 6  # the fewest with which one paired test can reach p < 0.05
    assert plan.test_group_warnings(manifest_with_groups(needed, 3 * needed), params) == []
    spare = plan.test_group_warnings(manifest_with_groups(needed - 1, 3 * needed), params)
    assert len(spare) == 1 and "domain 'anime' has" in spare[0] and "raise test_per_domain (now 100)" in spare[0]
    few = plan.test_group_warnings(manifest_with_groups(2, 5), params)
    assert len(few) == 1 and "add more folders to 'anime' (it has 5 groups in all" in few[0]


# --- the estimates ------------------------------------------------------------------------------------


def model_plan(name: str, images: int = 160, epochs_left: int = 2) -> plan.ModelPlan:
    return plan.ModelPlan(name, name, images, 10, 16, images // 16, epochs_left, 2)


def launches(names: list[str], threads: int, gpus: tuple[str, ...] = ()) -> list[TrainLaunch]:
    return [TrainLaunch(Step("02_train.ipynb", n, {"domain": n, "seed_index": 0}, f"train_{n}"), gpus, threads)
            for n in names]  # fmt: skip


def test_the_estimate_here_shares_the_cores_and_splits_work_over_a_models_gpus() -> None:
    times = StepTimes(train_step_s=1.0, predict_image_s=0.0, device="cpu", threads=1)
    plans = [model_plan("a"), model_plan("b"), model_plan("c"), model_plan("d", epochs_left=0)]
    one = plan.estimate_here(plans[:1], [launches(["a"], 1)], times, [], startup_s=0.0, cores=2)
    assert one == pytest.approx(2 * 10 * 1.0)  # 2 epochs of 10 steps
    # three single-threaded notebooks still training on two cores: each at two thirds of its speed; a finished
    # model's notebook starts and ends, and takes no share
    four = plan.estimate_here(plans, [launches(["a", "b", "c", "d"], 1)], times, [], startup_s=0.0, cores=2)
    assert four == pytest.approx(1.5 * one)
    ddp = plan.estimate_here(plans[:1], [launches(["a"], 8, ("0", "1"))], times, [], startup_s=0.0, cores=16)
    assert ddp == pytest.approx(one / 2)
    scored = plan.estimate_here(plans[:1], [launches(["a"], 1)], dataclasses.replace(times, predict_image_s=0.5),
                                [plan.TestSplit("a", 10, 5)], startup_s=3.0, cores=2)  # fmt: skip
    assert scored == pytest.approx(one + 2 * 16 * 0.5 + 3.0 + 2 * 10 * 0.5 + 3 * 3.0)


def test_a_timing_that_fails_or_hangs_leaves_the_run_unestimated_not_stopped(monkeypatch) -> None:
    params = config.resolve_params("demo", TINY)
    launch = launches(["cartoon"], 1)[0]

    def failing(*args: object, **kwargs: object) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(args, 1, "", "Traceback ...\nRuntimeError: CUDA out of memory")

    monkeypatch.setattr(plan.subprocess, "run", failing)
    times, why = plan.time_steps(params, launch)
    assert times is None and why == "timing a few training steps failed (RuntimeError: CUDA out of memory)"

    def hanging(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        assert kwargs["timeout"] == plan.TIMING_LIMIT_S and "compile_metrics=False" in command
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(plan.subprocess, "run", hanging)
    times, why = plan.time_steps(params, launch)
    assert times is None and why.startswith("timing a few training steps took over")
    unestimated = plan.RunPlan([model_plan("a")], [], [], None, why, None, "no measurement")
    assert f"estimated time from here: not estimated ({why})" in plan.format_plan(unestimated, "untrained")


def test_the_kaggle_estimate_reads_the_committed_gpu_measurement(tmp_path) -> None:
    committed = plan.t4_images_per_s(256)
    assert committed is not None, f"{plan.GPU_MEASUREMENT} lacks the T4 projection the plan reads"
    measured = tmp_path / "bench_train_cuda.json"
    record = {"figures": [{"name": plan.T4_PROJECTION, "note": "40 images/s per T4"}], "date": "2026-01-02",
              "machine": {"gpus": ["NVIDIA H200"]}, "context": {"size": "256"}}  # fmt: skip
    measured.write_text(json.dumps(record))
    assert plan.t4_images_per_s(256, measured)[0] == pytest.approx(40)
    assert plan.t4_images_per_s(128, measured)[0] == pytest.approx(160)  # a quarter of the pixels
    assert plan.t4_images_per_s(256, tmp_path / "absent.json") is None


# --- parameters and command-line manners ----------------------------------------------------------


def test_an_unknown_parameter_or_profile_gets_did_you_mean() -> None:
    with pytest.raises(ParameterError, match=r"unknown parameter 'epoch'; did you mean 'epochs'\?"):
        config.resolve_params("demo", {"epoch": 3})
    with pytest.raises(ParameterError, match=r"unknown profile 'papr'; did you mean 'paper'\?"):
        config.resolve_params("papr")
    with pytest.raises(ParameterError, match="parameters are .*epochs"):  # nothing close: every name
        config.resolve_params("demo", {"zzzz": 3})


def test_pretrained_cached_takes_the_weights_only_when_this_machine_has_them(monkeypatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: None)
    assert config.resolve_params("demo", {"pretrained": "cached"}).pretrained is False
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: f"/cache/{repo}/{name}")
    assert config.resolve_params("demo", {"pretrained": "cached"}).pretrained is True
    assert PROFILES["quick"]["pretrained"] == PRETRAINED_IF_CACHED


def test_pretrained_cached_is_decided_once_per_run_directory(tmp_path, monkeypatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: f"/cache/{repo}/{name}")
    asked = {"pretrained": "cached", "epochs": 3}
    assert config.settle_pretrained("demo", tmp_path, asked) == {"pretrained": True, "epochs": 3}  # a new run
    (tmp_path / "run.json").write_text(json.dumps({"parameters": {"pretrained": False}}))
    assert config.settle_pretrained("demo", tmp_path, asked)["pretrained"] is False  # its first decision kept
    assert config.settle_pretrained("demo", tmp_path, {"pretrained": "true"}) == {"pretrained": "true"}
    assert config.settle_pretrained("quick", tmp_path, {})["pretrained"] is False  # the quick profile asks cached


def test_the_cached_weights_looked_for_are_those_timm_fetches() -> None:
    import timm

    cfg = timm.models.get_pretrained_cfg("resnet34")
    assert (cfg.hf_hub_id, "model.safetensors") == (config.ENCODER_WEIGHTS_REPO, config.ENCODER_WEIGHTS_FILE)


def test_pipeline_help_lists_the_profiles_and_points_to_the_parameter_table() -> None:
    text = pipeline.build_parser().format_help()
    for name, use in PROFILE_USES.items():
        assert f"{name}" in text and use[:40] in " ".join(text.split())
    assert set(PROFILE_USES) == set(PROFILES)
    page, anchor = pipeline.PARAMETER_TABLE.split("#")
    assert "## Parameters" in (KIT_ROOT / page).read_text() and anchor == "parameters"


@pytest.mark.slow  # starts make
def test_make_alone_prints_the_targets() -> None:
    printed = subprocess.run(["make", "-s"], cwd=KIT_ROOT, capture_output=True, text=True, check=True).stdout
    targets = re.findall(r"^([a-z-]+):", (KIT_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert printed.startswith("make TARGET") and all(f"  {target} " in printed for target in targets), printed


# --- the plan as a run prints it ------------------------------------------------------------------------


@pytest.mark.slow
def test_plan_prepares_prints_the_plan_and_trains_nothing(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    argv = ["--profile", "demo", "--run-dir", str(run_dir), "--no-progress", "--plan"]
    assert pipeline.main(argv + [arg for name, value in TINY.items() for arg in ("-p", f"{name}={value}")]) == 0
    printed = capsys.readouterr().out
    assert "plan: 3 models" in printed and "estimated time from here:" in printed and "Kaggle T4 x2:" in printed
    assert (run_dir / "data" / "prepared.json").is_file() and not (run_dir / "models").exists()
    kept = json.loads((run_dir / "run.json").read_text())["plan"]
    assert set(kept["models"]) == {"cartoon_seed0", "movie_seed0", "mixed_seed0"} and kept["estimated_s"] > 0
    params = config.resolve_params("demo", TINY)
    assert kept["models"]["movie_seed0"]["images"] == len(datasets.training_sets(run_dir, "movie", params)[0])


def test_training_prints_the_time_its_steps_left_take_once_it_has_timed_some(tmp_path, prepared_run, tiny_params,
                                                                            capsys) -> None:  # fmt: skip
    from tests.helpers import run_with_data

    run_dir = run_with_data(tmp_path / "run", prepared_run)
    training.train(tiny_params, run_dir, "movie", show_progress=False)
    estimates = [line for line in capsys.readouterr().out.splitlines() if "training steps left" in line]
    steps = len(datasets.training_sets(run_dir, "movie", tiny_params)[0]) // tiny_params.batch_size
    left = steps * tiny_params.epochs - min(steps, training.LOG_EVERY)  # after the first sync point
    assert len(estimates) == 1 and estimates[0].startswith(f"model movie: {left} training steps left")
