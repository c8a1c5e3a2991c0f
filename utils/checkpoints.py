"""Checkpoint files: the format, atomic writes, safe reads, RNG states, retention.

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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.errors import UnreadableFileError
from utils.run_dir import atomic_write

CHECKPOINT_FORMAT = "cross-domain-colorization/2"  # 2: mid-epoch position, validation CIEDE2000
CHECKPOINT_REMEDY = (
    "train the model again (its train stage; resume=False for a checkpoint_last.pt), or fetch the file again "
    "from where it came (a Kaggle run: python -m utils.kaggle output)"
)


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves a half-written checkpoint, and the previous
    file is replaced only once the new one is complete. A failed write (a full disk) raises AtomicWriteError
    naming ``path``, and leaves no temporary file."""
    with atomic_write(path) as temporary:
        torch.save(obj, temporary)


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
