"""Checkpoint files: the format, the one builder of a checkpoint, resume checks, safe reads, RNG states, retention,
and a trained generator read back.

A model's directory ``<run_dir>/models/seed<S>/<model>/`` (S: its training seed) holds ``checkpoint_last.pt`` (everything a
resume needs), ``best.pt`` (the generator with the best validation CIEDE2000, and its record) and,
when ``keep_every`` is set, ``checkpoint_epoch_NNN.pt`` for every k-th epoch.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from utils.core.errors import UnreadableFileError
from utils.core.parameters import RunParams, changed_training_parameters
from utils.core.run_dir import atomic_write

if TYPE_CHECKING:
    from utils.nets.models import UNetGenerator

CHECKPOINT_FORMAT = "cross-domain-colorization/2"  # 2: mid-epoch position, validation CIEDE2000
CHECKPOINT_REMEDY = (
    "train the model again (its train stage; resume=False for a checkpoint_last.pt), or fetch the file again "
    "from where it came (a Kaggle run: python -m utils.kaggle output)"
)


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves a half-written checkpoint, and the previous
    file is replaced only once the new one is complete. A failed write (a full disk) raises AtomicWriteError
    naming ``path``, and leaves no temporary file."""
    # through a Python file: given a path, torch's own writer reports a failed write without the system's reason
    with atomic_write(path) as temporary, temporary.open("wb") as handle:
        torch.save(obj, handle)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint of this kit (``weights_only=True``) into CPU memory; anything else is a clear error.

    Always on the CPU: ``load_state_dict`` moves networks' and optimisers' states to their parameters'
    device, and the RNG states must stay on the CPU (a numpy key on a GPU cannot be restored)."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(f"{path}: no such checkpoint; {CHECKPOINT_REMEDY}")
    try:
        with warnings.catch_warnings():  # torch warns about the odd files it then refuses: the error below says it
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # torch's own message is not passed on: for a damaged or hostile file its advice (weights_only=False) is wrong
        raise UnreadableFileError(
            f"{path}: damaged, or not a checkpoint of this kit ({unreadable_because(err)}); nothing in it was "
            f"loaded; {CHECKPOINT_REMEDY}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UnreadableFileError(f"{path}: checkpoint format {found!r}, this kit reads {CHECKPOINT_FORMAT!r}")
    return ckpt


def unreadable_because(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in a few words of the kit's own."""
    if isinstance(err, pickle.UnpicklingError):
        return "it holds something other than tensors and plain values"
    if isinstance(err, EOFError):
        return "the file ends too early"
    if isinstance(err, RuntimeError) and "zip archive" in str(err):
        return "not a complete torch archive: cut short, or another kind of file"
    return type(err).__name__


def keep_epoch_copy(last_path: Path, epoch: int) -> Path:
    """Retention: ``checkpoint_epoch_NNN.pt`` beside ``checkpoint_last.pt``, a hard link when the
    file system allows (no second copy of ~350 MB), written under a temporary name first."""
    kept = last_path.with_name(f"checkpoint_epoch_{epoch:03d}.pt")
    with atomic_write(kept) as temporary:
        temporary.unlink()  # its unique name, for the link
        try:
            os.link(last_path, temporary)
        except OSError:
            shutil.copyfile(last_path, temporary)
    return kept


def rng_states() -> dict[str, Any]:
    state = np.random.get_state()
    return {
        "python": list(random.getstate()[1]),
        "numpy": [state[0], torch.from_numpy(state[1].copy()), *state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore :func:`rng_states`; its tensors may sit on any device (``.numpy()`` needs a CPU tensor)."""
    random.setstate((3, tuple(states["python"]), None))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.cpu().numpy(), *rest))
    torch.set_rng_state(states["torch"].cpu())
    if torch.cuda.is_available():  # a run resumed on fewer GPUs restores the ones it has
        for index, state in enumerate(states["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state.cpu(), index)


# --- what a checkpoint records -------------------------------------------------------------------


@dataclass
class TrainingState:
    """Where a model's training stands: what a checkpoint records and a resume restores."""

    epoch: int  # the epoch in progress
    batch: int  # batches of it already trained
    step: int  # optimiser steps so far
    best_val: float  # lowest validation CIEDE2000 so far
    sums: torch.Tensor  # this epoch's loss sums [D, G_GAN, G_L1] so far
    history: list[dict[str, Any]]  # one row per finished epoch

    @classmethod
    def fresh(cls, device: torch.device) -> TrainingState:
        return cls(1, 0, 0, float("inf"), torch.zeros(3, device=device), [])


@dataclass(frozen=True)
class ModelFiles:
    """One trained model's directory and files (``run_dir/models/seed<S>/<domain>/``)."""

    domain: str
    out_dir: Path

    @property
    def last(self) -> Path:
        return self.out_dir / "checkpoint_last.pt"

    @property
    def best(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def history(self) -> Path:
        return self.out_dir / "history.csv"


@dataclass(frozen=True)
class TrainingImages:
    """What a model trains on, as its checkpoints record it: a resume on other data is refused."""

    count: int
    sha1: str  # over the manifest rows of the model's training shards (see shards.training_data_sha1)


def build_checkpoint(
    state: TrainingState,
    files: ModelFiles,
    params: RunParams,
    world_size: int,
    data: TrainingImages,
    networks: dict[str, Any],
    epoch_sums: torch.Tensor | None = None,
    validation: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Every checkpoint the kit writes, built here: the epochs completed, where the next batch starts, the data,
    ``validation``'s scores when the epoch was validated, then ``networks`` (state dicts).

    With ``epoch_sums`` (the epoch's loss sums so far) it is a resumable checkpoint (``checkpoint_last.pt``) and
    also holds every RNG state; without, a record of the networks alone (``best.pt``: the generator).
    """
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "model": files.domain,
        "image_size": params.image_size,
        "epoch": state.epoch - 1,
        "step": state.step,
        "best_val": state.best_val,
        "params": params.to_dict(),
        "position": {
            "epoch": state.epoch,
            "batch": state.batch,
            "world_size": world_size,
            "train_images": data.count,
            "seed": params.seed,
        },
        "data_sha1": data.sha1,
    }
    checkpoint |= validation or {}
    if epoch_sums is not None:
        checkpoint |= {"epoch_sums": epoch_sums, "rng": rng_states()}
    return checkpoint | networks


def check_resumable(
    ckpt: dict[str, Any], files: ModelFiles, params: RunParams, world_size: int, data: TrainingImages
) -> None:
    """A ValueError naming ``files.last`` unless its checkpoint ``ckpt`` fits this run: the parameters that shape
    training, the model and image size, the data, and (mid-epoch) the process count."""
    position = ckpt["position"]
    if changed := changed_training_parameters(ckpt["params"], params):
        differences = "; ".join(f"{name} = {saved!r} there, {now!r} now" for name, (saved, now) in changed.items())
        raise ValueError(
            f"{files.last}: trained with other values of the parameters that shape training ({differences}). "
            "A resumed training keeps them: resume with the checkpoint's values, or start afresh with resume=False "
            "(this model's checkpoints are replaced) or in a new run directory"
        )
    if ckpt["model"] != files.domain or ckpt["image_size"] != params.image_size:
        raise ValueError(
            f"{files.last}: trained for model {ckpt['model']!r} at {ckpt['image_size']} px; "
            f"this run asks for {files.domain!r} at {params.image_size} px (set resume=False to start over)"
        )
    if ckpt.get("data_sha1", data.sha1) != data.sha1:  # checkpoints before the digest: the count check alone
        raise ValueError(
            f"{files.last}: trained on other data than the run directory now holds for model {files.domain!r} "
            f"(the data changed: its manifest rows have digest {data.sha1}, the checkpoint's {ckpt['data_sha1']}); "
            "set resume=False to start over"
        )
    if position["train_images"] != data.count:
        raise ValueError(
            f"{files.last}: trained on {position['train_images']} images, the run directory now has "
            f"{data.count} for model {files.domain!r} (set resume=False to start over)"
        )
    if position["batch"] and position["world_size"] != world_size:
        raise ValueError(
            f"{files.last}: saved in the middle of an epoch by {position['world_size']} process(es); "
            f"resume it with the same number of GPUs (parameter 'gpus'), or set resume=False"
        )


def load_generator(path: str | Path, device: torch.device) -> tuple[UNetGenerator, dict]:
    """A trained generator (eval mode) from ``best.pt`` or ``checkpoint_last.pt``, and its record."""
    from utils.nets.models import (
        UNetGenerator,  # here: timm is slow to import, and the notebooks without a model skip it
    )

    ckpt = load_checkpoint(path)
    generator = UNetGenerator(pretrained=False)
    generator.load_state_dict(ckpt["generator"])
    return generator.to(device).eval(), ckpt
