"""group_pattern: a file's group from its name, for folder and Kaggle sources, through the real prepare."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.conftest import TINY
from tests.messy_data import colourful, write_kaggle_like_dataset
from utils import pipeline
from utils.core import config, grouping
from utils.core.errors import ParameterError
from utils.core.parameters import RunParams
from utils.data import prepare, shards, sources
from utils.eval import report
from utils.eval.report_findings import RunTables

NAMED = r"([A-Z][a-z]+)_\d+\.png$"  # Alpha_0001.png and film1/Delta_0003.png; not loose_1.png nor film2/frame_1.png
FLAT_NAMES = {"Alpha": 5, "Beta": 4, "Gamma": 4, "Kappa": 3}
FILMS = {"film1": ["Delta_0001.png", "Delta_0002.png", "Omega_0001.png", "Omega_0002.png"],
         "film2": ["frame_1.png", "frame_2.png", "frame_3.png"], "film3": ["frame_1.png", "frame_2.png"],
         "film4": ["frame_1.png", "frame_2.png", "frame_3.png"]}  # fmt: skip


def write_images(folder: Path, names: list[str], seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.fromarray(colourful(seed + k, size=48)).save(folder / name)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """``flat``: named files of four titles and three that no pattern names; ``films``: four film folders, one of
    them with named files of two titles."""
    root = tmp_path_factory.mktemp("named")
    flat = [f"{title}_{i:04d}.png" for title, n in FLAT_NAMES.items() for i in range(1, n + 1)]
    write_images(root / "flat", [*flat, "loose_1.png", "loose_2.png", "loose_3.png"], seed=100)
    for k, (film, names) in enumerate(FILMS.items()):
        write_images(root / "films" / film, names, seed=200 + 10 * k)
    return {"flat": root / "flat", "films": root / "films"}


def folder_params(folders: dict[str, Path], **extra) -> RunParams:
    overrides = {**TINY, "train_per_domain": 10, "test_per_domain": 4, "prepare_workers": 1, "source": "folder",
                 "domains": {name: str(path) for name, path in folders.items()}, "group_pattern": NAMED, **extra}  # fmt: skip
    return config.resolve_params("demo", overrides)


@pytest.fixture(scope="module")
def named_run(tmp_path_factory, folders: dict[str, Path]) -> Path:
    run_dir = tmp_path_factory.mktemp("named-run") / "run"
    prepare.prepare_data(folder_params(folders), run_dir)
    return run_dir


def test_a_flat_folder_is_grouped_by_name_and_no_name_straddles_the_split(named_run: Path) -> None:
    manifest = shards.load_manifest(named_run)
    flat = manifest[manifest.domain == "flat"].assign(name=lambda rows: rows.source.map(lambda s: Path(s).name))
    titled = flat[flat.name.str.contains("_0")]
    assert list(titled.folder_group) == [name.split("_")[0] for name in titled.name]
    assert set(titled.folder_group) == set(FLAT_NAMES)
    for title, rows in titled.groupby(titled.name.str.split("_").str[0]):
        assert rows.split.nunique() == 1, (title, list(zip(rows.name, rows.split)))
    for _, rows in manifest.groupby(["domain", "group"]):
        assert rows.split.nunique() == 1
    loose = flat[flat.name.str.startswith("loose_")]
    assert list(loose.folder_group) == list(loose.name)  # unmatched in a flat folder: each file its own group


def test_unmatched_files_keep_their_folder_group(named_run: Path, folders: dict[str, Path]) -> None:
    manifest = shards.load_manifest(named_run)
    films = manifest[manifest.domain == "films"]
    by_file = {str(Path(source).relative_to(folders["films"])): group
               for source, group in zip(films.source, films.folder_group)}  # fmt: skip
    for path, group in by_file.items():
        folder, name = path.split("/")
        assert group == (name.split("_")[0] if folder == "film1" else folder), path
    files, _ = sources.list_source_files(folders["films"], NAMED)
    assert [(Path(f.path).relative_to(folders["films"]).as_posix(), f.group, f.named) for f in files][:5] == [
        ("film1/Delta_0001.png", "Delta", True),
        ("film1/Delta_0002.png", "Delta", True),
        ("film1/Omega_0001.png", "Omega", True),
        ("film1/Omega_0002.png", "Omega", True),
        ("film2/frame_1.png", "film2", False),
    ]


def test_the_whole_match_names_the_group_when_the_pattern_has_no_capture_group(folders: dict[str, Path]) -> None:
    files, _ = sources.list_source_files(folders["flat"], r"^[A-Z]\w*?_")
    assert {f.group for f in files if f.named} == {f"{title}_" for title in FLAT_NAMES}
    optional, _ = sources.list_source_files(folders["flat"], r"^(?:(Alpha)|[A-Z]\w+)_")  # its group may take no part
    assert {f.group for f in optional if f.named} == {"Alpha"}
    assert sorted(Path(f.path).name for f in optional if not f.named)[0] == "Beta_0001.png"


def test_prepared_json_records_the_pattern_and_the_report_says_what_it_matched(named_run: Path) -> None:
    record = json.loads((named_run / "data" / "prepared.json").read_text())
    assert record["grouping"] == {"group_pattern": NAMED, "matched": {"flat": 16, "films": 4},
                                  "files": {"flat": 19, "films": 12}}  # fmt: skip
    assert record["fingerprint"]["group_pattern"] == NAMED
    assert {"fingerprint", "groups"} <= set(record)
    empty = pd.DataFrame(columns=["model", "test_domain"])
    section = report.data_section(named_run, RunTables(empty, empty, empty, empty, None, {}))
    assert f"`group_pattern` `{NAMED}` matched 16 of 19 files of flat, 4 of 12 files of films" in section.text


def test_a_changed_pattern_prepares_again(tmp_path: Path, folders: dict[str, Path], capsys) -> None:
    prepare.prepare_data(folder_params(folders), tmp_path)
    capsys.readouterr()
    prepare.prepare_data(folder_params(folders), tmp_path)
    assert "already prepared with these parameters" in capsys.readouterr().out
    prepare.prepare_data(folder_params(folders, group_pattern=r"^(Alpha|Beta)_"), tmp_path)
    assert "preparing it again" in capsys.readouterr().out
    record = json.loads((tmp_path / "data" / "prepared.json").read_text())
    assert record["grouping"] == {"group_pattern": "^(Alpha|Beta)_", "matched": {"flat": 9, "films": 0},
                                  "files": {"flat": 19, "films": 12}}  # fmt: skip
    assert set(shards.load_manifest(tmp_path).folder_group) & {"Gamma", "Delta"} == set()
    prepare.prepare_data(folder_params(folders, group_pattern=""), tmp_path)
    assert "preparing it again" in capsys.readouterr().out
    record = json.loads((tmp_path / "data" / "prepared.json").read_text())
    assert "group_pattern" not in record["fingerprint"]  # no pattern: the fingerprint of data prepared before it
    assert record["grouping"]["group_pattern"] == "" and record["grouping"]["matched"] == {"flat": 0, "films": 0}
    section = report.data_section(tmp_path, RunTables(*[pd.DataFrame(columns=["model", "test_domain"])] * 4, None, {}))
    assert "group_pattern" not in section.text


def test_a_kaggle_dataset_is_grouped_by_name_too(tmp_path: Path) -> None:
    mount = tmp_path / "input"
    roots = {"cartoon": write_kaggle_like_dataset(mount / "datasets" / "someone" / "frames", groups=5, per_group=4),
             "movie": write_kaggle_like_dataset(mount / "stills", groups=5, per_group=4, seed=3)}  # fmt: skip
    pattern = r"frame_(\d+)\."  # the frame's number, across the dataset's folders
    overrides = {**TINY, "train_per_domain": 8, "test_per_domain": 4, "prepare_workers": 1, "source": "kaggle",
                 "cartoon_dataset": "someone/frames", "movie_dataset": "other/stills", "kaggle_input_root": str(mount),
                 "group_pattern": pattern}  # fmt: skip
    manifest = prepare.prepare_data(config.resolve_params("demo", overrides), tmp_path / "run")
    named = manifest[manifest.source.map(lambda source: re.search(pattern, source) is not None)]
    assert len(named) and list(named.folder_group) == [re.search(pattern, s)[1] for s in named.source]
    assert set(manifest.folder_group) - set(named.folder_group) <= {"group_misc"}
    record = json.loads((tmp_path / "run" / "data" / "prepared.json").read_text())
    for domain, root in roots.items():
        listed = [Path(f.path).relative_to(root).as_posix() for f in sources.list_source_files(root)[0]]
        assert record["grouping"]["files"][domain] == len(listed)
        assert record["grouping"]["matched"][domain] == sum(bool(re.search(pattern, path)) for path in listed) > 0


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("([A-Z]", "not a regular expression: missing ), unterminated subpattern"),
        ("a{2,1}", "not a regular expression: min repeat greater than max repeat"),
    ],
)
def test_an_unusable_pattern_is_refused_naming_the_parameter(pattern: str, reason: str) -> None:
    with pytest.raises(ParameterError, match=re.escape(f"parameter 'group_pattern' = {pattern!r}: {reason}")):
        config.resolve_params("quick", {"domains": {"a": ".", "b": "."}, "group_pattern": pattern})
    with pytest.raises(ParameterError, match="parameter 'group_pattern' = .*the demo has none"):
        config.resolve_params("demo", {"group_pattern": "^([^_]+)_"})
    assert config.resolve_params("quick", {"domains": {"a": ".", "b": "."}, "group_pattern": "^([^_]+)_"})


def test_the_pipeline_refuses_an_invalid_pattern_before_any_work(tmp_path: Path, folders: dict[str, Path], capsys):
    run_dir = tmp_path / "run"
    domains = json.dumps({name: str(path) for name, path in folders.items()})
    argv = ["--profile", "quick", "--run-dir", str(run_dir), "-p", f"domains={domains}", "-p", "group_pattern=(["]
    assert pipeline.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: parameter 'group_pattern' = '(['"), err
    assert not run_dir.exists() and not list(tmp_path.iterdir())


def test_an_empty_name_names_nothing_the_file_keeps_its_folder_group() -> None:
    paths = ["_0001.png", "Alpha_0001.png", "x.png"]
    assert grouping.pattern_groups(paths, "^([^_]*)_") == [None, "Alpha", None]  # an empty group: unmatched
    assert grouping.pattern_groups(paths, r"\d*") == [None, None, None]  # an empty whole match at the start
