"""What the benchmarks share: timing that waits for the device, a deadline, the machine's names for a device, and
the baseline most of them measure the kit against (the tutorial recipe's per-sample dataset).

- :func:`synchronizer`, :func:`timed`, :func:`median_seconds`: a figure is the time of work *done*: on a GPU the
  queued kernels are waited for before the clock starts and before it stops.
- :class:`Deadline`: ``--time-limit`` as an object; a row that would start past it is not started.
- :func:`gpu_name`, :func:`device_label`, :func:`cpu_count`: read from :func:`benchmarks.results.describe_machine`,
  the description every result file carries, never built by hand.
- :class:`TutorialDataset`: per sample, on the CPU, the recipe the paper's kit replaces: a file opened and resized
  with PIL (or an array), a random flip if asked, ``skimage.color.rgb2lab``, then ``L/50 - 1`` and ``ab/110``.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from benchmarks.results import describe_machine

T = TypeVar("T")


def no_sync() -> None:
    """The CPU computes as it goes: nothing to wait for."""


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work: ``torch.cuda.synchronize`` on a GPU, nothing otherwise."""
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else no_sync


def timed(run: Callable[[], T], sync: Callable[[], None] = no_sync) -> tuple[float, T]:
    """Seconds ``run`` takes, with the device synced before and after; and its result."""
    sync()
    started = time.perf_counter()
    result = run()
    sync()
    return time.perf_counter() - started, result


def median_seconds(run: Callable[[], T], repeats: int, sync: Callable[[], None] = no_sync) -> tuple[float, T]:
    """The median of ``repeats`` :func:`timed` runs (the 2-core machine is noisy), and the last run's result."""
    times, result = [], None
    for _ in range(repeats):
        seconds, result = timed(run, sync)
        times.append(seconds)
    return statistics.median(times), result


@dataclass
class Deadline:
    """``seconds`` from its creation (``math.inf``: none)."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def at(self) -> float:
        """The deadline on the ``time.monotonic()`` clock."""
        return self.started + self.seconds

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started) if math.isfinite(self.seconds) else math.inf

    def passed(self) -> bool:
        return self.left() <= 0


@functools.cache
def machine() -> dict[str, Any]:
    """This machine, as a result file records it (:func:`benchmarks.results.describe_machine`)."""
    return describe_machine()


def gpu_name(index: int = 0) -> str | None:
    """The name of CUDA device ``index``, None without one."""
    gpus = machine()["gpus"]
    return gpus[index] if index < len(gpus) else None


def cpu_count() -> int:
    return machine()["cpu_count"] or 1


def device_label(device: torch.device | str) -> str:
    """A device as a result file's settings name it: the GPU's name, or ``CPU (<n> cores)`` (the cores usable)."""
    device = torch.device(device)
    if device.type == "cuda":
        return gpu_name(device.index or 0) or "none"
    return f"CPU ({machine()['cpus_usable']} cores)"


def tutorial_lab(rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One uint8 RGB image (H x W x 3) as the tutorial converts it: rgb2lab on the CPU, L/50 - 1 and ab/110."""
    from skimage.color import rgb2lab

    lab = torch.from_numpy(rgb2lab(rgb).astype("float32")).permute(2, 0, 1)
    return lab[[0]] / 50.0 - 1.0, lab[[1, 2]] / 110.0


class TutorialDataset(torch.utils.data.Dataset):
    """The widely used tutorial recipe, for every sample of every epoch: ``images`` are files (opened with PIL,
    RGB, resized to ``size`` x ``size`` bicubic) or uint8 arrays (a shard, read as they are); with ``flip``, a
    random horizontal flip; then :func:`tutorial_lab`."""

    def __init__(self, images: Sequence[Path] | np.ndarray, size: int | None = None, flip: bool = False) -> None:
        self.images, self.size, self.flip = images, size, flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.images[i]
        if isinstance(item, Path):
            from PIL import Image

            with Image.open(item) as image:
                rgb = np.array(image.convert("RGB").resize((self.size, self.size), Image.BICUBIC))
        else:
            rgb = np.array(item)
        if self.flip and np.random.rand() < 0.5:
            rgb = rgb[:, ::-1]
        return tutorial_lab(rgb)
