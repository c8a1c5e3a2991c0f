"""The GPU check (benchmarks/gpu_check.py) on its CPU path, its handling of failing parts, and bench_metrics' figures."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks import bench_gamut, bench_metrics, gpu_check
from benchmarks.results import Results, read_results

KIT_ROOT = Path(__file__).resolve().parent.parent
MACHINE = {"gpus": [], "torch": "x", "cuda": None, "python": "3", "cpus": 2}


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


def test_gpu_check_on_a_cpu_machine_runs_the_cpu_parts_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.md"
    done = subprocess.run(
        [sys.executable, str(KIT_ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out),
         "--work-dir", str(tmp_path / "work")],
        cwd=KIT_ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no GPU" in done.stdout.splitlines()[0]
    table = out.read_text()
    assert table in done.stdout
    assert "card: **no GPU: CPU only**" in table
    assert "every part ran: yes" in table
    for part in ("bench_metrics (reduced)", "bench_data (reduced)", "bench_train, eager (reduced)"):
        rows = table_rows(table, part)
        assert rows[0][1] == "ran", rows
        assert len(rows) > 1, f"{part}: no figures in the table"
    metrics_rows = table_rows(table, "bench_metrics (reduced)")
    assert ["scikit-image, 1 thread", "images/s"] in [[row[1], row[3]] for row in metrics_rows]
    for part in gpu_check.GPU_ONLY_PARTS:
        assert table_rows(table, part) == [[part, "not run: no GPU", "", "", "", ""]]


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
        python_part("stub benchmark", write_figure, share=0.5, min_s=0, json_path=figures),
        python_part("failing", "print('first words'); print('last words'); raise SystemExit(3)", share=0.5, min_s=0),
        python_part("sleeping", sleep_with_a_child, share=0.1, min_s=0),
        gpu_check.Part("gpu only", lambda _: ["false"], share=0.1, min_s=0, not_run="no GPU"),
        python_part("too big", "print('never')", share=0.5, min_s=10_000),
    ]
    out = tmp_path / "table.md"
    with contextlib.redirect_stdout(io.StringIO()):
        code = gpu_check.run_check(parts, MACHINE, gpu_check.Budget(20.0), out)
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
    assert sleeping.startswith("**timed out after 2 s**") and "started" in sleeping  # 0.1 x 20 s
    assert not any(map(running, map(int, sleeper_pids.read_text().split()))), "a timed-out part left processes behind"
    assert table_rows(table, "gpu only") == [["gpu only", "not run: no GPU", "", "", "", ""]]
    assert (
        "not run:" in table_rows(table, "too big")[0][1]
        and "needs at least 10000 s" in table_rows(table, "too big")[0][1]
    )


def test_demo_figures_read_the_pipelines_stage_lines() -> None:
    lines = [  # as utils.pipeline prints them (--no-progress)
        "[1/7] 01_prepare_data ...",
        "[1/7] 01_prepare_data done in 9 s (start-up 3.1 s: launch 0.2, kernel 1.4, imports 1.5)",
        "training 3 model(s), 1 at a time",
        "[2/7] 02_train_cartoon epoch 1/2 done in 12 s: D 0.69, G_GAN 0.72, G_L1 11.3, val CIEDE2000 20.10, "
        "80.0 images/s; model ETA 12 s, run ETA 36 s",
        "[2/7] 02_train_cartoon done in 31 s",
    ]
    stages = gpu_check.demo_figures(135.0)(lines, float("nan"))
    assert [(f.name, f.value) for f in stages] == [("stage 01_prepare_data", 9.0), ("stage 02_train_cartoon", 31.0)]
    fast, slow = gpu_check.demo_figures(135.0)(lines, 45.0)[-1], gpu_check.demo_figures(135.0)(lines, 150.0)[-1]
    assert (fast.value, fast.target, fast.met, slow.met) == (3.0, "> 1x", True, False)
    assert "135 s" in fast.name


def test_bench_metrics_writes_its_figures_and_marks_the_target(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    with contextlib.redirect_stdout(io.StringIO()):
        bench_metrics.main(["--images", "4", "--size", "32", "--repeats", "1", "--no-compile", "--devices", "cpu",
                            "--json", str(path)])  # fmt: skip
    results = read_results(path)
    figures = {f.name: f for f in results.figures}
    reference = figures["scikit-image, 1 thread"].value
    ratio = figures["kit, eager, 1 thread vs scikit-image"]
    assert ratio.value == pytest.approx(figures["kit, eager, 1 thread"].value / reference)
    assert figures["max |kit - scikit-image| CIEDE2000, CPU float32, eager"].value < 1e-4
    assert figures["max |kit - scikit-image| SSIM, float64, eager"].value < 1e-6
    assert "kit, compiled, 1 thread (--no-compile)" in results.context["skipped"]

    bench = bench_metrics.MetricsBench(Results("t"), bench_metrics.Deadline(10), None, reference_rate=10.0)
    with contextlib.redirect_stdout(io.StringIO()):
        bench.rate("fast", 60.0, 5.0)
        bench.rate("slow", 40.0, 5.0)
    verdicts = {f.name: (f.target, f.met) for f in bench.results.figures if f.unit == "x"}
    assert verdicts == {"fast vs scikit-image": (">= 5x", True), "slow vs scikit-image": (">= 5x", False)}


def test_bench_metrics_starts_no_compilation_past_its_time_limit(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    with contextlib.redirect_stdout(io.StringIO()):
        bench_metrics.main(["--images", "2", "--size", "32", "--repeats", "3", "--devices", "cpu",
                            "--time-limit", "0", "--json", str(path)])  # fmt: skip
    results = read_results(path)
    assert not any(f.name.startswith("compilation") for f in results.figures)
    assert "kit, compiled, 1 thread (0 s of --time-limit left" in results.context["skipped"]
    assert "kit, eager, 1 thread (--time-limit reached)" in results.context["skipped"]


def test_bench_metrics_warms_up_every_batch_shape_before_timing() -> None:
    def shapes_scored(n: int, batch: int) -> list[int]:
        shapes: list[int] = []

        def score(truth: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            shapes.append(len(truth))
            return torch.zeros(len(truth)), torch.zeros(len(truth))

        bench_metrics.warm_up_shapes(torch.zeros(n, 1), torch.zeros(n, 1), score, batch)
        return shapes

    # a compiled scorer (dynamic=False) compiles once per shape: a short last batch must be seen too
    assert shapes_scored(40, 32) == [32, 8]
    assert shapes_scored(64, 32) == [32]
    assert shapes_scored(8, 32) == [8]


def test_bench_gamut_writes_its_figures_from_one_run(tmp_path: Path) -> None:
    path = tmp_path / "gamut.json"
    with contextlib.redirect_stdout(io.StringIO()):
        bench_gamut.main(["--images", "2", "--size", "64", "--colorize-size", "96", "--repeats", "1",
                          "--devices", "cpu", "--json", str(path)])  # fmt: skip
    figures = {f.name: f.value for f in read_results(path).figures}
    for batch in ("plausible", "saturated"):
        ratio = figures[f"{batch}, cpu: chroma (eager)"] / figures[f"{batch}, cpu: clip"]
        assert figures[f"{batch}, cpu: chroma / clip"] == pytest.approx(ratio)
        assert 0 < figures[f"{batch}, cpu: pixels outside sRGB"] <= 100
    assert figures["saturated, cpu: pixels outside sRGB"] > figures["plausible, cpu: pixels outside sRGB"]
