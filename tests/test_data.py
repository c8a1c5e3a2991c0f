from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from PIL import Image

from tests.conftest import TINY, time_limit
from tests.helpers import interrupted_journal, nth_record
from tests.messy_data import BAD_FILES, write_kaggle_like_dataset
from utils.core import config, errors
from utils.core.domains import DEMO_DOMAINS
from utils.core.parameters import RunParams
from utils.data import datasets, decoding, demo, prepare, shard_journal, shards


def test_prepare_writes_shards_and_manifest(prepared_run: Path) -> None:
    manifest = shards.load_manifest(prepared_run)
    assert list(manifest.columns) == shards.MANIFEST_COLUMNS
    for domain in DEMO_DOMAINS:
        for split, count in (("train", TINY["train_per_domain"]), ("test", TINY["test_per_domain"])):
            shard = shards.load_shard(prepared_run, domain, split)
            assert shard.shape == (count, 32, 32, 3) and shard.dtype == np.uint8
            assert isinstance(shard, np.memmap)
            rows = manifest[(manifest.domain == domain) & (manifest.split == split)].sort_values("index")
            assert [hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest() for img in shard] == list(rows.sha1)
    leftovers = [p.name for p in (prepared_run / "data").iterdir() if p.name.startswith(".") or ".tmp" in p.name]
    assert not leftovers


def copy_of_data(prepared_run: Path, run_dir: Path) -> Path:
    """A run directory holding a copy of ``prepared_run``'s data, to damage."""
    (run_dir / "data").mkdir(parents=True)
    for path in (prepared_run / "data").iterdir():
        (run_dir / "data" / path.name).write_bytes(path.read_bytes())
    return run_dir


def assert_names_the_shard_and_how_to_prepare_again(message: str, run_dir: Path, shard: Path) -> None:
    assert message.startswith(f"{shard}: damaged shard"), message
    assert f"delete {run_dir / 'data' / 'prepared.json'}" in message and "python -m utils.pipeline" in message


def test_a_truncated_shard_is_named_before_it_is_opened(tmp_path: Path, prepared_run: Path) -> None:
    run_dir = copy_of_data(prepared_run, tmp_path / "run")
    shard = shards.shard_path(run_dir, "movie", "train")
    os.truncate(shard, shard.stat().st_size - 1000)
    with pytest.raises(errors.UnreadableFileError) as caught:
        shards.load_shard(run_dir, "movie", "train")
    assert_names_the_shard_and_how_to_prepare_again(str(caught.value), run_dir, shard)
    assert "cut short" in str(caught.value)
    assert shards.load_shard(run_dir, "cartoon", "train").shape == (TINY["train_per_domain"], 32, 32, 3)


def test_a_shard_that_disagrees_with_the_manifest_or_prepared_json_is_named(tmp_path: Path, prepared_run: Path) -> None:
    run_dir = copy_of_data(prepared_run, tmp_path / "run")
    shard = shards.shard_path(run_dir, "movie", "test")
    with shard.open("ab") as file:  # bytes beyond the images the header declares
        file.write(b"\0" * 10)
    with pytest.raises(errors.UnreadableFileError, match="more than written") as caught:
        shards.load_shard(run_dir, "movie", "test")
    assert_names_the_shard_and_how_to_prepare_again(str(caught.value), run_dir, shard)

    shard.write_bytes(shards.shard_path(run_dir, "movie", "train").read_bytes())  # a whole shard, of other images
    with pytest.raises(errors.UnreadableFileError, match=r"header says \(24, 32, 32, 3\) uint8, .* \(8, 32, 32, 3\)"):
        shards.load_shard(run_dir, "movie", "test")
    shard.write_bytes(b"not an array at all")
    with pytest.raises(errors.UnreadableFileError, match="no readable .npy header") as caught:
        shards.load_shard(run_dir, "movie", "test")
    assert_names_the_shard_and_how_to_prepare_again(str(caught.value), run_dir, shard)


