"""The command lines the docs teach, each with every flag: ``python -m utils.pipeline``, ``utils.train`` (also
torchrun's ``-m utils.train``), ``utils.kaggle`` and ``utils.colorize``, run as a user runs them."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import KIT_ROOT
from utils.core.config import RunParams
from utils.train.launch import torchrun_command

FLAGS = {
    "utils.pipeline": {"--help", "--no-progress", "--param", "--plan", "--profile", "--run-dir", "-h", "-p"},
    "utils.train": {"--domain", "--help", "--param", "--profile", "--run-dir", "--seed-index", "-h", "-p"},
    "utils.kaggle": {"--continue", "--help", "--id", "--interval", "--no-check", "--param", "--profile", "-h", "-p"},
    "utils.colorize": {
        "--batch-megapixels", "--batch-size", "--checkpoint", "--compare", "--device", "--gamut", "--help", "--input",
        "--jpeg", "--model-size", "--output", "--overwrite", "-h",
    },
}  # fmt: skip
KAGGLE_COMMANDS = "{datasets,check,bundle,push,status,output}"


def help_text(*arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *arguments, "--help"], cwd=KIT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def flags_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", text))


@pytest.mark.slow  # a Python process per command line
@pytest.mark.parametrize("module", sorted(FLAGS))
def test_each_command_line_runs_as_a_module_with_every_flag(module: str) -> None:
    text = help_text(module)
    shown = flags_in(text)
    if module == "utils.kaggle":
        assert KAGGLE_COMMANDS in text, "python -m utils.kaggle lost a command"
    assert FLAGS[module] <= shown, f"python -m {module} lost flags: {sorted(FLAGS[module] - shown)}"


def test_torchrun_starts_the_training_module() -> None:
    command = torchrun_command(RunParams(), "runs/x", "mixed", 0, 2)
    assert command[command.index("-m", command.index("torch.distributed.run") + 1) + 1] == "utils.train"
