"""Several trainings at once on one machine: total images/s of 1, 2 and 3 concurrent training processes.

    python benchmarks/bench_concurrency.py [--size 256] [--batch-size 16] [--steps 30] [--warmup 10]
                                           [--max-processes 3] [--run-timeout-s 600] [--json PATH]

What the pipeline does with ``train_concurrency`` = n on one GPU (or on the CPU): n processes, each
training its own model with the kit's step (``train.train_on_batch``: uint8 batch to the device,
Lab there, the GAN step in mixed precision on a GPU), all on the same device; on the CPU each gets
cores // n threads, as the pipeline gives its train notebooks. Each process warms up, waits for the
others, then times ``--steps`` steps; the total is every process's images over the span from the
first start to the last end. A single model's batch 16 does not fill a big GPU: this measures how
much more the GPU does with 2 or 3 models at once (docs/performance.md, "Several models at once").
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import children  # noqa: E402
from benchmarks.harness import device_label, synchronizer  # noqa: E402
from benchmarks.results import Results, add_json_argument  # noqa: E402
from utils.core import config
from utils.nets import environment
from utils.run import scheduler  # noqa: E402
from utils.train.gan import build_gan, train_on_batch  # noqa: E402


def trainer(n_processes: int, args: argparse.Namespace, start: Any, queue: Any) -> None:
    """One training process: warm up, wait for the others at ``start``, time ``args.steps`` steps."""
    try:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.set_num_threads(max(1, scheduler.cpu_cores() // n_processes))
        params = config.resolve_params(
            "demo", {"image_size": args.size, "batch_size": args.batch_size, "pretrained": False}
        )
        gan = build_gan(params, device)
        batch = torch.randint(0, 256, (args.batch_size, args.size, args.size, 3), dtype=torch.uint8)
        batch = batch.pin_memory() if device.type == "cuda" else batch
        flips = torch.zeros(args.batch_size, dtype=torch.bool)
        sync = synchronizer(device)

        def steps(n: int) -> None:
            for _ in range(n):
                train_on_batch(gan, batch, flips)
            sync()

        steps(args.warmup)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start.wait(timeout=args.run_timeout_s)  # a sibling that died never arrives
        began = time.time()  # wall clock: the same across processes
        steps(args.steps)
        ended = time.time()
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
        queue.put({"began": began, "ended": ended, "images": args.steps * args.batch_size, "peak_mib": peak})
    except BaseException as err:  # reported by the parent, which stops adding processes
        queue.put({"error": f"{type(err).__name__}: {err}"})
        start.abort()


def run_concurrently(n_processes: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One report per process; a process that dies, or reports nothing within ``--run-timeout-s``, is an
    error report naming its exit code, and the others are ended."""
    context = multiprocessing.get_context("spawn")
    start, queue = context.Barrier(n_processes), context.Queue()
    processes = [context.Process(target=trainer, args=(n_processes, args, start, queue)) for _ in range(n_processes)]
    for process in processes:
        process.start()
    deadline = time.monotonic() + args.run_timeout_s
    reports: list[dict[str, Any]] = []
    try:
        for _ in processes:
            what = f"{n_processes} training(s) at once"
            reports.append(children.receive(queue, processes, deadline - time.monotonic(), what))
    except children.ChildFailed as err:
        reports.append({"error": str(err)})
    finally:
        start.abort()  # releases any process still waiting for a sibling
        children.end_workers(processes)
        queue.close()
    return reports


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256 if cuda else 64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30 if cuda else 6, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=10 if cuda else 2)
    parser.add_argument("--max-processes", type=int, default=3)
    parser.add_argument("--run-timeout-s", type=float, default=600.0, help="for each round of processes")
    add_json_argument(parser)
    args = parser.parse_args(argv)

    device = device_label("cuda" if cuda else "cpu")
    precision = environment.amp_settings(torch.device("cuda" if cuda else "cpu"))[0] or "fp32"
    results = Results("bench_concurrency", args.json)
    results.describe(device=device, size=args.size, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                     precision=precision,
                     gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else 0)  # fmt: skip
    alone = None
    for n in range(1, args.max_processes + 1):
        runs = run_concurrently(n, args)
        errors = [r["error"] for r in runs if "error" in r]
        if errors:
            print(f"{n} trainings at once failed: {errors[0]}", flush=True)
            break
        span = max(r["ended"] for r in runs) - min(r["began"] for r in runs)
        total = sum(r["images"] for r in runs) / span
        alone = alone or total
        each = ", ".join(f"{r['images'] / (r['ended'] - r['began']):.1f}" for r in runs)
        memory = f"; peak GPU memory per process {max(r['peak_mib'] for r in runs):.0f} MiB" if cuda else ""
        results.add(f"{n} training(s) at once: total", total, "images/s",
                    note=f"{total / alone:.2f}x one alone; each {each} images/s{memory}")  # fmt: skip
    results.write()


if __name__ == "__main__":
    main()