def test_prepared_json_is_checked_against_the_shards_and_named_when_damaged(tmp_path: Path, prepared_run: Path) -> None:
    run_dir = copy_of_data(prepared_run, tmp_path / "run")
    done = run_dir / "data" / "prepared.json"
    record = json.loads(done.read_text())
    assert shards.load_shard(run_dir, "movie", "test").shape == (TINY["test_per_domain"], 32, 32, 3)
    done.write_text(json.dumps({**record, "fingerprint": {**record["fingerprint"], "image_size": 64}}))  # 32 px shards
    with pytest.raises(errors.UnreadableFileError, match=r"\(8, 64, 64, 3\) uint8"):
        shards.load_shard(run_dir, "movie", "test")
    done.write_text('{"source": "demo", "image_')
    with pytest.raises(errors.UnreadableFileError, match=f"^{done}: damaged, not JSON"):
        shards.load_shard(run_dir, "movie", "test")
    done.unlink()
    with pytest.raises(errors.UnreadableFileError, match="prepared.json is missing: the prepare stage did not finish"):
        shards.load_shard(run_dir, "movie", "test")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda text: b"\x89PNG\r\n\x1a\n\xff\xfe" + text.encode()[:50], "not a readable CSV"),
        (lambda text: text[: len(text) // 2].rsplit(",", 3)[0].encode(), "cut short (its last row ends mid-way)"),
        (lambda text: text.replace("\nmovie,test,3,", "\nmovie,test,,", 1).encode(), "index missing or unreadable"),
        (lambda text: text.replace("domain,split,index", "dom,split,idx", 1).encode(), "domain and index missing"),
        (lambda text: b"", "not a readable CSV"),
    ],
    ids=["binary", "cut-short", "no-index", "no-columns", "empty"],
)
def test_a_damaged_manifest_is_named(tmp_path: Path, prepared_run: Path, damage, expected: str) -> None:
    run_dir = copy_of_data(prepared_run, tmp_path / "run")
    manifest = run_dir / "data" / "manifest.csv"
    manifest.write_bytes(damage(manifest.read_text()))
    with pytest.raises(errors.UnreadableFileError, match=f"^{manifest}: damaged, ") as caught:
        shards.load_manifest(run_dir)
    assert expected in str(caught.value) and "prepared.json" in str(caught.value)


@pytest.fixture(scope="module")
def kaggle_mount(tmp_path_factory) -> Path:
    """Two datasets under a fake /kaggle/input, in the two layouts Kaggle has used."""
    root = tmp_path_factory.mktemp("kaggle") / "input"
    write_kaggle_like_dataset(root / "datasets" / "someone" / "cartoon-frames", seed=1)
    write_kaggle_like_dataset(root / "movie-stills", seed=2)
    return root


def _kaggle_params(mount: Path, **extra) -> RunParams:
    overrides = {**TINY, "source": "kaggle", "cartoon_dataset": "someone/cartoon-frames",
                 "movie_dataset": "other/movie-stills", "kaggle_input_root": str(mount), "prepare_workers": 1, **extra}  # fmt: skip
    return config.resolve_params("demo", overrides)


