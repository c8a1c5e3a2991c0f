"""Checkpoints resume on any device: what a GPU run loads must restore without ``.numpy()`` on the GPU
(tests/helpers.py's AcceleratorTensor stands in for a CUDA tensor; test_train resumes a whole run with it)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import AcceleratorTensor, on_accelerator
from utils.nets import checkpoints


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.random()), float(torch.rand(()))


def test_rng_states_held_on_an_accelerator_restore() -> None:
    saved = checkpoints.rng_states()
    expected = draws()
    checkpoints.set_rng_states(on_accelerator(saved))
    assert draws() == expected


def test_a_checkpoint_is_read_into_cpu_memory(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_last.pt"
    checkpoints.save_atomic({"format": checkpoints.CHECKPOINT_FORMAT, "x": torch.ones(2)}, path)
    asked = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: asked.append(k.get("map_location")) or real_load(*a, **k))
    assert checkpoints.load_checkpoint(path)["x"].device.type == "cpu"
    assert asked == ["cpu"]


def test_the_stand_in_refuses_numpy_like_a_gpu_tensor() -> None:
    with pytest.raises(TypeError, match="cuda"):
        torch.zeros(1).as_subclass(AcceleratorTensor).numpy()
    assert isinstance(torch.zeros(1).as_subclass(AcceleratorTensor).cpu().numpy(), np.ndarray)
