"""Every fault names its file: the command lines answer a damaged run.json, shard or checkpoint, or a run
directory they may not write, with one line naming it (``error: ...``, exit code 2) and no traceback."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY
from tests.helpers import KIT_ROOT, SAME_THREADS, interrupted_journal, nth_record, open_folder, write_protected
from utils import colorize, pipeline
from utils.core import config, errors
from utils.core.config import model_dir
from utils.core.errors import cli_error_line
from utils.core.run_dir import AtomicWriteError, atomic_write
from utils.data import prepare, shards
from utils.train import training

OVERRIDES = [arg for name, value in TINY.items() for arg in ("-p", f"{name}={value}")]


def copy_of_data(prepared_run: Path, run_dir: Path) -> Path:
    """A run directory holding a copy of ``prepared_run``'s data (readable by any user), to damage."""
    (run_dir / "data").mkdir(parents=True)
    for path in (prepared_run / "data").iterdir():
        (run_dir / "data" / path.name).write_bytes(path.read_bytes())
    return run_dir


def train_cli(run_dir: Path) -> int:
    return training.main(["--run-dir", str(run_dir), "--profile", "demo", "--domain", "movie", *OVERRIDES])


def pipeline_cli(run_dir: Path) -> int:
    return pipeline.main(["--run-dir", str(run_dir), "--profile", "demo", "--no-progress", *OVERRIDES])


def the_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    printed = capsys.readouterr().err
    assert "Traceback" not in printed, printed
    lines = printed.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), printed
    return lines[0]


def test_a_damaged_run_json_is_named_and_kept(tmp_path: Path, capsys) -> None:
    record = tmp_path / "run" / "run.json"
    record.parent.mkdir()
    record.write_text('{"profile": "demo", "stages": {"prepare": ')
    assert pipeline_cli(record.parent) == 2
    assert the_error_line(capsys).startswith(f"error: {record}: damaged, not JSON")
    assert record.read_text() == '{"profile": "demo", "stages": {"prepare": '  # nothing written over it


def test_a_truncated_shard_is_named_by_the_train_command(tmp_path: Path, prepared_run: Path, capsys) -> None:
    run_dir = copy_of_data(prepared_run, tmp_path / "run")
    shard = shards.shard_path(run_dir, "movie", "train")
    shard.write_bytes(shard.read_bytes()[:-3000])
    assert train_cli(run_dir) == 2
    line = the_error_line(capsys)
    assert line.startswith(f"error: {shard}: damaged shard") and "prepared.json" in line


def test_a_garbage_checkpoint_is_named_without_torchs_advice(tmp_path: Path, prepared_run: Path, capsys) -> None:
    run_dir = copy_of_data(prepared_run, tmp_path / "run")
    last = model_dir(run_dir, "movie", 0) / "checkpoint_last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"\x80\x04garbage that no unpickler takes")
    assert train_cli(run_dir) == 2
    line = the_error_line(capsys)
    assert line.startswith(f"error: {last}: damaged, or not a checkpoint of this kit")
    assert "train the model again" in line and "weights_only" not in line


def test_a_read_only_run_directory_is_named(prepared_run: Path, capsys) -> None:
    with open_folder() as folder:
        run_dir = copy_of_data(prepared_run, folder / "run")
        with write_protected(run_dir):
            codes = {"train": train_cli(run_dir), "pipeline": pipeline_cli(run_dir)}
        printed = capsys.readouterr().err
    assert codes == {"train": 2, "pipeline": 2}, printed
    assert "Traceback" not in printed
    lines = printed.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"error: {run_dir}: cannot write ") for line in lines), printed


def test_a_full_disk_is_one_line_naming_the_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.csv"
    with pytest.raises(AtomicWriteError) as caught, atomic_write(target) as temporary:
        temporary.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    line = cli_error_line(caught.value, (errors.ParameterError, errors.UnreadableFileError))
    assert line is not None and line.startswith(f"error: {target}: could not be written (OSError: "), line
    assert "No space left on device" in line and "\n" not in line
    assert cli_error_line(RuntimeError("a bug"), (errors.ParameterError,)) is None  # a bug keeps its traceback


