"""The benchmarks' figures from tiny CPU runs, their result files, and their child processes (the GPU check:
tests/test_gpu_check.py)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import math
import multiprocessing
import os
import queue
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from benchmarks import (
    bench_colorize_memory,
    bench_demo,
    bench_gamut,
    bench_metrics,
    bench_notebook_start,
    bench_train,
    children,
)
from benchmarks.harness import Deadline
from benchmarks.results import Results, read_results
from tests.helpers import KIT_ROOT
from utils.train import gan


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

    bench = bench_metrics.MetricsBench(Results("t"), Deadline(10), None, reference_rate=10.0)
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


@pytest.mark.slow
def test_bench_colorize_memory_measures_each_way_in_a_process_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "memory.json"
    with contextlib.redirect_stdout(io.StringIO()):
        bench_colorize_memory.main(["--images", "2", "--side", "96", "--budgets", "0.002", "--model-size", "64",
                                    "--work-dir", str(tmp_path / "work"), "--json", str(path)])  # fmt: skip
    figures = {f.name: f.value for f in read_results(path).figures}
    idle = figures["idle (imports and the generator): peak RSS"]
    kit = figures["kit, budget 0.002 Mpx: peak RSS"]
    previous = figures["previous way (each file whole, one at a time): peak RSS"]
    assert 0 < idle <= kit and idle <= previous
    assert figures["kit, budget 0.002 Mpx: peak above idle"] == pytest.approx(kit - idle)
    assert figures["previous way / kit (budget 0.002 Mpx): peak RSS"] == pytest.approx(previous / kit)
    colorized = sorted(p.name for p in (tmp_path / "work" / "out_kit").iterdir())
    assert colorized == ["flat_00_colorized.png", "flat_01_colorized.png"]


def test_bench_notebook_start_reports_medians_and_the_ratio_against_its_target() -> None:
    start = bench_notebook_start.Start
    results = Results("bench_notebook_start")
    with contextlib.redirect_stdout(io.StringIO()):
        ratio = bench_notebook_start.report(
            results, [start(1.0, 4.0), start(1.0, 5.0), start(2.0, 9.0)], [start(1.0, 6.0), start(1.0, 6.5)]
        )
    figures = {f.name: f for f in results.figures}
    assert figures["kit: kernel start to its first cell done"].value == 5.0
    assert figures["baseline: kernel start to its first cell done"].value == 6.25
    assert figures["kit: the first cell (the imports)"].value == 4.0
    headline = figures["kit / baseline: kernel start to its first cell done"]
    assert ratio == headline.value == pytest.approx(5.0 / 6.25)
    assert headline.met is True and headline.target == "<= 1.05x"
    assert next(f for f in results.figures if f.target) is headline  # the figure the performance page shows


@pytest.mark.slow
def test_bench_notebook_start_starts_kernels_the_way_the_pipeline_does_and_runs_the_imports_cell(
    tmp_path: Path,
) -> None:
    path = tmp_path / "start.json"
    with contextlib.redirect_stdout(io.StringIO()):
        bench_notebook_start.main(["--baseline", str(KIT_ROOT), "--repeats", "1", "--no-warm-up", "--json", str(path)])
    results = read_results(path)
    figures = {f.name: f.value for f in results.figures}
    kit, baseline = (figures[f"{who}: kernel start to its first cell done"] for who in ("kit", "baseline"))
    assert 0 < figures["kit: the kernel ready"] < kit and 0 < baseline
    assert figures["kit / baseline: kernel start to its first cell done"] == pytest.approx(kit / baseline)
    assert results.context["kit_runs_s"] == f"{kit:.2f}" and results.context["load_average_before"]
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        bench_notebook_start.main(["--baseline", str(tmp_path)])  # no kit there


def test_a_result_file_carries_the_machine_the_date_the_commit_and_the_command(tmp_path: Path) -> None:
    path = tmp_path / "bench_x_cpu.json"
    results = Results("bench_x", str(path), command="python benchmarks/bench_x.py --json x.json")
    with contextlib.redirect_stdout(io.StringIO()):
        results.add("speed", 3.5, "images/s")
        results.not_measured("speed, batch 128", "images/s", "out of memory: CUDA out of memory")
    payload = json.loads(path.read_text())  # strict JSON: a figure without a value is null, not NaN
    assert payload["figures"][1]["value"] is None
    machine = payload["machine"]
    assert machine["gpus"] == ([torch.cuda.get_device_name(0)] if torch.cuda.is_available() else [])
    assert machine["cpu_count"] == os.cpu_count() and machine["torch"] == torch.__version__
    assert machine["python"] == sys.version.split()[0] and machine["cpu"] and machine["platform"]
    assert dt.datetime.fromisoformat(payload["date"]).utcoffset() == dt.timedelta(0)
    assert re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?", payload["commit"]), payload["commit"]
    assert payload["command"] == "python benchmarks/bench_x.py --json x.json"
    read = read_results(path)
    assert math.isnan(read.figures[1].value) and read.figures[1].note.startswith("out of memory")
    assert (read.machine, read.commit, read.date) == (machine, payload["commit"], payload["date"])


def test_a_result_file_given_its_machine_still_carries_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "gpu_check_cuda.json"  # gpu_check probes the machine in a child and passes it in
    results = Results("gpu_check", str(path), machine={"gpus": ["NVIDIA H200"]})
    with contextlib.redirect_stdout(io.StringIO()):
        results.add("speed", 3.5, "images/s")
    payload = json.loads(path.read_text())
    assert payload["machine"] == {"gpus": ["NVIDIA H200"]}
    assert re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?", payload["commit"]), payload["commit"]


def test_the_command_line_of_a_result_file_names_paths_inside_the_kit_relative_to_it() -> None:
    from benchmarks.results import command_line

    argv = [
        str(KIT_ROOT / "benchmarks" / "bench_demo.py"),
        "--json",
        str(KIT_ROOT / "benchmarks" / "measured" / "a b.json"),
    ]
    assert command_line(argv) == "python benchmarks/bench_demo.py --json 'benchmarks/measured/a b.json'"


@pytest.mark.parametrize(
    ("name", "tflops"),
    [("Tesla T4", 65), ("NVIDIA L4", 121), ("NVIDIA L40", 181), ("NVIDIA L40S", 362), ("NVIDIA H100 80GB HBM3", 989),
     ("NVIDIA H100 PCIe", 756), ("NVIDIA H100 NVL", 835), ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA H200", 989),
     ("NVIDIA  h200 ", 989), ("NVIDIA GeForce RTX 4090", None), ("NVIDIA H100", None)],
)  # fmt: skip
def test_peak_flops_are_looked_up_by_the_exact_card(name: str, tflops: float | None) -> None:
    peak = bench_train.peak_flops(name)
    assert (peak / 1e12 if peak else None) == tflops


def test_a_card_without_a_peak_is_a_visible_row() -> None:
    results = Results("bench_train")
    with contextlib.redirect_stdout(io.StringIO()):
        bench_train.peak_fraction(results, "NVIDIA B300", 1e9, {16: 100.0}, "compiled", 10)
        bench_train.peak_fraction(results, "NVIDIA L4", 1e9, {16: 100.0, 64: 121.0}, "eager")
    unknown, known = results.figures
    assert math.isnan(unknown.value) and unknown.target == ">= 10%"
    assert unknown.note == "peak unknown for NVIDIA B300: not in bench_train.GPU_PEAK_FLOPS"
    assert known.name == "fraction of NVIDIA L4's dense half-precision peak, batch 64, eager"
    assert known.value == pytest.approx(100 * 1e9 * 121 / 121e12)


def test_a_batch_out_of_memory_is_a_row_and_the_larger_ones_are_not_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    def measure(which: str, shard: str, args: argparse.Namespace, batch_size: int, compile: bool) -> dict:
        if batch_size >= 64:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore")
        return {"batch_size": batch_size, "images_per_s": 10.0 * batch_size, "peak_mib": 100.0}

    monkeypatch.setattr(bench_train, "measure", measure)
    messages: queue.Queue = queue.Queue()
    bench_train.measure_into(messages, "kit", "shard.npy", argparse.Namespace(), [16, 64, 128], False, "inductor")
    sent = [messages.get_nowait() for _ in range(messages.qsize())]
    assert sent == [
        ("row", {"batch_size": 16, "images_per_s": 160.0, "peak_mib": 100.0}),
        ("row", {"batch_size": 64, "error": "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"}),
        ("done", None),
    ]

    monkeypatch.setattr(bench_train, "rows_from_fresh_process", lambda *args: iter(row for _, row in sent[:2]))
    bench = bench_train.TrainBench(
        Results("bench_train"), argparse.Namespace(), "shard.npy", Deadline(math.inf), "peak"
    )
    with contextlib.redirect_stdout(io.StringIO()):
        measured = bench.rows("kit", lambda b: f"kit images/s, batch {b}", [16, 64, 128])
    assert list(measured) == [16]
    rows = [(f.name, f.value if f.measured else None, f.note) for f in bench.results.figures]
    assert rows == [
        ("kit images/s, batch 16", 160.0, "peak 100 MiB"),
        ("kit images/s, batch 64", None, "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"),
        ("kit images/s, batch 128", None, "a smaller batch ran out of memory"),
    ]


TINY_TRAIN = ["--size", "32", "--batch-sizes", "4", "--shard-images", "8", "--window-s", "0", "--warmup", "1",
              "--repeats", "1", "--workers", "0"]  # fmt: skip


@pytest.mark.slow
def test_bench_train_measures_the_kit_compiled_with_the_parents_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the child process gets the parent's backend; "eager" (graph capture alone) compiles in a fraction of aot_eager's
    # time, and the row is the same row
    monkeypatch.setattr(gan, "COMPILE_BACKEND", "eager")
    path = tmp_path / "train.json"
    with contextlib.redirect_stdout(io.StringIO()):
        bench_train.main([*TINY_TRAIN, "--compile", "--json", str(path)])
    figures = {f.name: f for f in read_results(path).figures}
    for name in ("kit images/s, batch 4", "reference images/s, batch 4 (fp32, CPU Lab, .item())",
                 "kit compiled images/s, batch 4", "compilation time, batch 4 (warm-up less its steps)"):  # fmt: skip
        assert figures[name].measured and figures[name].value > 0, name
    assert "torch.compile backend eager" in figures["kit compiled images/s, batch 4"].note
    kit, reference = (
        figures["kit images/s, batch 4"].value,
        figures["reference images/s, batch 4 (fp32, CPU Lab, .item())"].value,
    )
    assert figures["kit vs reference, batch 4"].value == pytest.approx(kit / reference)


@pytest.mark.slow
def test_bench_train_ends_a_loop_at_its_time_limit_and_says_which_rows_it_lost(tmp_path: Path) -> None:
    shard = tmp_path / "train.npy"
    bench_train.write_shard(shard, 16, 32)
    args = argparse.Namespace(size=32, workers=0, warmup=1, repeats=1, window_s=600.0)  # a loop that would run on
    started = time.monotonic()
    bench = bench_train.TrainBench(Results("bench_train"), args, str(shard), Deadline(3.0, started), "peak RSS")
    with contextlib.redirect_stdout(io.StringIO()):
        measured = bench.rows("kit", lambda b: f"kit images/s, batch {b}", [4, 8])
    assert measured == {} and time.monotonic() - started < 3.0 + 2 * children.STOP_GRACE_S
    assert [(f.name, f.measured, f.note) for f in bench.results.figures] == [
        ("kit images/s, batch 4", False, "--time-limit reached"),
        ("kit images/s, batch 8", False, "--time-limit reached"),
    ]
    assert multiprocessing.active_children() == [], "the loop's process outlived its time limit"


def sends_nothing(how: str) -> None:
    if how == "exit 3":
        os._exit(3)
    if how == "SIGKILL":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "sends late":
        import time

        time.sleep(30)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "message"),
    [("exit 3", "exited with code 3 before it reported"), ("SIGKILL", "killed by signal 9 (SIGKILL) before it reported"),
     ("sends late", "nothing reported within 2 s")],
)  # fmt: skip
def test_a_worker_that_dies_or_stays_silent_is_named_instead_of_waited_for(how: str, message: str) -> None:
    context = multiprocessing.get_context("fork")  # the target needs no pickling; nothing here uses threads
    messages = context.Queue()
    worker = context.Process(target=sends_nothing, args=(how,))
    worker.start()
    try:
        with pytest.raises(children.ChildFailed, match=re.escape(f"the test worker: its process {message}")
                           if how != "sends late" else re.escape(f"the test worker: {message}")):  # fmt: skip
            children.receive(messages, [worker], 2.0, "the test worker")
    finally:
        children.end_workers([worker])
    assert not worker.is_alive()


def test_bench_demo_runs_the_demo_pipeline_with_the_overrides_into_its_run_directory(tmp_path: Path) -> None:
    command = bench_demo.pipeline_command(tmp_path / "run", ["device=cuda", "precision=fp16"])
    assert command == [sys.executable, "-m", "utils.pipeline", "--profile", "demo", "--run-dir", str(tmp_path / "run"),
                       "--no-progress", "-p", "device=cuda", "-p", "precision=fp16"]  # fmt: skip


PIPELINE_LINES = [  # as utils.pipeline prints them (--no-progress)
    "[1/7] 01_prepare_data ...",
    "[1/7] 01_prepare_data done in 9 s (start-up 3.1 s: launch 0.2, kernel 1.4, imports 1.5)",
    "training 3 model(s), 1 at a time",
    "[2/7] 02_train_cartoon epoch 1/2 done in 12 s: D 0.69, G_GAN 0.72, G_L1 11.3, val CIEDE2000 20.10",
    "[2/7] 02_train_cartoon done in 31.5 s",
]


def fake_pipeline(tmp_path: Path, ending: str) -> list[str]:
    """A stand-in for the demo pipeline: the stage lines, a record of its arguments, then ``ending``."""
    prints = "; ".join(f"print({line!r}, flush=True)" for line in PIPELINE_LINES)
    record = f"import sys; open({str(tmp_path / 'argv')!r}, 'w').write(' '.join(sys.argv[1:]))"
    return [sys.executable, "-c", f"{record}; {prints}; {ending}"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ending", "code", "why"),
    [("pass", 0, None), ("raise SystemExit(1)", 1, "the pipeline exited with code 1: [2/7] 02_train_cartoon done in 31.5 s"),
     ("import time; time.sleep(60)", 124, "--time-limit 3 s reached")],
)  # fmt: skip
def test_bench_demo_records_each_stage_as_it_ends_and_the_wall_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str, code: int, why: str | None
) -> None:
    monkeypatch.setattr(
        bench_demo,
        "pipeline_command",
        lambda run_dir, overrides: fake_pipeline(tmp_path, ending) + [str(run_dir), *overrides],
    )
    monkeypatch.setattr(bench_demo, "PIPELINE_STOP_GRACE_S", 2.0)
    path = tmp_path / "demo.json"
    with contextlib.redirect_stdout(io.StringIO()):
        returned = bench_demo.main(["-p", "device=cpu", "--time-limit", "3", "--json", str(path)])
    results = read_results(path)
    assert returned == code
    assert [(f.name, f.value) for f in results.figures[:2]] == [
        ("stage 01_prepare_data", 9.0),
        ("stage 02_train_cartoon", 31.5),
    ]
    wall = results.figures[2]
    assert wall.name == bench_demo.WALL_TIME and len(results.figures) == 3
    assert (wall.note or None) == why and wall.measured == (code == 0)
    run_dir, override = (tmp_path / "argv").read_text().split()
    assert override == "device=cpu" and not Path(run_dir).exists()  # a temporary run directory, removed
    assert results.context["overrides"] == "device=cpu"


@pytest.mark.slow
def test_bench_demo_stopped_by_sigterm_stops_the_pipeline_and_keeps_its_stages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        bench_demo,
        "pipeline_command",
        lambda run_dir, overrides: fake_pipeline(tmp_path, "import time; time.sleep(60)"),
    )
    path = tmp_path / "demo.json"
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):
        returned = bench_demo.main(["--json", str(path)])
    timer.join()
    assert returned == 128 + signal.SIGTERM and time.monotonic() - started < 20  # the fake pipeline took Ctrl-C
    figures = read_results(path).figures
    assert [f.name for f in figures] == ["stage 01_prepare_data", "stage 02_train_cartoon", bench_demo.WALL_TIME]
    assert not figures[-1].measured and figures[-1].note.startswith("stopped by SIGTERM after")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # bench_demo's handler is gone again
