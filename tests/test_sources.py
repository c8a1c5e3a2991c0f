from __future__ import annotations

import hashlib
import importlib
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from tests.helpers import run_python
from utils.core import config, errors
from utils.core.domains import DEMO_DOMAINS
from utils.core.parameters import RunParams
from utils.data import decoding, demo, sources


def test_cartoon_frames_are_seeded() -> None:
    a = [c.rgb for c in demo.demo_cartoon_frames(3, 64, seed=5)]
    b = [c.rgb for c in demo.demo_cartoon_frames(3, 64, seed=5)]
    c = [c.rgb for c in demo.demo_cartoon_frames(3, 64, seed=6)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    frame = a[0]
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert (frame.max(axis=2) - frame.min(axis=2)).mean() > 40  # saturated, not gray
    assert (frame.max(axis=2) < 60).mean() > 0.01  # dark outlines


def test_demo_photographs_load_offline_as_distinct_colour_photographs() -> None:
    photos = demo.demo_photos()
    assert list(photos) == list(demo.DEMO_PHOTOS)
    for name, photo in photos.items():
        assert photo.ndim == 3 and photo.shape[2] == 3 and photo.dtype == np.uint8, name
        assert min(photo.shape[:2]) >= 256, name  # a photograph, not an icon
        assert sources.near_grayscale_reason(photo, min_colorfulness=10) is None, name  # colour, not gray
    pixels = [hashlib.sha1(photo.tobytes()).hexdigest() for photo in photos.values()]
    assert len(set(pixels)) == len(pixels)  # one photograph once: skimage's cat is chelsea
    test, train = demo.demo_movie_photos("test"), demo.demo_movie_photos("train")
    assert test == demo.DEMO_MOVIE_TEST_PHOTOS and len(train) >= 2 * len(test)
    assert sorted(test + train) == sorted(demo.DEMO_PHOTOS)


def test_movie_stills_are_crops_of_the_photographs_asked_for() -> None:
    stills = list(demo.demo_movie_stills(6, 64, seed=0, photos=("coffee", "rocket")))
    assert all(s.rgb.shape == (64, 64, 3) and s.reason is None for s in stills)
    assert [s.group for s in stills] == ["coffee", "rocket"] * 3  # in turn: every photograph its share
    assert all(s.source.startswith(f"scikit-image:{s.group}[") for s in stills)
    again = list(demo.demo_movie_stills(6, 64, seed=0, photos=("coffee", "rocket")))
    assert [s.sha1 for s in again] == [s.sha1 for s in stills]


@pytest.mark.parametrize("domain", DEMO_DOMAINS)
def test_demo_stream_resumes_at_an_offset(domain: str) -> None:
    params = config.resolve_params("demo", TINY)
    full = list(demo.demo_stream(params, domain, "train"))
    assert len(full) == TINY["train_per_domain"] * demo.DEMO_CANDIDATES_PER_IMAGE  # spares for rejected ones
    tail = list(demo.demo_stream(params, domain, "train", start=5))
    assert [c.sha1 for c in tail] == [c.sha1 for c in full[5:]]
    test = list(demo.demo_stream(params, domain, "test"))
    assert not {c.sha1 for c in test} & {c.sha1 for c in full}
    assert not {c.group for c in test} & {c.group for c in full}


def test_demo_candidates_pass_the_near_grayscale_filter() -> None:
    # at 32 px chelsea's crops (a tabby cat) score 25-50 in colorfulness, coffee's 60-100
    stills = list(demo.demo_movie_stills(6, 32, seed=0, photos=("chelsea", "coffee"), min_colorfulness=55))
    assert [s.reason is None for s in stills] == [False, True] * 3
    assert all(s.rgb is None and s.reason.startswith("near-grayscale: colorfulness") for s in stills[::2])
    assert all(s.reason is None for s in demo.demo_movie_stills(6, 32, seed=0, photos=("chelsea", "coffee")))


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


def test_a_folder_source_stays_inside_its_root(tmp_path: Path, capsys) -> None:
    from PIL import Image

    from tests.messy_data import colourful

    (tmp_path / "root" / "film").mkdir(parents=True)
    (tmp_path / "machine").mkdir()
    for i in range(2):
        Image.fromarray(colourful(i)).save(tmp_path / "root" / "film" / f"{i}.png")
        Image.fromarray(colourful(i + 2)).save(tmp_path / "machine" / f"{i}.png")
    (tmp_path / "root" / "up").symlink_to(tmp_path, target_is_directory=True)
    files, outside = sources.list_source_files(tmp_path / "root")
    assert [Path(f.path).relative_to(tmp_path) for f in files] == [Path("root/film/0.png"), Path("root/film/1.png")]
    assert outside == [
        (str(tmp_path / "root" / "up"), f"outside-folder: links to {tmp_path}, outside {tmp_path / 'root'}")
    ]
    printed = capsys.readouterr().out
    assert f"{tmp_path / 'root'}: 1 link(s) lead outside the folder and are not followed: " in printed
    assert f"{tmp_path / 'root' / 'up'} -> {tmp_path}" in printed


def test_flat_folder_makes_each_file_its_own_group(tmp_path: Path) -> None:
    from PIL import Image

    from tests.messy_data import colourful

    for i in range(3):
        Image.fromarray(colourful(i)).save(tmp_path / f"{i}.png")
    groups = [f.group for f in sources.list_source_files(tmp_path)[0]]
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


@pytest.mark.slow
def test_importing_the_kit_does_not_import_kaggle() -> None:
    code = "import sys, utils.data.prepare, utils.data.sources, utils.pipeline; print('kaggle' in sys.modules)"
    out = run_python("-c", code, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# --- the decode pool -----------------------------------------------------------------------------

TIMEOUT_S = RunParams.decode_timeout_s
SETTINGS = decoding.DecodeSettings(size=32, resize="crop", min_colorfulness=10.0, max_pixels=50_000_000)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> list[sources.SourceFile]:
    """Good frames of several sizes, every bad kind and odd-but-good kind, in a fixed mixed order."""
    from PIL import Image

    from tests.messy_data import colourful, write_bad_and_odd_files

    folder = tmp_path_factory.mktemp("images")
    write_bad_and_odd_files(folder / "odd")
    for i in range(18):
        Image.fromarray(colourful(i, size=64 + 16 * (i % 4))).save(folder / f"frame_{i:02d}.png")
    files, _ = sources.list_source_files(folder)
    return [files[i] for i in np.random.default_rng(0).permutation(len(files))]


def _same_candidates(a: list[sources.Candidate], b: list[sources.Candidate]) -> bool:
    fields = [(c.source, c.reason, c.sha1, c.width, c.height) for c in a]
    return fields == [(c.source, c.reason, c.sha1, c.width, c.height) for c in b] and all(
        (x.rgb is None and y.rgb is None) or np.array_equal(x.rgb, y.rgb) for x, y in zip(a, b)
    )


@pytest.mark.slow  # the decode pool's worker processes
def test_pool_gives_the_in_process_candidates_in_file_order(image_files: list[sources.SourceFile]) -> None:
    with decoding.DecodePool(1, TIMEOUT_S) as pool:
        in_process = list(pool.decode(image_files, SETTINGS))
    with decoding.DecodePool(2, TIMEOUT_S) as pool:
        pooled = list(pool.decode(image_files, SETTINGS))
    assert [c.source for c in pooled] == [f.path for f in image_files]
    assert {c.reason is None for c in pooled} == {True, False}  # accepted and rejected files both
    assert _same_candidates(pooled, in_process)


def _counting_submissions(pool: decoding.DecodePool) -> list[int]:
    """Files per submitted task, recorded as the pool's executor receives them."""
    executor, submitted = pool.start(), []
    submit = executor.submit

    def counted(fn, files, *args):
        submitted.append(len(files))
        return submit(fn, files, *args)

    executor.submit = counted
    return submitted


@pytest.mark.slow  # the decode pool's worker processes
def test_decoding_runs_ahead_only_by_what_is_still_needed(image_files: list[sources.SourceFile]) -> None:
    with decoding.DecodePool(2, TIMEOUT_S) as pool:
        submitted = _counting_submissions(pool)
        stream = pool.decode(image_files, SETTINGS, still_needed=lambda: 5)
        first = next(stream)
        assert sum(submitted) <= 5  # not the whole list, nor a window of full chunks
        rest = list(stream)  # more is submitted as candidates are taken: the stream never stalls
        assert [c.source for c in [first, *rest]] == [f.path for f in image_files]

        submitted.clear()
        stream = pool.decode(image_files * 8, SETTINGS)
        next(stream)
        window = pool.workers * decoding.IN_FLIGHT_PER_WORKER
        assert len(submitted) <= window and sum(submitted) < len(image_files) * 8
        stream.close()


def test_chunks_are_sized_to_the_job() -> None:
    per_worker = decoding.TASKS_PER_WORKER
    assert decoding.decode_chunk_size(10, 2) == 1  # a small job: one file per task, every worker busy
    assert decoding.decode_chunk_size(2 * per_worker * 5, 2) == 5  # about TASKS_PER_WORKER tasks per worker
    assert decoding.decode_chunk_size(16 * per_worker * 5, 16) == 5
    assert decoding.decode_chunk_size(2 * per_worker * 5, 16) == 1  # more workers, smaller tasks
    assert decoding.decode_chunk_size(100_000, 2) == decoding.MAX_CHUNK_FILES  # memory in flight stays bounded
    assert decoding.decode_chunk_size(0, 4) == 1


def _worker_state() -> tuple[int, bool, bool]:
    """Run inside a decoding worker: torch threads, whether this process imported the decoder itself, SIGINT."""
    return (
        torch.get_num_threads(),
        decoding.IMPORTED_IN_PID == os.getpid(),
        signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
    )


@pytest.mark.slow  # the decode pool's worker processes
def test_workers_run_one_torch_thread_and_do_not_import_torch_themselves() -> None:
    with decoding.DecodePool(2, TIMEOUT_S) as pool:
        threads, imported_itself, ignores_interrupt = pool.start().submit(_worker_state).result()
    assert threads == 1
    assert not imported_itself  # forked from the forkserver that imported utils.data.sources (and torch) once
    assert ignores_interrupt  # Ctrl-C is the parent's to handle: it shuts the pool down


def test_in_process_decoding_uses_one_torch_thread_while_the_pool_is_open() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with decoding.DecodePool(1, TIMEOUT_S):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_decode_timeout_must_be_positive_and_finite(value: str) -> None:
    with pytest.raises(errors.ParameterError, match="parameter 'decode_timeout_s'"):
        config.resolve_params("demo", {"decode_timeout_s": value})


def test_a_dead_decoders_reason_names_its_signal_or_exit_code() -> None:
    assert decoding.crash_reason(-9) == "decoder crashed: killed by signal 9 (SIGKILL)"
    assert decoding.crash_reason(-11) == "decoder crashed: killed by signal 11 (SIGSEGV)"
    assert "exited with code 1" in decoding.crash_reason(1)
    assert "unknown exit code" in decoding.crash_reason(None)


@pytest.mark.parametrize("fault", ["kill:", "hang", "slow:soon", "explode:a.png"])
def test_the_test_only_decoder_fault_is_checked(fault: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(decoding.DECODE_FAULT_ENV, fault)
    with pytest.raises(ValueError, match=decoding.DECODE_FAULT_ENV):
        decoding.DecodePool(2, TIMEOUT_S)
