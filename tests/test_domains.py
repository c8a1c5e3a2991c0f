"""Any set of domains: `domains` as the one representation, the paper's shorthand resolving to it, bad input refused
before any work, and three folder domains through every stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import TINY
from tests.helpers import assert_report_answers_first, write_manifest
from utils import pipeline
from utils.core import config
from utils.core.domains import fraction_model
from utils.core.errors import ParameterError
from utils.data import datasets, prepare
from utils.eval import evaluate, plots, report
from utils.kaggle import commands as kit_kaggle
from utils.nets import distributed
from utils.train import batches, launch, training

# three domains told apart by their colours: each image a few flat shapes in its domain's hues
HUES = {"anime": (0.9, 1.0), "photo": (0.25, 0.4), "painting": (0.55, 0.7)}


def write_domain_folders(root: Path, images: int = 40, size: int = 48) -> dict[str, str]:
    """One folder per domain of :data:`HUES`, 8 group sub-folders each, of generated images."""
    import colorsys

    rng = np.random.default_rng(3)
    folders = {}
    for name, (low, high) in HUES.items():
        for i in range(images):
            canvas = np.zeros((size, size, 3), np.uint8)
            for _ in range(4):
                hue, sat, value = rng.uniform(low, high), rng.uniform(0.6, 1), rng.uniform(0.5, 1)
                colour = np.array(colorsys.hsv_to_rgb(hue, sat, value)) * 255
                top, left = rng.integers(0, size - 8, 2)
                h, w = rng.integers(8, size // 2, 2)
                canvas[top : top + h, left : left + w] = colour
            folder = root / name / f"group_{i % 8}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(canvas).save(folder / f"{i:03d}.png")
        folders[name] = str(root / name)
    return folders


def test_the_paper_shorthand_is_the_same_run_as_its_domains(tmp_path: Path) -> None:
    for kind in ("cartoon", "movie"):
        (tmp_path / kind).mkdir()
    shorthand = {"source": "folder", "cartoon_dir": str(tmp_path / "cartoon"), "movie_dir": str(tmp_path / "movie")}
    spelled = {"source": "folder", "domains": json.dumps({"cartoon": str(tmp_path / "cartoon"),
                                                         "movie": str(tmp_path / "movie")})}  # fmt: skip
    a, b = config.resolve_params("demo", shorthand), config.resolve_params("demo", spelled)
    assert a == b and a.domain_names == ("cartoon", "movie") and a.models == ("cartoon", "movie", "mixed")
    assert prepare.prepare_fingerprint(a) == prepare.prepare_fingerprint(b)
    handles = {"cartoon_dataset": "alice/frames", "movie_dataset": "bob/stills"}
    kaggle = config.resolve_params("paper", handles)
    assert kaggle == config.resolve_params("paper", {"domains": {"cartoon": "alice/frames", "movie": "bob/stills"}})
    assert kaggle.to_dict()["domains"] == {"cartoon": "alice/frames", "movie": "bob/stills"}
    assert config.resolve_params("demo").domains == (("cartoon", ""), ("movie", ""))


def test_the_domains_keep_their_order_and_give_the_models(tmp_path: Path) -> None:
    folders = {name: tmp_path / name for name in ("photo", "anime", "painting")}
    for folder in folders.values():
        folder.mkdir()
    params = config.resolve_params("demo", {"source": "folder", "domains": {k: str(v) for k, v in folders.items()}})
    assert params.domain_names == ("photo", "anime", "painting")
    assert params.models == ("photo", "anime", "painting", "mixed")
    assert config.check_domain("painting", params) == "painting"
    with pytest.raises(ParameterError, match="'domain' = 'cartoon'"):
        config.check_domain("cartoon", params)


@pytest.mark.parametrize(
    ("domains", "message"),
    [
        ({"anime": "A"}, r"1 domain\(s\); a study needs 2 to 6"),
        ('{"anime": "A", "photo": "B", "anime": "C"}', "the name 'anime' is given twice"),
        ({"anime/tv": "A", "photo": "B"}, "'anime/tv' is not a lower-case identifier"),
        ({"Anime": "A", "photo": "B"}, "'Anime' is not a lower-case identifier"),
        ({"mixed": "A", "photo": "B"}, "'mixed' is the model trained on every domain"),
        ({"gray": "A", "photo": "B"}, "'gray' is a baseline's name"),
        ({}, "names no domain"),
        ({f"d{i}": "A" for i in range(7)}, r"7 domain\(s\)"),
        ({"anime": "A", "photo": "missing"}, r"domains\['photo'\] = '.*missing': is not a directory"),
        ("anime=A", "not a JSON object"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_bad_domains_are_refused_before_any_work_naming_the_parameter(
    tmp_path: Path, domains: dict | str, message: str
) -> None:
    (tmp_path / "A").mkdir()
    if isinstance(domains, dict):
        domains = {name: str(tmp_path / where) for name, where in domains.items()}
    with pytest.raises(ParameterError, match=r"parameter '?domains") as err:
        config.resolve_params("demo", {"source": "folder", "domains": domains})
    assert re.search(message, str(err.value)), str(err.value)


def test_domains_and_the_shorthand_together_or_other_demo_domains_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="'domains' and 'cartoon_dir' both given"):
        config.resolve_params("demo", {"source": "folder", "domains": {"a": str(tmp_path), "b": str(tmp_path)},
                                       "cartoon_dir": str(tmp_path)})  # fmt: skip
    with pytest.raises(ParameterError, match="source='demo' generates cartoon and movie only"):
        config.resolve_params("demo", {"domains": {"anime": "", "photo": ""}})
    with pytest.raises(ParameterError, match="'cartoon_dataset' = 'a/b': is for source='kaggle'"):
        config.resolve_params("demo", {"source": "folder", "cartoon_dataset": "a/b"})


@pytest.mark.slow  # four models trained, then every stage after them
def test_three_folder_domains_run_through_every_stage(tmp_path: Path, monkeypatch) -> None:
    folders = write_domain_folders(tmp_path / "images")
    overrides = {**TINY, "source": "folder", "domains": folders, "train_per_domain": 24, "test_per_domain": 8,
                 "n_bootstrap": 200, "prepare_workers": 1}  # fmt: skip
    params = config.resolve_params("demo", overrides)
    run_dir = tmp_path / "run"
    manifest = prepare.prepare_data(params, run_dir)
    assert list(pd.unique(manifest["domain"])) == ["anime", "photo", "painting"]
    for model in params.models:
        training.train(params, run_dir, model, show_progress=False)
    evaluate.evaluate_models(params, run_dir, show_progress=False)
    summary = pd.read_csv(run_dir / "eval" / "summary.csv")
    cells = summary[summary["metric"] == "ciede2000"].set_index(["model", "test_domain"]).index
    every = {(m, d) for m in (*params.models, "gray", "truth") for d in params.domain_names}
    assert set(cells) == every
    titles, save = {}, plots.save_figure
    monkeypatch.setattr(
        plots, "save_figure", lambda fig, path: titles.update({path.stem: fig.axes[0].get_title()}) or save(fig, path)
    )
    plots.draw_figures(run_dir, params)
    assert (run_dir / "figures" / "cross_domain_ciede2000.png").is_file()
    assert titles["cross_domain_ciede2000"].count("lower is better") == 1  # the direction, said once
    means, texts = plots.cross_domain_matrix(summary, "ciede2000")
    assert list(means.index) == ["anime", "photo", "painting", "mixed", "gray"]
    assert list(means.columns) == ["anime", "photo", "painting"] and "[" in texts.at["mixed", "photo"]
    claims = pd.read_csv(run_dir / "eval" / "claims.csv", keep_default_na=False)
    assert set(claims["verdict"]) == {"not testable"}
    assert claims["this_run"].str.contains("about its cartoon and movie domains").all()
    gaps = pd.read_csv(run_dir / "eval" / "generalization.csv")
    assert list(gaps["model"]) == ["anime", "photo", "painting"]
    assert (gaps["n_groups_out"] == gaps["n_groups_in"]).all()  # the fewest of another domain: as many each
    path = report.write_report(run_dir)
    assert_report_answers_first(path, max_kb=20)
    text = path.read_text()
    assert "**Generalization gap**" in text and "The paper's claims**: not testable here" in text
    for name in HUES:
        assert f"on {name} test images" in text


# --- the mixing curve: fractions of the first of two domains ------------------------------------------------------


def test_mix_fractions_reuse_the_domain_and_mixed_models_and_add_one_model_per_other_fraction(tmp_path: Path) -> None:
    params = config.resolve_params("demo", {"mix_fractions": "0,0.25,0.5,0.75,1"})
    assert params.models == ("cartoon", "movie", "mixed", "mix0.25", "mix0.75")  # 0.5 is mixed: not trained again
    assert [fraction_model(params.domains, f) for f in params.mix_fractions] == [
        "movie", "mix0.25", "mixed", "mix0.75", "cartoon"
    ]  # fmt: skip
    steps = [s.stage for s in pipeline.plan_steps("demo", tmp_path / "run", {"mix_fractions": "0,0.25,0.5,0.75,1"})]
    assert [s for s in steps if s.startswith("train_")] == [f"train_{m}_seed0" for m in params.models]
    assert config.check_domain("mix0.25", params) == "mix0.25"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mix_fractions": "0.25,1.5"}, r"1.5 is outside \[0, 1\]"),
        ({"mix_fractions": "-0.1"}, r"-0.1 is outside \[0, 1\]"),
        ({"mix_fractions": "0.3,0.3"}, "given twice"),
        ({"mix_fractions": "half"}, "must be numbers"),
        ({"mix_fractions": "0.1234567,0.1234568"}, "given twice"),
        ({"source": "folder", "domains": "THREE", "mix_fractions": "0.25"}, "need exactly two domains; this run has 3"),
    ],
)
def test_bad_mix_fractions_are_refused_naming_the_parameter(tmp_path: Path, overrides: dict, message: str) -> None:
    if overrides.get("domains") == "THREE":
        for name in ("a", "b", "c"):
            (tmp_path / name).mkdir()
        overrides = {**overrides, "domains": {name: str(tmp_path / name) for name in ("a", "b", "c")}}
    with pytest.raises(ParameterError, match="parameter 'mix_fractions'") as err:
        config.resolve_params("demo", overrides)
    assert re.search(message, str(err.value)), str(err.value)


@pytest.mark.slow  # prepares a few hundred demo images
def test_a_fraction_model_draws_that_share_of_its_images_from_the_first_domain(tmp_path: Path) -> None:
    params = config.resolve_params("demo", {**TINY, "train_per_domain": 240, "test_per_domain": 4, "image_size": 32,
                                            "prepare_workers": 1, "mix_fractions": "0.1,0.25,0.75"})  # fmt: skip
    prepare.prepare_data(params, tmp_path / "run")
    for fraction, model in ((0.1, "mix0.1"), (0.25, "mix0.25"), (0.5, "mixed"), (0.75, "mix0.75")):
        train_set, val_set = datasets.training_sets(tmp_path / "run", model, params)
        first = len(train_set.datasets[0]) if fraction else 0  # the first domain's part of the concatenation
        sampler = batches.EpochSampler(train_set, distributed.Processes(), seed=0, batch_size=4, flip=True)
        drawn = []
        for epoch in range(1, 6):
            sampler.set_position(epoch, 0)
            drawn += [index for index, _ in sampler]
        share = np.mean(np.array(drawn) < first)
        assert abs(share - fraction) <= 0.02, (model, share)
        assert 200 <= len(train_set) <= 216  # the same total as one domain's train images (less validation)


@pytest.mark.slow  # draws the figure
def test_the_mixing_curve_has_one_point_per_fraction_and_test_domain(tmp_path: Path) -> None:
    domains = (("cartoon", ""), ("movie", ""))
    models = ["gray", "truth", "cartoon", "movie", "mixed", "mix0.25", "mix0.75"]
    summary = pd.DataFrame(
        [{"model": m, "test_domain": d, "metric": "ciede2000", "mean": 10.0 + i + j, "ci_low": 9.0 + i + j,
          "ci_high": 11.0 + i + j, "n": 8, "n_groups": 8} for i, m in enumerate(models)
         for j, d in enumerate(("cartoon", "movie"))]
    )  # fmt: skip
    curve = plots.mixing_curve(summary, domains, (0.0, 0.25, 0.5, 0.75, 1.0))
    assert len(curve) == 10 and list(curve["fraction"].unique()) == [0.0, 0.25, 0.5, 0.75, 1.0]
    on_movie = curve[curve["test_domain"] == "movie"].set_index("fraction")
    assert list(on_movie["model"]) == ["movie", "mix0.25", "mixed", "mix0.75", "cartoon"]
    assert on_movie.at[0.25, "mean"] == 10.0 + models.index("mix0.25") + 1
    (tmp_path / "eval").mkdir()
    summary.to_csv(tmp_path / "eval" / "summary.csv", index=False)
    plots.plot_mixing_curve(tmp_path, domains, (0.0, 0.25, 0.5, 0.75, 1.0))
    assert (tmp_path / "figures" / "mixing_curve_ciede2000.png").is_file()


def test_every_model_of_a_fraction_is_trained_and_the_mixed_model_colorizes(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="parameter 'models'.*leaves out mix0.25"):
        config.resolve_params("demo", {"mix_fractions": "0.25", "models": "cartoon,movie,mixed"})
    assert config.resolve_params("demo", {"mix_fractions": 0.25}).models[-1] == "mix0.25"  # one number, as a list
    steps = pipeline.plan_steps("demo", tmp_path / "run", {"mix_fractions": "0.25,0.75"})
    assert steps[-1].stage == "colorize" and steps[-1].parameters["model"] == "mixed"


def test_a_training_process_rebuilds_the_same_domains_and_fractions(tmp_path: Path) -> None:
    folders = {name: tmp_path / f"my {name}, v=1" for name in ("anime", "photo")}  # a space, a comma, an "="
    for folder in folders.values():
        folder.mkdir()
    params = config.resolve_params("demo", {"source": "folder", "domains": {k: str(v) for k, v in folders.items()},
                                            "mix_fractions": "0.1,0.25", "models": "anime,mix0.1,mix0.25"})  # fmt: skip
    args = launch.param_arguments(params)
    assert config.resolve_params("demo", config.parse_overrides(args[1::2])) == params


def test_a_run_directory_prepared_with_other_domains_is_refused_naming_them(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_manifest(run_dir, domain=["anime", "photo"], split=["test", "test"], index=[0, 0], group=["a", "b"])
    fingerprint = {"domains": {"anime": "x", "photo": "y"}}
    (run_dir / "data" / "prepared.json").write_text(json.dumps({"fingerprint": fingerprint, "groups": {}}))
    with pytest.raises(ParameterError, match="parameter 'domains' names cartoon, movie; .* prepared with anime, photo"):
        config.check_stage_inputs(run_dir, "train", config.resolve_params("demo"))


def test_check_counts_images_whatever_the_domains(monkeypatch) -> None:
    domains = {"anime": "a/b", "photo": "c/d", "painting": "e/f"}
    needed = kit_kaggle.images_needed("paper", {"domains": domains, "models": "anime,mixed", "train_per_domain": 10,
                                                "test_per_domain": 2, "cartoon_dataset": "g/h"})  # fmt: skip
    assert needed == 12
