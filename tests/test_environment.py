"""The machine a stage runs on: a device asked for that is not there is refused, naming the parameter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from utils import pipeline
from utils.core import config, errors
from utils.nets import environment


def test_cuda_without_a_gpu_is_refused_before_any_notebook(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    params = config.resolve_params("demo", {"device": "cuda"})  # validation alone never asks torch
    with pytest.raises(errors.ParameterError, match="parameter 'device' = 'cuda': CUDA was asked for"):
        environment.select_device(params)
    with pytest.raises(errors.ParameterError, match="parameter 'device' = 'cuda'"):
        pipeline.plan_steps("demo", tmp_path / "run", {"device": "cuda"})
    assert environment.select_device(config.resolve_params("demo", {"device": "cpu"})) == torch.device("cpu")
