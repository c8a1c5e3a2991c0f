"""The machine a stage runs on: device and precision, package versions, the commit, and run.json's record of them.

torch is imported by the functions that need it, so that importing this module stays cheap.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from utils.core.config import command_for_profile
from utils.core.errors import ParameterError
from utils.core.parameters import RunParams
from utils.core.profiles import CPU_PROFILE, GPU_PROFILES
from utils.core.run_dir import locked_run_record, writes_run_dir

if TYPE_CHECKING:
    import torch


def on_kaggle() -> bool:
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ or Path("/kaggle/working").is_dir()


def check_device(params: RunParams) -> None:
    """``device`` = cuda needs a visible GPU: else a ParameterError naming it (torch is imported for cuda alone:
    the pipeline checks this before any notebook, without importing torch otherwise)."""
    if params.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ParameterError("parameter 'device' = 'cuda': CUDA was asked for but no GPU is visible")


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's name (``Intel(R) Xeon(R) Processor``), as Linux's /proc/cpuinfo gives it."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def check_profile_device(profile: str, params: RunParams, run_dir: str | Path, overrides: dict[str, Any]) -> None:
    """A profile meant for a GPU (``GPU_PROFILES``) on a machine without one is refused before any work, naming the
    CPU and the command to run instead (the ``CPU_PROFILE`` on the same data); an explicit ``device`` (cpu, or
    cuda, which :func:`check_device` checks) is the user's choice and passes."""
    if profile not in GPU_PROFILES or params.device != "auto":
        return
    import torch

    if torch.cuda.is_available():
        return
    if on_kaggle():
        raise ParameterError(
            f"profile {profile!r} is meant for a GPU, and this Kaggle session has none: in the "
            "notebook's Settings, choose the accelerator GPU T4 x2, then run it again"
        )
    raise ParameterError(
        f"profile {profile!r} is meant for a GPU, and this machine has none ({cpu_model()}, {cpu_cores()} cores); on a "
        f"CPU run the {CPU_PROFILE} profile: "
        f"`{command_for_profile(profile, CPU_PROFILE, run_dir, overrides)}`, or add -p device=cpu to run the {profile} profile on the CPU anyway"
    )


def select_device(params: RunParams) -> torch.device:
    check_device(params)
    return device_named(params.device)


def device_named(name: str) -> torch.device:
    """``auto`` (the GPU when there is one), ``cpu`` or ``cuda``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_settings(device: torch.device, precision: str = "auto") -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a GradScaler is needed) for training and inference.

    The CPU runs fp32. ``auto``: bf16 on GPUs with native bf16 (compute capability 8+), else fp16
    with a GradScaler (a T4 is 7.5: torch can emulate bf16 there, slowly, so its
    ``is_bf16_supported()`` is not asked).
    """
    import torch

    if device.type != "cuda" or precision == "fp32":
        return None, False
    if precision == "auto":
        precision = "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
    return (torch.bfloat16, False) if precision == "bf16" else (torch.float16, True)


def describe_devices() -> dict[str, Any]:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "kaggle": on_kaggle(),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "kornia",
    "scikit-image",
    "numpy",
    "pandas",
    "seaborn",
    "matplotlib",
    "papermill",
    "pillow",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@writes_run_dir("the record of {stage} in run.json")
def record_run(run_dir: str | Path, stage: str, profile: str, params: RunParams, **extra: Any) -> None:
    """Merge this stage's parameters, commit, package versions and devices into ``run.json``.

    ``stage`` is the record's key: "prepare", "train_<model>_seed<S>", "evaluate", "figures", "colorize".
    """
    # what takes a while (git, package metadata, the device query) before the lock is taken
    environment = {
        "profile": profile,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "devices": describe_devices(),
    }
    stage_record = {
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "parameters": params.to_dict(),
        **extra,
    }
    with locked_run_record(run_dir) as record:
        record.update(environment)
        if stage == "prepare":
            record["parameters"] = params.to_dict()
        record.setdefault("stages", {})[stage] = stage_record
