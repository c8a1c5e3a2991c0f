from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY
from utils import config, sources


def test_cartoon_frames_are_seeded() -> None:
    a = [c.rgb for c in sources.demo_cartoon_frames(3, 64, seed=5)]
    b = [c.rgb for c in sources.demo_cartoon_frames(3, 64, seed=5)]
    c = [c.rgb for c in sources.demo_cartoon_frames(3, 64, seed=6)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    frame = a[0]
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert (frame.max(axis=2) - frame.min(axis=2)).mean() > 40  # saturated, not gray
    assert (frame.max(axis=2) < 60).mean() > 0.01  # dark outlines


def test_movie_stills_come_from_skimage_photos() -> None:
    stills = list(sources.demo_movie_stills(4, 64, seed=0))
    assert all(s.rgb.shape == (64, 64, 3) for s in stills)
    assert all(s.group in sources.skimage_photos() for s in stills)


def test_demo_stream_resumes_at_an_offset() -> None:
    params = config.resolve_params("demo", TINY)
    full = list(sources.demo_stream(params, "cartoon", "train"))
    assert len(full) == TINY["train_per_domain"]
    tail = list(sources.demo_stream(params, "cartoon", "train", start=5))
    assert [c.sha1 for c in tail] == [c.sha1 for c in full[5:]]
    test = list(sources.demo_stream(params, "cartoon", "test"))
    assert not {c.sha1 for c in test} & {c.sha1 for c in full}


def _files(groups: dict[str, int]) -> list[sources.SourceFile]:
    return [sources.SourceFile(f"/{g}/{i}.png", g) for g, n in groups.items() for i in range(n)]


def test_split_keeps_groups_whole_and_near_the_ratio() -> None:
    files = _files({f"film{k}": 5 + k % 7 for k in range(40)})
    splits = sources.assign_splits(files, n_train=80, n_test=20, seed=3)
    test_groups = {f.group for f in splits["test"]}
    train_groups = {f.group for f in splits["train"]}
    assert not test_groups & train_groups
    assert len(splits["test"]) + len(splits["train"]) == len(files)
    assert 0.15 < len(splits["test"]) / len(files) < 0.25
    assert splits == sources.assign_splits(files, n_train=80, n_test=20, seed=3)
    assert splits != sources.assign_splits(files, n_train=80, n_test=20, seed=4)


def test_flat_folder_makes_each_file_its_own_group(tmp_path: Path) -> None:
    from PIL import Image

    from tests.messy_data import colourful

    for i in range(3):
        Image.fromarray(colourful(i)).save(tmp_path / f"{i}.png")
    groups = [f.group for f in sources.list_source_files(tmp_path)]
    assert groups == ["0.png", "1.png", "2.png"]


@pytest.mark.parametrize("layout", ["{root}/{slug}", "{root}/datasets/{owner}/{slug}"])
def test_attached_kaggle_dataset_is_found_by_searching(tmp_path: Path, layout: str) -> None:
    folder = Path(layout.format(root=tmp_path, owner="someone", slug="cartoon-frames"))
    (folder / "images").mkdir(parents=True)
    assert sources.find_attached_dataset("someone/cartoon-frames", tmp_path) == folder
    assert sources.find_attached_dataset("someone/other", tmp_path) is None


def _no_credentials(monkeypatch, home: Path) -> None:
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))


def test_missing_kaggle_data_lists_the_ways_to_supply_it(tmp_path: Path, monkeypatch) -> None:
    _no_credentials(monkeypatch, tmp_path)
    params = config.resolve_params("demo", {"source": "kaggle", "cartoon_dataset": "a/b", "movie_dataset": "c/d",
                                            "kaggle_input_root": str(tmp_path / "input")})  # fmt: skip
    with pytest.raises(sources.DataSourceError) as err:
        sources.source_root(params, "cartoon")
    message = str(err.value)
    assert "'cartoon_dataset'" in message and "kaggle.json" in message and "source='folder'" in message


def test_with_credentials_the_dataset_is_downloaded_once(tmp_path: Path, monkeypatch) -> None:
    _no_credentials(monkeypatch, tmp_path)
    # `kaggle/__init__` replaces the `kaggle.api` subpackage with an instance: fetch the module itself
    extended = importlib.import_module("kaggle.api.kaggle_api_extended")
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    calls = []

    class FakeApi:
        def authenticate(self) -> None:
            calls.append("authenticate")

        def dataset_download_files(self, handle: str, path: str, unzip: bool, quiet: bool) -> None:
            calls.append((handle, path, unzip))
            Path(path, "frame.png").write_bytes(b"")

    monkeypatch.setattr(extended, "KaggleApi", FakeApi)
    params = config.resolve_params("demo", {"source": "kaggle", "cartoon_dataset": "owner/cartoons",
                                            "movie_dataset": "owner/stills", "kaggle_input_root": str(tmp_path / "none"),
                                            "kaggle_cache": str(tmp_path / "cache")})  # fmt: skip
    root = sources.source_root(params, "cartoon")
    assert root == tmp_path / "cache" / "owner" / "cartoons" and (root / "frame.png").is_file()
    assert sources.source_root(params, "cartoon") == root  # cached: no second download
    assert calls == ["authenticate", ("owner/cartoons", str(root), True)]


def test_importing_the_kit_does_not_import_kaggle() -> None:
    code = "import sys, utils.data, utils.sources, utils.pipeline; print('kaggle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert out.stdout.strip() == "False", out.stderr
