"""The run directory's one writer (the lock, its holder's children, a dead holder), the one atomic write (unique
temporary names, failures that name the file), and processes bound to their parent's death."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import KIT_ROOT, run_python
from utils.core import processes, run_dir
from utils.core.run_dir import hold_run_dir


def python(
    code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter from the kit's root (this process's environment unless ``env``)."""
    return run_python("-c", textwrap.dedent(code), *args, env=env, timeout=timeout)


TRY_TO_HOLD = """
import sys
from utils.core.run_dir import RunDirBusy, hold_run_dir
try:
    print("primary" if hold_run_dir(sys.argv[1], "a second writer").primary else "joined")
except RunDirBusy as err:
    print(err)
"""


def without_writer() -> dict[str, str]:
    """This process's environment without a writer's identity: a process it did not start."""
    return {k: v for k, v in os.environ.items() if k not in (run_dir.WRITER_ENV, processes.PARENT_ENV)}


@pytest.mark.slow
def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    with hold_run_dir(tmp_path / "run", "the pipeline") as writer:
        started = time.monotonic()
        refused = python(TRY_TO_HOLD, str(tmp_path / "run"), env=without_writer())
        assert time.monotonic() - started < 10
    message = refused.stdout
    assert f"run directory {tmp_path / 'run'} is being written by process {os.getpid()} (the pipeline)" in message
    assert f"started {writer.holder.started}" in message and "pytest" in message  # its command
    assert "one writer at a time" in message and "another run directory" in message