@pytest.fixture(scope="module")
def kaggle_run(tmp_path_factory, kaggle_mount: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("kaggle-run") / "run"
    prepare.prepare_data(_kaggle_params(kaggle_mount), run_dir)
    return run_dir


def test_messy_dataset_counts_and_reasons(kaggle_run: Path) -> None:
    manifest = shards.load_manifest(kaggle_run)
    counts = manifest.groupby(["domain", "split"]).size()
    for domain in DEMO_DOMAINS:
        assert counts[(domain, "train")] == TINY["train_per_domain"]
        assert counts[(domain, "test")] == TINY["test_per_domain"]
    rejected = pd.read_csv(kaggle_run / "data" / "rejected.csv")
    seen = dict(zip(rejected.source.map(lambda s: Path(s).name) + "@" + rejected.domain, rejected.reason))
    # every bad kind that the seeded sampling reached is rejected for the right reason
    for key, reason in seen.items():
        name = key.split("@")[0]
        if name in BAD_FILES:
            assert reason.split(":")[0] == BAD_FILES[name], (key, reason)
        elif name.startswith("copy_of_") or name == "frame_001.png":  # three files, one image: one of them kept
            assert reason.startswith("duplicate"), (key, reason)
        else:
            pytest.fail(f"{key} rejected: {reason}")
    assert not manifest.source.str.contains("/.hidden/|DS_Store|README|/loop/", regex=True).any()


def test_all_bad_kinds_are_recorded_when_every_file_is_read(tmp_path: Path, kaggle_mount: Path) -> None:
    """Ask for more images than exist: every file is decided, so every bad kind must be in rejected.csv."""
    prepare.prepare_data(_kaggle_params(kaggle_mount, train_per_domain=400, test_per_domain=100), tmp_path)
    rejected = pd.read_csv(tmp_path / "data" / "rejected.csv")
    for domain in DEMO_DOMAINS:
        mine = rejected[rejected.domain == domain]
        reasons = dict(zip(mine.source.map(lambda s: Path(s).name), mine.reason.str.split(":").str[0]))
        for name, reason in BAD_FILES.items():
            assert reasons.get(name) == reason, (domain, name, reasons.get(name))
        assert (mine.reason.str.startswith("duplicate")).sum() == 2  # three files, the same pixels: one kept
    counts = prepare.rejection_counts(tmp_path)
    assert set(counts.reason) == set(BAD_FILES.values()) | {"duplicate"}


def assert_no_group_or_pixels_in_both_splits(manifest: pd.DataFrame) -> None:
    for domain in DEMO_DOMAINS:
        rows = manifest[manifest.domain == domain]
        train, test = rows[rows.split == "train"], rows[rows.split == "test"]
        assert not set(train.group) & set(test.group), domain
        assert not set(train.sha1) & set(test.sha1), domain
        assert rows.sha1.is_unique, domain


def test_no_group_or_pixels_in_both_train_and_test(kaggle_run: Path) -> None:
    assert_no_group_or_pixels_in_both_splits(shards.load_manifest(kaggle_run))


def test_demo_movie_splits_by_photograph(prepared_run: Path) -> None:
    """No photograph gives crops to both splits, and every declared photograph gives crops to its own."""
    manifest = shards.load_manifest(prepared_run)
    assert_no_group_or_pixels_in_both_splits(manifest)
    movie = manifest[manifest.domain == "movie"]
    test_photos = set(demo.DEMO_MOVIE_TEST_PHOTOS)
    assert set(movie[movie.split == "test"].folder_group) == test_photos
    assert set(movie[movie.split == "train"].folder_group) == set(demo.DEMO_PHOTOS) - test_photos
    joined = movie[movie.group != movie.folder_group]
    assert all(group.startswith(min(photo, group)) for photo, group in zip(joined.folder_group, joined.group))


def _strict_demo_params() -> RunParams:
    # at 32 px a few crops of chelsea, astronaut and the motorcycle score below 35: near-gray for the filter
    return config.resolve_params("demo", {**TINY, "min_colorfulness": 35})


@pytest.fixture(scope="module")
def strict_demo_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("strict-demo") / "run"
    prepare.prepare_data(_strict_demo_params(), run_dir)
    return run_dir


def test_demo_crops_pass_the_near_grayscale_filter_and_still_fill_the_splits(strict_demo_run: Path) -> None:
    counts = shards.load_manifest(strict_demo_run).groupby(["domain", "split"]).size()
    for domain in DEMO_DOMAINS:
        assert counts[(domain, "train")] == TINY["train_per_domain"]
        assert counts[(domain, "test")] == TINY["test_per_domain"]
    rejected = pd.read_csv(strict_demo_run / "data" / "rejected.csv")
    assert len(rejected) >= 3 and set(rejected.domain) == {"movie"}
    assert rejected.reason.str.startswith("near-grayscale: colorfulness").all()
    assert rejected.source.str.match(r"scikit-image:\w+\[\d+:\d+,\d+:\d+\]$").all()  # which crop of which photo


def test_interrupted_demo_prepare_resumes_to_the_same_shards(
    tmp_path: Path, strict_demo_run: Path, monkeypatch, capsys
) -> None:
    """Cut inside the movie train split, between its rejected crops: the resumed stream starts where it left off."""
    monkeypatch.setattr(shard_journal, "JOURNAL_COMMIT_EVERY", 4)
    # 32 cartoon and 9 movie test decisions, then 14 of the movie train split's
    with interrupted_journal(monkeypatch, nth_record(55)), pytest.raises(KeyboardInterrupt):
        prepare.prepare_data(_strict_demo_params(), tmp_path)
    journal = [json.loads(line) for line in (tmp_path / "data" / ".movie_journal.jsonl").read_text().splitlines()[1:]]
    assert any("reason" in e for e in journal if e["split"] == "train")  # a rejected crop before the cut
    resumed = prepare.prepare_data(_strict_demo_params(), tmp_path)
    assert "prepare movie: resuming after 20 images" in capsys.readouterr().out
    pd.testing.assert_frame_equal(resumed, shards.load_manifest(strict_demo_run))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "data" / "rejected.csv"),
                                  pd.read_csv(strict_demo_run / "data" / "rejected.csv"))  # fmt: skip
    for domain in DEMO_DOMAINS:
        for split in ("train", "test"):
            np.testing.assert_array_equal(shards.load_shard(tmp_path, domain, split),
                                          shards.load_shard(strict_demo_run, domain, split))  # fmt: skip


