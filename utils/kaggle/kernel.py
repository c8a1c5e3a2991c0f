"""What the bundled notebook calls inside the Kaggle kernel: the output it keeps, and a new version continuing the
previous one's training from its output."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from utils.core.config import resolve_params
from utils.core.errors import KaggleSetupError
from utils.core.run_dir import read_run_record

PREVIOUS_OUTPUT_DEPTH = 4  # /kaggle/input/<slug>/ or /kaggle/input/notebooks/<user>/<slug>/, and a level to spare


def run_is_partial(run_dir: str | Path) -> bool:
    """Whether the time budget stopped the run's training (run.json's ``partial``)."""
    return bool(read_run_record(run_dir).get("partial"))


def prune_for_output(run_dir: str | Path) -> list[Path]:
    """Remove the data shards and every checkpoint but ``best.pt``, and ``checkpoint_last.pt`` too unless
    the run is partial (a new version resumes from it); returns what was removed."""
    run_dir = Path(run_dir)
    kept = {"best.pt", "checkpoint_last.pt"} if run_is_partial(run_dir) else {"best.pt"}
    doomed = [*(run_dir / "data").glob("*.npy"), *(run_dir / "data").glob(".*")]
    doomed += [p for p in (run_dir / "models").rglob("*.pt") if p.name not in kept]
    freed = sum(p.stat().st_size for p in doomed if p.is_file())
    for path in doomed:
        path.unlink()
    print(
        f"removed {len(doomed)} files ({freed / 2**20:.0f} MiB): data shards and "
        f"{'checkpoints no resume needs' if 'checkpoint_last.pt' in kept else 'resumable checkpoints'}"
    )
    return doomed


# --- continuing the previous version ------------------------------------------------


def find_previous_output(input_root: str | Path, kernel_id: str) -> Path:
    """The previous version's output under ``input_root``: a run directory (``run.json`` beside ``models/``)
    whose path names this kernel's slug. Searched to a few levels, since layouts differ
    (``/kaggle/input/<slug>/``, ``/kaggle/input/notebooks/<user>/<slug>/``)."""
    root, slug = Path(input_root), kernel_id.split("/")[-1]
    found = []
    for folder, subfolders, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        if "run.json" in files and "models" in subfolders and slug in Path(folder).parts:
            found.append(Path(folder))
            subfolders.clear()
        elif depth >= PREVIOUS_OUTPUT_DEPTH:
            subfolders.clear()
    if not found:
        raise KaggleSetupError(
            f"continue: no output of {kernel_id} under {root} (a folder named {slug!r} holding run.json and "
            "models/); push with --continue lists the kernel in kernel_sources so that Kaggle attaches its last "
            "version's output: was that version's run saved, and is this the same kernel?"
        )
    if len(found) > 1:
        raise KaggleSetupError(f"continue: several outputs of {kernel_id} under {root}: {', '.join(map(str, found))}")
    return found[0]


def seed_from_previous_output(run_dir: str | Path, kernel_id: str, profile: str, overrides: dict[str, Any]) -> Path:
    """Copy the previous version's models (checkpoints, histories, samples) and run.json into ``run_dir``, so
    that the pipeline resumes every model where it stopped. The data is prepared again from the datasets;
    resuming checks it is the data the checkpoints were trained on."""
    params = resolve_params(profile, overrides)
    previous = find_previous_output(params.kaggle_input_root, kernel_id)
    run_dir = Path(run_dir)
    shutil.copytree(previous / "models", run_dir / "models", dirs_exist_ok=True)
    shutil.copy2(previous / "run.json", run_dir / "run.json")
    resumable = sorted(
        p.parent.relative_to(run_dir).as_posix() for p in (run_dir / "models").rglob("checkpoint_last.pt")
    )
    print(f"continuing from {previous}: {len(resumable)} resumable model(s) ({', '.join(resumable) or 'none'})")
    return previous


def show_results(run_dir: str | Path) -> None:
    """report.md and its figures, inline (the report's relative image links do not render here)."""
    from IPython.display import Image, Markdown, display

    run_dir = Path(run_dir)
    report = (run_dir / "report.md").read_text()
    display(Markdown(re.sub(r"!\[[^\]]*\]\([^)]*\)\n?", "", report)))
    for figure in sorted((run_dir / "figures").glob("*.png")):
        display(Markdown(f"**{figure.stem}**"), Image(filename=str(figure)))
