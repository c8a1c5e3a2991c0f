"""A few training steps and predictions, timed: what the plan of a run estimates its time from.

The networks, the step and the scoring are the training's own (``build_gan``, ``train_on_batch``, ``predict_ab``,
``BatchScorer``), on random images of the run's size, at its batch sizes, on its device, with the threads this
process was given. Run in a process of its own (``python -m utils.train.step_timing``, as the plan does), it prints
one JSON line; nothing is written.

    python -m utils.train.step_timing --profile demo -p image_size=128
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from utils.core.config import parse_overrides, resolve_params
from utils.core.errors import run_command
from utils.core.parameters import RunParams
from utils.core.processes import die_with_parent

WARM_UP_STEPS = 2  # the first steps allocate and pick kernels: slower than the rest
MIN_TIMED_STEPS = 3
MIN_TIMED_S = 0.5  # timed steps go on until both minimums are met ...
MAX_TIMED_S = 10.0  # ... or this long has passed (one very slow step is enough then)


@dataclass(frozen=True)
class StepTimes:
    """Seconds per training step (one global batch of ``batch_size``) and per predicted and scored image."""

    train_step_s: float
    predict_image_s: float
    device: str
    threads: int


def timed(run_once: Callable[[], None]) -> float:
    """The mean seconds of ``run_once`` after the warm-up, within the limits above."""
    for _ in range(WARM_UP_STEPS):
        run_once()
    started, count = time.perf_counter(), 0
    while True:
        run_once()
        count += 1
        elapsed = time.perf_counter() - started
        if (count >= MIN_TIMED_STEPS and elapsed >= MIN_TIMED_S) or elapsed >= MAX_TIMED_S:
            return elapsed / count


def time_steps(params: RunParams) -> StepTimes:
    """Time the run's training step and its prediction with scoring, on random images (the weights' values do not
    change the time: the encoder starts untrained here, so nothing is downloaded)."""
    import torch  # here: the plan reads StepTimes without importing torch

    from utils.imaging.scoring import BatchScorer, predict_ab, truth_and_inputs
    from utils.nets.environment import select_device
    from utils.train.gan import build_gan, train_on_batch

    device = select_device(params)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as training sets it (utils/train/batches.py)
    gan = build_gan(dataclasses.replace(params, pretrained=False), device)
    generator = torch.Generator().manual_seed(0)
    size = params.image_size
    batch = torch.randint(0, 256, (params.batch_size, size, size, 3), dtype=torch.uint8, generator=generator)
    flips = torch.zeros(params.batch_size, dtype=torch.bool)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None

    def train_step() -> None:
        train_on_batch(gan, batch, flips)
        synchronize()

    scorer = BatchScorer(params.compile_metrics, params.eval_batch_size, params.gamut)
    images = torch.randint(0, 256, (params.eval_batch_size, size, size, 3), dtype=torch.uint8, generator=generator)

    def predict_and_score() -> None:
        rgb_true, l_norm, _ = truth_and_inputs(images.to(device))
        scorer(rgb_true, l_norm, predict_ab(gan.generator_module.eval(), l_norm, gan.amp_dtype, gan.memory_format))
        synchronize()

    train_step_s = timed(train_step)
    predict_image_s = timed(predict_and_score) / params.eval_batch_size
    return StepTimes(train_step_s, predict_image_s, str(device), torch.get_num_threads())


def work(args: argparse.Namespace) -> int:
    """``python -m utils.train.step_timing``'s work, once its arguments are parsed."""
    die_with_parent()  # started by the plan: it ends with the pipeline
    times = time_steps(resolve_params(args.profile, parse_overrides(args.param)))
    print(json.dumps(dataclasses.asdict(times)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.train.step_timing", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    return run_command(lambda: work(args))


if __name__ == "__main__":
    sys.exit(main())