def decisions(journal: shard_journal.ShardJournal, entry: dict) -> bool:
    """The accept pass's records (a split's decision), not the hash pass's."""
    return "split" in entry


class RecordedExecutor(ProcessPoolExecutor):
    """A ProcessPoolExecutor that records its creation and its worker processes at shutdown."""

    created: list[RecordedExecutor] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.created.append(self)
        self.workers_at_shutdown: list | None = None

    def shutdown(self, *args, **kwargs) -> None:
        if self.workers_at_shutdown is None:
            self.workers_at_shutdown = list((self._processes or {}).values())
        super().shutdown(*args, **kwargs)


@pytest.fixture
def recorded_executors(monkeypatch) -> list[RecordedExecutor]:
    created: list[RecordedExecutor] = []
    monkeypatch.setattr(RecordedExecutor, "created", created)
    monkeypatch.setattr(decoding, "ProcessPoolExecutor", RecordedExecutor)
    return created


@pytest.mark.slow
def test_prepare_is_deterministic_and_parallel_gives_the_same_result(
    tmp_path: Path, kaggle_mount: Path, kaggle_run: Path, recorded_executors: list[RecordedExecutor]
) -> None:
    parallel = prepare.prepare_data(_kaggle_params(kaggle_mount, prepare_workers=2), tmp_path / "parallel")
    assert len(recorded_executors) == 1  # decoding did run in worker processes
    pd.testing.assert_frame_equal(parallel, shards.load_manifest(kaggle_run))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "parallel" / "data" / "rejected.csv"),
                                  pd.read_csv(kaggle_run / "data" / "rejected.csv"))  # fmt: skip
    for domain in DEMO_DOMAINS:
        for split in ("train", "test"):
            np.testing.assert_array_equal(shards.load_shard(tmp_path / "parallel", domain, split),
                                          shards.load_shard(kaggle_run, domain, split))  # fmt: skip


@pytest.mark.slow
def test_one_decode_pool_serves_the_whole_prepare_and_is_shut_down(
    tmp_path: Path, kaggle_mount: Path, recorded_executors: list[RecordedExecutor], monkeypatch
) -> None:
    prepare.prepare_data(_kaggle_params(kaggle_mount, prepare_workers=2), tmp_path / "done")
    assert len(recorded_executors) == 1  # two domains x two splits, one pool
    assert recorded_executors[0].workers_at_shutdown, "the pool was not shut down"
    assert not any(p.is_alive() for p in recorded_executors[0].workers_at_shutdown)

    with interrupted_journal(monkeypatch, nth_record(20)), pytest.raises(KeyboardInterrupt):
        prepare.prepare_data(_kaggle_params(kaggle_mount, prepare_workers=2), tmp_path / "interrupted")
    assert len(recorded_executors) == 2
    assert recorded_executors[1].workers_at_shutdown, "the pool was not shut down after the interruption"
    assert not any(p.is_alive() for p in recorded_executors[1].workers_at_shutdown)