@pytest.mark.slow
def test_a_lock_left_by_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    killed = python(
        """
        import os, signal, sys
        from utils.core.run_dir import hold_run_dir
        hold_run_dir(sys.argv[1], "a writer that is killed")
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        str(tmp_path),
    )
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((tmp_path / run_dir.LOCK_NAME).read_text())["what"] == "a writer that is killed"
    with hold_run_dir(tmp_path, "the next writer") as writer:
        assert writer.primary and json.loads((tmp_path / run_dir.LOCK_NAME).read_text())["pid"] == os.getpid()


@pytest.mark.slow
def test_the_writers_children_join_its_hold_and_nobody_else_does(tmp_path: Path) -> None:
    with hold_run_dir(tmp_path, "the pipeline") as writer:
        assert python(TRY_TO_HOLD, str(tmp_path)).stdout.strip() == "joined"  # its environment
        grandchild = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {TRY_TO_HOLD!r}, sys.argv[1]])"
        assert python(grandchild, str(tmp_path)).stdout.strip() == "joined"
        forged = {**os.environ, run_dir.WRITER_ENV: writer.identity.replace(writer.holder.token, "0" * 16)}
        assert "is being written by" in python(TRY_TO_HOLD, str(tmp_path), env=forged).stdout
        other = tmp_path / "other"  # the identity names another run directory
        with hold_run_dir(other, "another pipeline"):
            pass
        assert python(TRY_TO_HOLD, str(other)).stdout.strip() == "primary"
    # the identity, but not started by the holder: a process that is no descendant of it
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stranger = run_dir.Holder(sibling.pid, "python", "a stranger", "now", writer.holder.host, writer.holder.token)
        os.environ[run_dir.WRITER_ENV] = writer.identity.replace(str(os.getpid()), str(sibling.pid))
        assert not run_dir.started_by(stranger, writer.run_dir)
    finally:
        os.environ.pop(run_dir.WRITER_ENV, None)
        sibling.kill()
        sibling.wait()


def test_holds_nest_in_one_process_and_give_the_environment_back(tmp_path: Path) -> None:
    before = {name: os.environ.get(name) for name in (run_dir.WRITER_ENV, processes.PARENT_ENV)}
    outer = hold_run_dir(tmp_path, "the pipeline")
    inner = hold_run_dir(tmp_path / ".." / tmp_path.name, "the train notebooks")
    assert inner is outer and os.environ[run_dir.WRITER_ENV] == outer.identity
    assert os.environ[processes.PARENT_ENV] == str(os.getpid())
    inner.release()
    assert outer.handle is not None  # still held
    outer.release()
    assert {name: os.environ.get(name) for name in before} == before
    with hold_run_dir(tmp_path, "again") as again:
        assert again is not outer and again.primary


HOLD_UNTIL_TOLD = """
import sys
from utils.core.run_dir import hold_run_dir
with hold_run_dir(sys.argv[1], "another pipeline"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def notebook_writes(params: Any) -> dict[str, Callable[[Path], object]]:
    """Each library call a stage notebook makes that writes the run directory, by the name a notebook calls it by."""
    from utils import colorize
    from utils.data import prepare
    from utils.eval import evaluate, group_pictures, plots, report
    from utils.imaging import figures
    from utils.nets import environment
    from utils.train import training

    return {
        "prepare_data": lambda run: prepare.prepare_data(params, run),
        "plot_groups": lambda run: group_pictures.plot_groups(run, "cartoon"),
        "plot_dataset_samples": lambda run: plots.plot_dataset_samples(run),
        "run_training": lambda run: training.run_training(params, run, "cartoon"),
        "plot_loss_curves": lambda run: figures.plot_loss_curves(run, [("cartoon", 0)], name="loss_curves_cartoon"),
        "evaluate_models": lambda run: evaluate.evaluate_models(params, run, show_progress=False),
        "draw_figures": lambda run: plots.draw_figures(run, params),
        "write_report": lambda run: report.write_report(run),
        "write_sample_inputs": lambda run: colorize.write_sample_inputs(run / "colorize_samples", run_dir=run),
        "colorize_path": lambda run: colorize.colorize_path(run / "best.pt", run / "in", run / "out", run_dir=run),
        "record_run": lambda run: environment.record_run(run, "prepare", "demo", params),
    }


@pytest.mark.slow
def test_each_writing_call_of_the_notebooks_is_refused_while_another_writer_holds_naming_it(tmp_path: Path) -> None:
    from utils.core import config

    calls = notebook_writes(config.resolve_params("demo"))
    notebooks = "".join(path.read_text() for path in (KIT_ROOT / "notebooks").glob("*.ipynb"))
    assert all(f"{name}(" in notebooks for name in calls), "a call no notebook makes"
    run = tmp_path / "run"
    command = [sys.executable, "-c", HOLD_UNTIL_TOLD, str(run)]
    holder = subprocess.Popen(
        command, cwd=KIT_ROOT, env=without_writer(), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        for name, call in calls.items():
            with pytest.raises(run_dir.RunDirBusy) as refused:
                call(run)
            assert f"is being written by process {holder.pid} (another pipeline)" in str(refused.value), name
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert sorted(p.name for p in run.iterdir()) == ["writer.lock"]  # refused before writing anything


@pytest.mark.slow
@pytest.mark.parametrize("name", ["plot_dataset_samples", "evaluate_models", "write_report", "record_run"])
def test_a_writing_call_that_fails_leaves_nothing_held(tmp_path: Path, name: str) -> None:
    from utils.core import config

    run = tmp_path / "run"
    if name == "record_run":  # a damaged run.json
        run.mkdir()
        (run / "run.json").write_text("{")
    before = {variable: os.environ.get(variable) for variable in (run_dir.WRITER_ENV, processes.PARENT_ENV)}
    with pytest.raises(Exception) as failed:
        notebook_writes(config.resolve_params("demo"))[name](run)
    assert not isinstance(failed.value, run_dir.RunDirBusy)
    assert not run_dir._HELD and {variable: os.environ.get(variable) for variable in before} == before
    assert python(TRY_TO_HOLD, str(run), env=without_writer()).stdout.strip() == "primary"  # another process


def test_a_writer_taking_the_run_directory_removes_killed_writers_temporaries(tmp_path: Path) -> None:
    models = tmp_path / "models" / "seed0" / "cartoon"
    models.mkdir(parents=True)
    left = [models / ".checkpoint_last.pt.k2j_x9a1.tmp", tmp_path / ".run.json.abcdefgh.tmp"]
    kept = [models / "checkpoint_last.pt", tmp_path / "notes.tmp", tmp_path / ".hidden.tmp"]
    for path in left + kept:
        path.write_text("x")
    with hold_run_dir(tmp_path, "the pipeline"):
        assert not any(p.exists() for p in left) and all(p.exists() for p in kept)


def test_an_atomic_write_leaves_another_writers_temporary_file_alone(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    others = [tmp_path / "run.json.tmp", tmp_path / ".run.json.tmp"]  # another writer, mid-write
    for other in others:
        other.write_text("another writer's")
    run_dir.write_text_atomic(target, "ours\n")
    assert target.read_text() == "ours\n" and all(p.read_text() == "another writer's" for p in others)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run.json", *(p.name for p in others)])
    with run_dir.atomic_write(target) as first, run_dir.atomic_write(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("first\n")
        second.write_text("second\n")
    assert target.read_text() == "first\n"  # the last to finish (the outer block) wins, whole
    assert oct(target.stat().st_mode & 0o777) == oct(run_dir.new_file_mode())  # not mkstemp's 0o600


FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
import numpy as np, pandas as pd, torch
from utils.nets import checkpoints
from utils import colorize
from utils.data import shard_journal
from utils.core.run_dir import AtomicWriteError, write_csv_atomic, write_text_atomic

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
folder = Path(sys.argv[1])
(folder / "checkpoint_last.pt").write_bytes(b"the previous checkpoint")
writes = {
    "checkpoint_last.pt": lambda path: checkpoints.save_atomic({"weights": torch.zeros(100_000)}, path),
    "cartoon_train.npy": lambda path: shard_journal.write_npy_atomic(path, np.zeros((8, 64, 64, 3), np.uint8)),
    "output.png": lambda path: colorize.save_image(np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8),
                                                   path, False),
    "per_image.csv": lambda path: write_csv_atomic(path, pd.DataFrame({"x": np.arange(20_000)})),
    "report.md": lambda path: write_text_atomic(path, "x" * 100_000),
}
for name, write in writes.items():
    try:
        write(folder / name)
        print(f"{name}: written")
    except AtomicWriteError as err:
        print(f"{name}: {err}")
"""


@pytest.mark.slow
def test_a_write_that_fails_names_its_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A file-size limit stands in for a full disk: torch, numpy, PIL, pandas and text writes each fail."""
    done = python(FILE_SIZE_LIMIT, str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 5
    for line in lines:
        name = line.split(":")[0]
        assert f": {tmp_path / name}: could not be written (" in line, line
    assert all("(OSError: [Errno 27] File too large)" in line for line in lines), lines  # torch's too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_last.pt"]  # no temporary file
    assert (tmp_path / "checkpoint_last.pt").read_bytes() == b"the previous checkpoint"


BOUND_CHILD = """
import os, subprocess, sys, time
from utils.core import processes
command = [sys.executable, "-c", "from utils.core import processes; import time; processes.die_with_parent(); time.sleep(60)"]
if sys.argv[1] == "wrapped":  # a command that is not the kit's, bound through the wrapper
    command = processes.bound_to_parent([sys.executable, "-c", "import time; time.sleep(60)"])
child = subprocess.Popen(command, env=processes.child_environment())
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kit", "wrapped"])
def test_a_bound_child_dies_when_its_parent_is_killed(how: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", BOUND_CHILD, how], cwd=KIT_ROOT, stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        deadline = time.monotonic() + 30
        while "sleep(60)" not in " ".join(child.cmdline()):  # the wrapper has become the command
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # past the binding, in its sleep
        parent.kill()
        assert not psutil.wait_procs([child], timeout=5)[1], "the child outlived its killed parent"
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.slow
def test_a_child_whose_parent_died_before_it_bound_itself_exits() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    started = time.monotonic()
    orphan = python(
        "from utils.core import processes; import time; processes.die_with_parent(); time.sleep(60)",
        env={**os.environ, processes.PARENT_ENV: str(gone.pid)},
    )
    assert orphan.returncode == 128 + signal.SIGKILL and time.monotonic() - started < 30
    assert f"its parent, process {gone.pid}, has ended" in orphan.stderr


@pytest.mark.slow
def test_bench_run_dir_measures_the_lock_the_join_and_the_write_against_baselines(tmp_path: Path) -> None:
    from benchmarks import bench_run_dir

    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"stages": {"prepare": {}, "train_cartoon_seed0": {}}}))
    result = tmp_path / "bench_run_dir.json"
    assert bench_run_dir.main(["--run-dir", str(run), "--repeats", "3", "--json", str(result)]) == 0
    figures = {f["name"]: f for f in json.loads(result.read_text())["figures"]}
    assert figures["hold / bare flock"]["value"] > 1 and figures["join / refused flock"]["value"] > 1
    added = figures["added to a run like this one"]
    assert 0 < added["value"] and added["target"] == "< 1 s" and added["met"] == (added["value"] < 1)
    assert sorted(p.name for p in run.iterdir()) == ["models", "run.json", "writer.lock"]  # nothing else left


def test_a_bug_raised_while_handling_a_system_error_keeps_its_traceback(tmp_path: Path) -> None:
    from utils.core.errors import cli_error_line

    def library_write(path: Path) -> None:  # torch's writer: its own RuntimeError, raised while handling the OSError
        try:
            raise OSError(27, "File too large")
        except OSError:
            raise RuntimeError("file write failed")  # noqa: B904 - as torch raises it: the OSError is its context

    with pytest.raises(run_dir.AtomicWriteError) as full:
        with run_dir.atomic_write(tmp_path / "a.pt") as temporary:
            library_write(temporary)
    assert isinstance(full.value.__cause__, OSError) and cli_error_line(full.value, ()) is not None
    with pytest.raises(run_dir.AtomicWriteError) as bug:
        with run_dir.atomic_write(tmp_path / "b.pt"):
            try:
                raise OSError(2, "No such file or directory")
            except OSError:
                raise ValueError("a bug in the kit's own code")  # noqa: B904 - a bug: the OSError is its context
    assert isinstance(bug.value.__cause__, ValueError) and cli_error_line(bug.value, ()) is None  # a traceback
