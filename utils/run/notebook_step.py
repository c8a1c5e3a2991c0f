"""One step of the pipeline: a stage notebook run with papermill into the run directory, its kernel on sockets no
other process can take (utils/run/kernel_manager.py), and its start-up timing recorded in run.json."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.core.config import KIT_ROOT
from utils.core.run_dir import record_stage_fields

NOTEBOOKS_DIR = KIT_ROOT / "notebooks"
FAILURE_MARK = "step failed: "  # what a train process prints before run_step's message
# over TCP (where Unix sockets are missing) ipykernel warns on every start that its sockets are unencrypted
# (seven lines per run); its log at ERROR drops that, while a failing cell still comes back as the cell's error
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


@dataclass(frozen=True)
class Step:
    notebook: str  # file name in notebooks/
    rendered: str  # file name in <run_dir>/notebooks/
    parameters: dict[str, Any]
    stage: str  # its key in run.json's "stages": prepare, train_<model>_seed<S>, evaluate, figures, colorize

    @property
    def label(self) -> str:
        return self.rendered.removesuffix(".ipynb")

    @property
    def trained_name(self) -> str:
        """The model a train step makes: ``mixed_seed0``."""
        return self.stage.removeprefix("train_")


class StageFailed(RuntimeError):
    """A notebook cell raised; the message names notebook, cell and error."""


# --- one notebook ------------------------------------------------------------------------------


def run_step(step: Step, run_dir: Path, progress: bool = True, log_output: bool = False) -> Path:
    """Execute one notebook with papermill; raise StageFailed naming the failing cell."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from utils.run.kernel_manager import UnixSocketKernelManager  # imports jupyter_client: only once a notebook runs

    output = rendered_path(run_dir, step)
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / step.notebook),
            str(output),
            parameters=step.parameters,
            cwd=str(KIT_ROOT),
            progress_bar=progress,
            log_output=log_output,
            kernel_name="python3",
            kernel_manager_class=UnixSocketKernelManager,  # to nbclient: no TCP port race between kernels
            # every cell has run and every output has arrived: a graceful shutdown would only wait
            # 1-3 s for the interpreter's teardown (docs/performance.md, "Start-up of each notebook")
            shutdown_kernel="immediate",
            extra_arguments=KERNEL_ARGUMENTS,  # to nbclient, which starts the kernel with them
        )
    except PapermillExecutionError as err:
        first_line = (err.source or "").strip().splitlines()[:1]
        raise StageFailed(
            f"notebook {step.notebook} ({step.rendered}) failed in cell {err.cell_index} "
            f"[{''.join(first_line)}]: {err.ename}: {err.evalue}\n"
            f"the rendered notebook, with the traceback, is at {output}"
        ) from None
    except DeadKernelError:  # nbclient notices within a second or two; the cells after it did not run
        raise StageFailed(
            f"notebook {step.notebook} ({step.rendered}): its kernel died while running it (killed by a signal: "
            f"the out-of-memory killer, or a crash in native code); the rendered notebook is at {output}"
        ) from None
    return output


def rendered_path(run_dir: Path, step: Step) -> Path:
    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / step.rendered


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --- start-up cost -------------------------------------------------------------------------------


def notebook_timing(rendered: Path, launched: dt.datetime) -> dict[str, Any]:
    """What a notebook spent before its first useful work, and after its last cell, from papermill's timestamps.

    ``startup``: ``launch_s`` from the pipeline's call to papermill's notebook start (a new process,
    for the train notebooks), ``kernel_s`` to the kernel's first cell, ``imports_s`` through the
    imports and parameters cells, ``total_s`` all of it (None when the notebook stopped before its
    first useful cell). ``shutdown_s``: from the last cell's end to the kernel's shutdown.
    """
    nb = json.loads(rendered.read_text())
    cells = nb["cells"]
    times = [cell.get("metadata", {}).get("papermill", {}) for cell in cells]
    tags = [cell.get("metadata", {}).get("tags", []) for cell in cells]
    first_work = 1 + max(i for i, t in enumerate(tags) if "parameters" in t or "injected-parameters" in t)
    stamps = [nb["metadata"]["papermill"].get("start_time"), times[0].get("start_time")]
    stamps += [times[first_work].get("start_time") if first_work < len(cells) else None]
    stamps += [times[-1].get("end_time"), nb["metadata"]["papermill"].get("end_time")]
    started, kernel_ready, working, last_cell_done, ended = (s and dt.datetime.fromisoformat(s) for s in stamps)
    timing: dict[str, Any] = {"startup": None, "shutdown_s": None}
    if started and kernel_ready and working:
        timing["startup"] = {
            "launch_s": round((started - launched).total_seconds(), 2),
            "kernel_s": round((kernel_ready - started).total_seconds(), 2),
            "imports_s": round((working - kernel_ready).total_seconds(), 2),
            "total_s": round((working - launched).total_seconds(), 2),
        }
    if last_cell_done and ended:
        timing["shutdown_s"] = round((ended - last_cell_done).total_seconds(), 2)
    return timing


def record_timing(run_dir: Path, step: Step, rendered: Path, launched: dt.datetime) -> dict[str, float] | None:
    """``stages.<stage>``: ``startup``, ``shutdown_s`` and ``seconds`` (the notebook's wall time, launch
    to end) in run.json, after the notebook has recorded its stage; returns the start-up."""
    timing = notebook_timing(rendered, launched)
    record_stage_fields(run_dir, step.stage, **timing, seconds=round((now() - launched).total_seconds(), 1))
    return timing["startup"]


def describe_startup(startup: dict[str, float] | None) -> str:
    if not startup:
        return ""
    return (
        f" (start-up {startup['total_s']:.1f} s: launch {startup['launch_s']:.1f}, "
        f"kernel {startup['kernel_s']:.1f}, imports {startup['imports_s']:.1f})"
    )