def test_interrupted_prepare_resumes_to_the_same_result(
    tmp_path: Path, kaggle_mount: Path, monkeypatch, capsys
) -> None:
    params = _kaggle_params(kaggle_mount, train_per_domain=30, test_per_domain=8, min_colorfulness=0)
    reference = prepare.prepare_data(params, tmp_path / "reference")
    monkeypatch.setattr(shard_journal, "JOURNAL_COMMIT_EVERY", 8)
    # the 70th of the accept pass's decisions (not the hash pass's): in the second domain, a few journal commits in
    with interrupted_journal(monkeypatch, nth_record(70, decisions)), pytest.raises(KeyboardInterrupt):
        prepare.prepare_data(params, tmp_path / "run")
    assert not (tmp_path / "run" / "data" / "manifest.csv").exists()
    journal = tmp_path / "run" / "data" / ".movie_journal.jsonl"
    with journal.open("a") as log:
        log.write('{"split": "test", "sour')  # a line cut short by the interruption
    resumed = prepare.prepare_data(params, tmp_path / "run")
    out = capsys.readouterr().out
    assert "prepare movie: resuming after" in out and "prepare cartoon: resuming" not in out
    pd.testing.assert_frame_equal(resumed, reference)
    np.testing.assert_array_equal(shards.load_shard(tmp_path / "run", "movie", "train"),
                                  shards.load_shard(tmp_path / "reference", "movie", "train"))  # fmt: skip
    prepare.prepare_data(params, tmp_path / "run")
    assert "already prepared" in capsys.readouterr().out


@pytest.mark.slow
def test_prepare_interrupted_in_the_hash_pass_resumes_to_the_same_result(
    tmp_path: Path, kaggle_mount: Path, kaggle_run: Path, recorded_executors: list, monkeypatch, capsys
) -> None:
    """Cut in the movie domain's hash pass (decoding processes at work), a line cut short: the same data."""
    monkeypatch.setattr(shard_journal, "JOURNAL_COMMIT_EVERY", 4)
    params = _kaggle_params(kaggle_mount, prepare_workers=2)
    in_movie_hashes = nth_record(31, lambda journal, entry: journal.log_path.name == ".movie_hashes_journal.jsonl")
    with time_limit(60):
        with interrupted_journal(monkeypatch, in_movie_hashes), pytest.raises(KeyboardInterrupt):
            prepare.prepare_data(params, tmp_path)
        with (tmp_path / "data" / ".movie_hashes_journal.jsonl").open("a") as log:
            log.write('{"hash": "0f')  # a line cut short by the interruption
        prepare.prepare_data(params, tmp_path)
    out = capsys.readouterr().out
    assert "prepare movie: hash pass resuming after 28 files" in out and "prepare cartoon: resuming" not in out
    assert not any(p.is_alive() for p in recorded_executors[0].workers_at_shutdown)
    assert_same_data(tmp_path, kaggle_run, {})


def test_no_file_is_decoded_in_full_twice(tmp_path: Path, kaggle_mount: Path, kaggle_run: Path, monkeypatch) -> None:
    """The hash pass decodes JPEGs at reduced scale and keeps what it decoded in full for the accept pass."""
    calls: list[tuple[str, int]] = []
    load_rgb = decoding.load_rgb

    def recorded(path, *args, **kwargs):
        calls.append((str(path), kwargs.get("draft_side", 0)))
        return load_rgb(path, *args, **kwargs)

    monkeypatch.setattr(decoding, "load_rgb", recorded)  # prepare_workers 1: decoding runs in this process
    prepare.prepare_data(_kaggle_params(kaggle_mount), tmp_path)
    full = [path for path, draft in calls if not draft]
    reduced = {path for path, draft in calls if draft}
    assert len(full) == len(set(full)), [path for path in set(full) if full.count(path) > 1]
    assert {Path(p).suffix for p in reduced} == {".jpg"} and set(full) & reduced  # JPEGs hashed, then accepted
    assert any(path.endswith(".png") for path in full)  # decoded in full by the hash pass only
    assert_same_data(tmp_path, kaggle_run, {})