@pytest.mark.parametrize("megapixels", ["inf", "nan", "0", "-1"])
def test_colorize_refuses_a_pixel_budget_that_is_not_a_positive_number(megapixels: str, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        colorize.main(["--checkpoint", "best.pt", "--input", "in", "--output", "out", "--batch-megapixels", megapixels])
    assert caught.value.code == 2
    assert f"--batch-megapixels {float(megapixels)}: must be a positive, finite number" in capsys.readouterr().err


def test_the_debug_switch_adds_the_traceback_before_the_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    record = tmp_path / "run" / "run.json"
    record.parent.mkdir()
    record.write_text("{")
    assert pipeline_cli(record.parent) == 2
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv(errors.DEBUG_ENV, "1")
    assert pipeline_cli(record.parent) == 2
    printed = capsys.readouterr().err.strip().splitlines()
    assert printed[0].startswith("Traceback") and printed[-1].startswith(f"error: {record}: damaged, not JSON")


PREPARE = """
import json, sys
from utils.core import config, errors
from utils.data import prepare
def work():
    prepare.prepare_data(config.resolve_params("demo", json.loads(sys.argv[2])), sys.argv[1])
sys.exit(errors.run_command(work))
"""


def under_file_size_limit(limit: int, *args: str) -> subprocess.CompletedProcess:
    """``python ARGS`` from the kit's root, whose files may grow to ``limit`` bytes at most (past it a write fails
    with EFBIG: Python ignores SIGXFSZ)."""

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, *args], cwd=KIT_ROOT, env={**os.environ, **SAME_THREADS},
                          preexec_fn=limited, capture_output=True, text=True, timeout=120)  # fmt: skip


def the_one_error_line(done: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a command that exited 2 (its progress bars aside), with no traceback."""
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.startswith("error")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_a_pool_past_the_file_size_limit_is_named_and_removed_and_an_earlier_journal_kept(
    tmp_path: Path, monkeypatch
) -> None:
    run_dir = tmp_path / "run"
    other_seed = config.resolve_params("demo", {**TINY, "seed": 1})
    with interrupted_journal(monkeypatch, nth_record(5)), pytest.raises(KeyboardInterrupt):
        prepare.prepare_data(other_seed, run_dir)  # leaves a journal resumable with the other seed
    earlier = {path.name: path.read_bytes() for path in (run_dir / "data").iterdir()}
    assert {".cartoon_pool.npy", ".cartoon_journal.jsonl"} <= earlier.keys()

    pool_bytes = (TINY["train_per_domain"] + TINY["test_per_domain"]) * TINY["image_size"] ** 2 * 3
    done = under_file_size_limit(pool_bytes // 2, "-c", PREPARE, str(run_dir), json.dumps(TINY))
    pool = run_dir / "data" / ".cartoon_pool.npy"
    assert the_one_error_line(done).startswith(f"error: {pool}: could not be written (OSError: [Errno 27] File too "
                                               "large); this process may write files of at most ")  # fmt: skip
    assert {path.name: path.read_bytes() for path in (run_dir / "data").iterdir()} == earlier


@pytest.mark.slow
def test_a_checkpoint_past_the_file_size_limit_is_one_line_naming_it(tmp_path: Path, prepared_run: Path) -> None:
    run_dir = copy_of_data(prepared_run, tmp_path / "run")
    command = ["-m", "utils.train", "--run-dir", str(run_dir), "--profile", "demo", "--domain", "movie", *OVERRIDES]
    done = under_file_size_limit(2**20, *command)  # the shards fit; a checkpoint (100 MB at any image size) does not
    line = the_one_error_line(done)
    checkpoint = line.removeprefix("error: ").split(": could not be written")[0]
    assert Path(checkpoint).parent == model_dir(run_dir, "movie", 0) and checkpoint.endswith(".pt"), line
    assert "(OSError: [Errno 27] File too large)" in line
    assert not list(model_dir(run_dir, "movie", 0).glob("*.pt*")) and not list(run_dir.rglob(".*.tmp"))
