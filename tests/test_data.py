from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import TINY
from utils import config, data


def test_cartoon_frames_are_seeded() -> None:
    a = [c.rgb for c in data.demo_cartoon_frames(3, 64, seed=5)]
    b = [c.rgb for c in data.demo_cartoon_frames(3, 64, seed=5)]
    c = [c.rgb for c in data.demo_cartoon_frames(3, 64, seed=6)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    frame = a[0]
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert (frame.max(axis=2) - frame.min(axis=2)).mean() > 40  # saturated, not gray
    assert (frame.max(axis=2) < 60).mean() > 0.01  # dark outlines


def test_movie_stills_come_from_skimage_photos() -> None:
    stills = list(data.demo_movie_stills(4, 64, seed=0))
    assert all(s.rgb.shape == (64, 64, 3) for s in stills)
    assert all(s.group in data.skimage_photos() for s in stills)


def test_prepare_writes_shards_and_manifest(prepared_run: Path, tiny_params: config.RunParams) -> None:
    manifest = data.load_manifest(prepared_run)
    assert list(manifest.columns) == data.MANIFEST_COLUMNS
    for domain in config.DOMAINS:
        for split, count in (("train", TINY["train_per_domain"]), ("test", TINY["test_per_domain"])):
            shard = data.load_shard(prepared_run, domain, split)
            assert shard.shape == (count, 32, 32, 3) and shard.dtype == np.uint8
            assert isinstance(shard, np.memmap)
            rows = manifest[(manifest.domain == domain) & (manifest.split == split)].sort_values("index")
            assert [hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest() for img in shard] == list(rows.sha1)
    assert not list((prepared_run / "data").glob("*.tmp*")) and not list((prepared_run / "data").glob(".*pool*"))


def _write_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for film in ("film_a", "film_b", "film_c"):
        (root / film / "nested").mkdir(parents=True)
        for i in range(4):
            img = rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / film / f"{i}.png")
            Image.fromarray(img[::-1]).save(root / film / "nested" / f"{i}.jpg", quality=95)
    (root / "film_a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "film_b" / "notes.jpg").write_text("this is text")
    (root / "film_b" / "empty.webp").write_bytes(b"")
    (root / ".hidden").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / ".hidden" / "x.png")
    (root / "film_c" / "readme.txt").write_text("not an image")
    Image.open(root / "film_c" / "0.png").save(root / "film_c" / "copy_of_0.png")  # exact duplicate


def test_folder_source_records_rejections_and_splits_deterministically(tmp_path: Path) -> None:
    for domain in config.DOMAINS:
        _write_folder(tmp_path / domain)
    overrides = {
        **TINY,
        "source": "folder",
        "cartoon_dir": str(tmp_path / "cartoon"),
        "movie_dir": str(tmp_path / "movie"),
        "train_per_domain": 16,
        "test_per_domain": 4,
    }
    params = config.resolve_params("demo", overrides)
    first = data.prepare_data(params, tmp_path / "run1")
    second = data.prepare_data(params, tmp_path / "run2")
    pd.testing.assert_frame_equal(first, second)
    rejected = pd.read_csv(tmp_path / "run1" / "data" / "rejected.csv")
    reasons = dict(zip(rejected.source.map(lambda s: Path(s).name), rejected.reason))
    assert {"broken.png", "notes.jpg", "empty.webp", "copy_of_0.png"} <= set(reasons)
    assert all(reasons[n].startswith("unreadable") for n in ("broken.png", "notes.jpg", "empty.webp"))
    assert reasons["copy_of_0.png"].startswith("duplicate of") or reasons.get("0.png", "").startswith("duplicate")
    assert not any("hidden" in s for s in first.source)
    cartoon = first[first.domain == "cartoon"]
    assert (cartoon.split == "train").sum() == 16 and (cartoon.split == "test").sum() == 4
    assert set(cartoon.group) <= {"film_a", "film_b", "film_c", "film_a/nested", "film_b/nested", "film_c/nested"}


def test_too_few_images_is_a_clear_error(tmp_path: Path) -> None:
    for domain in config.DOMAINS:
        (tmp_path / domain).mkdir()
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / domain / "only.png")
    params = config.resolve_params(
        "demo",
        {**TINY, "source": "folder", "cartoon_dir": str(tmp_path / "cartoon"), "movie_dir": str(tmp_path / "movie")},
    )
    with pytest.raises(ValueError, match="domain 'cartoon': only 1 usable images"):
        data.prepare_data(params, tmp_path / "run")


def test_mixed_takes_equal_halves(prepared_run: Path, tiny_params: config.RunParams) -> None:
    cartoon_train, cartoon_val = data.training_sets(prepared_run, "cartoon", tiny_params)
    mixed_train, mixed_val = data.training_sets(prepared_run, "mixed", tiny_params)
    assert len(cartoon_train) + len(cartoon_val) == TINY["train_per_domain"]
    assert set(cartoon_train.indices).isdisjoint(cartoon_val.indices)
    halves = [len(d) for d in mixed_train.datasets]
    assert halves[0] == halves[1] == len(cartoon_train) // 2
    assert [str(d.images.filename) for d in mixed_train.datasets] == [
        str(data.shard_path(prepared_run, d, "train")) for d in config.DOMAINS
    ]
    assert len(mixed_val) >= 2
    assert mixed_train[0].shape == (32, 32, 3)