def assert_same_data(run_dir: Path, reference: Path, reasons: dict[str, str]) -> None:
    """The same manifest and shards as ``reference``, and the same rejections but for ``reasons``: the reason
    here of each file whose path ends with the key."""
    pd.testing.assert_frame_equal(shards.load_manifest(run_dir), shards.load_manifest(reference))
    for domain in DEMO_DOMAINS:
        for split in ("train", "test"):
            np.testing.assert_array_equal(
                shards.load_shard(run_dir, domain, split), shards.load_shard(reference, domain, split)
            )
    expected = pd.read_csv(reference / "data" / "rejected.csv")
    for path_end, reason in reasons.items():
        changed = expected.source.str.endswith(path_end)
        assert changed.any(), f"{path_end} is not among the reference's rejected files"
        expected.loc[changed, "reason"] = reason
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "data" / "rejected.csv"), expected)


@pytest.mark.slow
def test_a_file_that_kills_its_decoder_is_rejected_and_costs_no_other_file(
    tmp_path: Path, kaggle_mount: Path, kaggle_run: Path, recorded_executors: list, monkeypatch, capsys
) -> None:
    """In both domains, notes.jpg (rejected as not-an-image in the reference) kills its worker, and again when
    decoded alone; the prepare is interrupted in the movie domain and resumed, the poison file still there."""
    monkeypatch.setenv(decoding.DECODE_FAULT_ENV, "kill:notes.jpg")
    monkeypatch.setattr(shard_journal, "JOURNAL_COMMIT_EVERY", 4)
    params = _kaggle_params(kaggle_mount, prepare_workers=2)
    with time_limit(60):  # the 60th accept decision: the movie domain, several commits in
        with interrupted_journal(monkeypatch, nth_record(60, decisions)), pytest.raises(KeyboardInterrupt):
            prepare.prepare_data(params, tmp_path)
        prepare.prepare_data(params, tmp_path)
    out = capsys.readouterr().out
    assert "prepare movie: resuming after" in out and "prepare: a decoding process died" in out
    assert len(recorded_executors) >= 3  # a fresh pool after each death, and one for the resumed run
    crashed = "decoder crashed: killed by signal 9 (SIGKILL)"
    assert_same_data(tmp_path, kaggle_run, {"cartoon-frames/group_misc/notes.jpg": crashed,
                                            "movie-stills/group_misc/notes.jpg": crashed})  # fmt: skip


def decoding_workers() -> list[psutil.Process]:
    """This process's decoding workers: the children of its forkserver."""
    workers = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "forkserver" in " ".join(process.parent().cmdline()):
                workers.append(process)
        except psutil.Error:  # ended meanwhile
            pass
    return workers


@pytest.mark.slow
def test_a_worker_killed_from_outside_costs_no_file(
    tmp_path: Path, kaggle_mount: Path, kaggle_run: Path, recorded_executors: list, monkeypatch
) -> None:
    monkeypatch.setenv(decoding.DECODE_FAULT_ENV, "slow:0.05")  # each file takes a while: the kill lands mid-decode
    killed: list[int] = []

    def kill_a_worker() -> None:  # as the out-of-memory killer would, once decoding is under way
        deadline = time.monotonic() + 30
        while not killed and time.monotonic() < deadline:
            if workers := decoding_workers():
                time.sleep(0.5)
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    with time_limit(60):
        prepare.prepare_data(_kaggle_params(kaggle_mount, prepare_workers=2), tmp_path)
    killer.join()
    assert killed and len(recorded_executors) == 2  # the pool was replaced once
    assert_same_data(tmp_path, kaggle_run, {})


