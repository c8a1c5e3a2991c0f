"""The GPU check (benchmarks/gpu_check.py): its CPU path, its budget, failing, overrunning and stopped
parts, and the demo's CPU baseline."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import bench_demo, children, gpu_check
from benchmarks.results import Figure, Results, read_results
from tests.helpers import KIT_ROOT, run_python

MACHINE = {"gpus": [], "torch": "x", "cuda": None, "python": "3", "cpu": "test", "cpu_count": 2}


def python_part(name: str, code: str, **kwargs) -> gpu_check.Part:
    return gpu_check.Part(name, lambda _: [sys.executable, "-c", code], **kwargs)


def table_rows(table: str, part: str) -> list[list[str]]:
    """The cells of every table row of ``part``."""
    return [line[2:-2].split(" | ") for line in table.splitlines() if line.startswith(f"| {part} |")]


def running(pid: int, grace_s: float = 5.0) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its reaper does not) after up to ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        except FileNotFoundError:
            return False
        time.sleep(0.1)
    return True


def quietly(run, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):
        return run(*args, **kwargs)


@pytest.mark.slow
def test_gpu_check_on_a_cpu_machine_runs_the_cpu_parts_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.md"
    done = run_python(str(KIT_ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out),
                      env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no GPU" in done.stdout.splitlines()[0]
    table = out.read_text()
    assert table in done.stdout
    assert "card: **no GPU: CPU only**" in table
    assert "every part ran: yes" in table
    for part in ("bench_train, eager (reduced)", "bench_metrics (reduced)", "bench_data (reduced)"):
        rows = table_rows(table, part)
        assert rows[0][1] == "ran", rows
        assert len(rows) > 1, f"{part}: no figures in the table"
    metrics_rows = table_rows(table, "bench_metrics (reduced)")
    assert ["scikit-image, 1 thread", "images/s"] in [[row[1], row[3]] for row in metrics_rows]
    for part in gpu_check.GPU_ONLY_PARTS:
        assert table_rows(table, part) == [[part, "not run: no GPU", "", "", "", ""]]
    gathered = json.loads(out.with_suffix(".json").read_text())  # beside the table, in the shared layout
    assert {"benchmark", "context", "figures", "machine", "date", "commit", "command"} <= gathered.keys()
    assert gathered["machine"]["gpus"] == [] and gathered["context"]["every_part_ran"] == "True"
    assert "bench_metrics (reduced): scikit-image, 1 thread" in [f["name"] for f in gathered["figures"]]
    kept = sorted(p.name for p in (tmp_path / "gpu_check_parts").iterdir())  # each part's own JSON, kept
    assert kept == ["bench_data.json", "bench_metrics.json", "bench_train.json"]


@pytest.mark.slow
def test_a_failing_part_a_timed_out_part_and_a_part_out_of_budget_become_rows(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    write_figure = (
        f"import sys; sys.path.insert(0, {str(KIT_ROOT)!r}); from benchmarks.results import Results; "
        f"r = Results('stub', {str(figures)!r}); r.add('speed', 12.0, 'x', '>= 10x', True); "
        "r.add('accuracy', 0.5, 'x', '>= 1x', False)"
    )
    sleeper_pids = tmp_path / "sleepers.pid"
    sleep_with_a_child = (  # the child stands for a benchmark's own workers: the timeout must end them too
        "import os, subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(sleeper_pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); print('started', flush=True); "
        "time.sleep(60)"
    )
    parts = [
        python_part("stub benchmark", write_figure, share=0.3, min_s=0, json_path=figures),
        python_part("failing", "print('first words'); print('last words'); raise SystemExit(3)", share=0.2, min_s=0),
        python_part("sleeping", sleep_with_a_child, share=0.1, min_s=0),
        gpu_check.Part("gpu only", lambda _: ["false"], share=0.0, min_s=0, not_run="no GPU"),
        python_part("too big", "print('never')", share=0.4, min_s=10_000),
    ]
    out = tmp_path / "table.md"
    code = quietly(gpu_check.run_check, parts, MACHINE, gpu_check.Budget(20.0), out)
    table = out.read_text()
    assert code == 1
    assert "every part ran: **no**; targets met: 1 of 2 (not met: accuracy)" in table
    assert table_rows(table, "stub benchmark")[1:] == [
        ["stub benchmark", "speed", "12", "x", ">= 10x", "yes"],
        ["stub benchmark", "accuracy", "0.5", "x", ">= 1x", "**no**"],
    ]
    failing = table_rows(table, "failing")[0][1]
    assert failing.startswith("**failed (exit 3)**") and "last words" in failing
    assert "## failing: failed (exit 3), last 20 lines" in table
    sleeping = table_rows(table, "sleeping")[0][1]
    assert re.match(r"\*\*timed out after \d+ s\*\*", sleeping) and "started" in sleeping
    assert not any(map(running, map(int, sleeper_pids.read_text().split()))), "a timed-out part left processes behind"
    assert table_rows(table, "gpu only") == [["gpu only", "not run: no GPU", "", "", "", ""]]
    too_big = table_rows(table, "too big")[0][1]
    assert too_big.startswith("not run:") and "needs at least 10000 s" in too_big


@pytest.mark.slow
def test_a_part_past_its_timeout_leaves_the_later_parts_their_minimum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children, "STOP_GRACE_S", 1.0)  # SIGTERM, 1 s, SIGKILL
    monkeypatch.setattr(gpu_check, "KILL_MARGIN_S", 2.0)
    deaf = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('deaf', flush=True); time.sleep(60)"
    )
    parts = [  # the first part's share alone would take the later part's minimum, and so would its kill
        python_part("deaf to SIGTERM", deaf, share=0.9, min_s=0),
        python_part("later", "print('later ran')", share=0.1, min_s=2),
    ]
    out = tmp_path / "table.md"
    quietly(gpu_check.run_check, parts, MACHINE, gpu_check.Budget(8.0), out)
    table = out.read_text()
    assert table_rows(table, "deaf to SIGTERM")[0][1].startswith("**timed out after 4 s**")  # 8 - 2 (min) - 2
    assert table_rows(table, "later")[0][1] == "ran", table


def test_the_shares_of_every_check_add_up_to_one_and_bench_train_comes_first(tmp_path: Path) -> None:
    checks = {
        "full": gpu_check.gpu_parts(tmp_path, None, quick=False),
        "quick": gpu_check.gpu_parts(tmp_path, None, quick=True),
        "cpu": gpu_check.cpu_parts(tmp_path),
    }
    for name, parts in checks.items():
        assert sum(p.share for p in parts if not p.not_run) == pytest.approx(1.0), name
        assert parts[0].name.startswith("bench_train"), name
    assert [p.name for p in checks["quick"]] == [
        "bench_train",
        "bench_metrics, GPU",
        "demo pipeline, fp16 + GradScaler",
    ]
    train = checks["full"][0].command(200.0)
    assert (
        train[train.index("--batch-sizes") + 1] == "16,64" and train[train.index("--compile-batch-sizes") + 1] == "16"
    )
    assert train[train.index("--time-limit") + 1] == "185"  # the part's timeout less OWN_LIMIT_MARGIN_S
    quick_train = checks["quick"][0].command(150.0)
    assert quick_train[quick_train.index("--batch-sizes") + 1] == "16" and "--compile" in quick_train


def test_a_parts_timeout_holds_back_the_later_minimums_and_the_kill_margin() -> None:
    def part(share: float, min_s: float, not_run: str = "") -> gpu_check.Part:
        return gpu_check.Part("p", lambda _: [], share, min_s, not_run=not_run)

    budget = gpu_check.Budget(480.0)
    margin = gpu_check.KILL_MARGIN_S
    later = [part(0.3, 60), part(0.2, 100, not_run="no GPU"), part(0.2, 60)]  # a part that does not apply: no share
    assert gpu_check.part_timeout(part(0.5, 90), later, budget) == pytest.approx(480 * 0.5, abs=0.5)
    small_later = [part(0.05, 60), part(0.05, 60)]
    assert gpu_check.part_timeout(part(0.9, 90), small_later, budget) == pytest.approx(480 - 120 - margin, abs=0.5)
    assert gpu_check.part_timeout(part(0.9, 450), small_later, budget) == 450  # its minimum; no later one fits


def test_the_demo_is_compared_with_the_recorded_cpu_baseline_or_says_there_is_none(tmp_path: Path) -> None:
    def demo_results(path: Path, wall_s: float, overrides: str = "none", cores: int = 2) -> None:
        results = Results("bench_demo", str(path), machine={"cpu_count": cores, "gpus": []})
        results.context["overrides"] = overrides
        quietly(results.add, bench_demo.WALL_TIME, wall_s, "s")

    gpu_run = [Figure("stage 01_prepare_data", 10.0, "s"), Figure(bench_demo.WALL_TIME, 60.0, "s")]
    baseline = tmp_path / "bench_demo_cpu.json"
    [missing] = gpu_check.demo_speedup(baseline, None)(gpu_run)
    assert math.isnan(missing.value) and "no CPU baseline recorded" in missing.note and missing.target == "> 1x"

    demo_results(baseline, 240.0)
    [speedup] = gpu_check.demo_speedup(baseline, None)(gpu_run)
    assert (speedup.value, speedup.met) == (4.0, True)
    assert "240 s" in speedup.name and "2 cores" in speedup.name
    [given] = gpu_check.demo_speedup(baseline, 30.0)(gpu_run)  # --cpu-demo-s wins over the file
    assert (given.value, given.met) == (0.5, False) and "--cpu-demo-s" in given.name
    [unfinished] = gpu_check.demo_speedup(baseline, None)(gpu_run[:1])
    assert math.isnan(unfinished.value) and "not measured" in unfinished.note

    demo_results(baseline, 240.0, overrides="device=cpu epochs=5")
    [other] = gpu_check.demo_speedup(baseline, None)(gpu_run)
    assert math.isnan(other.value) and "-p epochs=5" in other.note


@pytest.mark.slow
def test_sigterm_in_the_middle_of_a_part_keeps_the_table_of_what_was_measured(tmp_path: Path) -> None:
    script = KIT_ROOT / "tests" / "scripts" / "gpu_check_slow_part.py"
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=KIT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    pids = tmp_path / "slow.pid"
    deadline = time.monotonic() + 120
    while not pids.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pids.is_file(), process.communicate(timeout=30)[0]
    before = (tmp_path / "gpu_check.md").read_text()  # written after each part: a SIGKILL would leave this
    assert table_rows(before, "quick part")[1] == ["quick part", "speed", "12", "x", ">= 10x", "yes"]
    assert table_rows(before, "slow part") == [["slow part", "running", "", "", "", ""]]
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 128 + signal.SIGTERM, output
    table = (tmp_path / "gpu_check.md").read_text()
    assert table_rows(table, "quick part")[1:] == [
        ["quick part", "speed", "12", "x", ">= 10x", "yes"],
        ["quick part", "memory", "300", "MiB", "", ""],
    ]
    slow = table_rows(table, "slow part")
    assert slow[0][1].startswith("**stopped by SIGTERM after"), slow
    assert slow[1] == ["slow part", "first window", "7", "images/s", "", ""]  # what it measured before the signal
    assert table_rows(table, "later part") == [
        ["later part", "not run: the check was stopped by SIGTERM", "", "", "", ""]
    ]
    assert not any(map(running, map(int, pids.read_text().split()))), "the stopped part left processes behind"
    gathered = read_results(tmp_path / "gpu_check.json")
    assert [f.name for f in gathered.figures] == ["quick part: speed", "quick part: memory", "slow part: first window"]
