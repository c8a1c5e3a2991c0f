"""Run the stage notebooks in order with papermill, into one run directory.

    python -m utils.pipeline --profile demo --run-dir runs/demo [-p name=value ...]

Parameters are validated before any notebook starts. Rendered notebooks land in
``<run_dir>/notebooks/``; a failing cell stops the run and names the notebook, cell and error.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import ParameterError, parse_overrides, resolve_params

KIT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = KIT_ROOT / "notebooks"


@dataclass(frozen=True)
class Step:
    notebook: str  # file name in notebooks/
    rendered: str  # file name in <run_dir>/notebooks/
    parameters: dict[str, Any]


class StageFailed(RuntimeError):
    """A notebook cell raised; the message names notebook, cell and error."""


def plan_steps(profile: str, run_dir: str | Path, overrides: dict[str, Any]) -> list[Step]:
    """Validate everything, then list the notebooks to run: prepare, one train per model, evaluate, figures,
    colorize (sample images)."""
    params = resolve_params(profile, overrides)
    common = {"profile": profile, "run_dir": str(Path(run_dir).resolve()), "overrides": dict(overrides)}
    steps = [Step("01_prepare_data.ipynb", "01_prepare_data.ipynb", common)]
    steps += [Step("02_train.ipynb", f"02_train_{m}.ipynb", {**common, "domain": m}) for m in params.models]
    steps += [
        Step("03_evaluate.ipynb", "03_evaluate.ipynb", common),
        Step("04_figures.ipynb", "04_figures.ipynb", common),
        # the last model trained colorizes the sample images (mixed, in the paper's order)
        Step("05_colorize.ipynb", "05_colorize.ipynb", {**common, "model": params.models[-1]}),
    ]
    return steps


def run_step(step: Step, run_dir: Path, progress: bool = True) -> Path:
    """Execute one notebook with papermill; raise StageFailed naming the failing cell."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / step.rendered
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / step.notebook),
            str(output),
            parameters=step.parameters,
            cwd=str(KIT_ROOT),
            progress_bar=progress,
            kernel_name="python3",
        )
    except PapermillExecutionError as err:
        source = (err.source or "").strip().splitlines()
        first_line = source[0] if source else ""
        raise StageFailed(
            f"notebook {step.notebook} ({step.rendered}) failed in cell {err.cell_index} "
            f"[{first_line}]: {err.ename}: {err.evalue}\n"
            f"the rendered notebook, with the traceback, is at {output}"
        ) from None
    return output


def run_pipeline(
    profile: str,
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Run every stage; returns the rendered notebooks' paths."""
    overrides = dict(overrides or {})
    steps = plan_steps(profile, run_dir, overrides)  # raises before any work
    run_dir = Path(run_dir).resolve()
    rendered = []
    started = time.perf_counter()
    for i, step in enumerate(steps, 1):
        label = step.rendered.removesuffix(".ipynb")
        print(f"[{i}/{len(steps)}] {label} ...", flush=True)
        t0 = time.perf_counter()
        rendered.append(run_step(step, run_dir, progress))
        print(f"[{i}/{len(steps)}] {label} done in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"pipeline finished in {time.perf_counter() - started:.0f} s; results in {run_dir}")
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", help="demo or paper")
    parser.add_argument("--run-dir", default=None, help="default: runs/<profile>")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a profile parameter, e.g. -p epochs=5 (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    run_dir = args.run_dir or f"runs/{args.profile}"
    try:
        run_pipeline(args.profile, run_dir, parse_overrides(args.param), progress=not args.no_progress)
    except (ParameterError, StageFailed) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ParameterError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