@pytest.mark.slow
def test_a_file_that_hangs_its_decoder_is_rejected_after_the_timeout(
    tmp_path: Path, kaggle_mount: Path, kaggle_run: Path, monkeypatch
) -> None:
    monkeypatch.setenv(decoding.DECODE_FAULT_ENV, "hang:movie-stills/group_misc/notes.jpg")
    params = _kaggle_params(kaggle_mount, prepare_workers=2, decode_timeout_s=2)
    with time_limit(60):
        prepare.prepare_data(params, tmp_path)
    timed_out = "decoder timed out after 2 s (decode_timeout_s)"
    assert_same_data(tmp_path, kaggle_run, {"movie-stills/group_misc/notes.jpg": timed_out})


def test_stretch_and_crop_give_different_shards(tmp_path: Path, kaggle_mount: Path, kaggle_run: Path) -> None:
    prepare.prepare_data(_kaggle_params(kaggle_mount, resize="stretch"), tmp_path)
    assert not np.array_equal(
        shards.load_shard(tmp_path, "cartoon", "test"), shards.load_shard(kaggle_run, "cartoon", "test")
    )
    pd.testing.assert_series_equal(shards.load_manifest(tmp_path).sha1, shards.load_manifest(kaggle_run).sha1)


def test_too_few_images_is_a_clear_error(tmp_path: Path) -> None:
    from tests.messy_data import colourful

    for domain in DEMO_DOMAINS:
        (tmp_path / domain).mkdir()
        Image.fromarray(colourful(0)).save(tmp_path / domain / "only.png")
    params = config.resolve_params("demo", {**TINY, "source": "folder", "cartoon_dir": str(tmp_path / "cartoon"),
                                            "movie_dir": str(tmp_path / "movie"), "prepare_workers": 1})  # fmt: skip
    with pytest.raises(ValueError, match="domain 'cartoon': only 0 usable training and 1 test images"):
        prepare.prepare_data(params, tmp_path / "run")


def test_a_link_out_of_a_source_folder_is_rejected_with_its_reason(tmp_path: Path) -> None:
    from tests.messy_data import colourful

    (tmp_path / "private").mkdir()
    Image.fromarray(colourful(9)).save(tmp_path / "private" / "secret.png")
    for domain in DEMO_DOMAINS:
        for i in range(6):
            (tmp_path / domain / f"show_{i}").mkdir(parents=True)
            Image.fromarray(colourful(i)).save(tmp_path / domain / f"show_{i}" / "frame.png")
        (tmp_path / domain / "up").symlink_to(tmp_path / "private", target_is_directory=True)
    params = config.resolve_params("demo", {**TINY, "source": "folder", "cartoon_dir": str(tmp_path / "cartoon"),
                                            "movie_dir": str(tmp_path / "movie"), "train_per_domain": 4,
                                            "test_per_domain": 2, "prepare_workers": 1})  # fmt: skip
    manifest = prepare.prepare_data(params, tmp_path / "run")
    assert not manifest["source"].str.contains("secret").any()
    rejected = pd.read_csv(tmp_path / "run" / "data" / "rejected.csv")
    outside = rejected[rejected["reason"].str.startswith("outside-folder")]
    assert sorted(outside["domain"]) == sorted(DEMO_DOMAINS)
    assert set(outside["source"]) == {str(tmp_path / d / "up") for d in DEMO_DOMAINS}
    assert all(f"links to {tmp_path / 'private'}" in reason for reason in outside["reason"])


def test_mixed_takes_equal_halves(prepared_run: Path, tiny_params: RunParams) -> None:
    cartoon_train, cartoon_val = datasets.training_sets(prepared_run, "cartoon", tiny_params)
    mixed_train, mixed_val = datasets.training_sets(prepared_run, "mixed", tiny_params)
    assert len(cartoon_train) + len(cartoon_val) == TINY["train_per_domain"]
    assert set(cartoon_train.indices).isdisjoint(cartoon_val.indices)
    halves = [len(d) for d in mixed_train.datasets]
    assert halves[0] == halves[1] == len(cartoon_train) // 2
    assert [str(d.images.filename) for d in mixed_train.datasets] == [
        str(shards.shard_path(prepared_run, d, "train")) for d in DEMO_DOMAINS
    ]
    assert len(mixed_val) >= 2
    assert mixed_train[0].shape == (32, 32, 3)
