"""The effect of the gamut mapping on a finished run's scores: its own evaluation (the run's ``gamut``, chroma by
default) against a re-evaluation of the same models with ``gamut=clip``, per model and test domain.

    .venv/bin/python benchmarks/gamut_effect.py [--run-dir runs/demo] [--profile demo] [--scratch DIR]

Prints a markdown table of CIEDE2000, chroma SSIM and colorfulness ratio both ways, and whether every claim's
verdict is the same. The re-evaluation goes to ``--scratch`` (the run's data and models linked, not copied).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.core import config
from utils.core.domains import DEMO_DOMAINS, MIXED  # noqa: E402
from utils.core.run_dir import read_run_record  # noqa: E402
from utils.eval import evaluate  # noqa: E402

SHOWN = {"ciede2000": "CIEDE2000", "ssim_ab": "chroma SSIM", "colorfulness_ratio": "colorfulness ratio"}


def clipped_evaluation(run_dir: Path, profile: str, scratch: Path) -> Path:
    """The run's models evaluated again, with the parameters its evaluation ran with but gamut=clip, into ``scratch``."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for folder in ("data", "models"):
        (scratch / folder).symlink_to((run_dir / folder).resolve())
    shutil.copy(run_dir / "run.json", scratch / "run.json")
    recorded = read_run_record(run_dir)["stages"]["evaluate"]["parameters"]
    params = config.resolve_params(profile, {**recorded, "gamut": "clip"})  # the run's own evaluation, clipped
    evaluate.evaluate_models(params, scratch, show_progress=False)
    return scratch


def effect_table(mapped_dir: Path, clipped_dir: Path) -> pd.DataFrame:
    keys = ["model", "test_domain", "metric"]
    mapped, clipped = (pd.read_csv(d / "eval" / "summary.csv").set_index(keys) for d in (mapped_dir, clipped_dir))
    rows = []
    for model, domain in [(m, d) for m in (*DEMO_DOMAINS, MIXED) for d in DEMO_DOMAINS]:
        if (model, domain, "ciede2000") not in mapped.index:
            continue
        row = {"model": model, "test domain": domain}
        for metric, name in SHOWN.items():
            a, b = mapped.loc[(model, domain, metric), "mean"], clipped.loc[(model, domain, metric), "mean"]
            row[f"{name}: chroma / clip (difference)"] = f"{a:.3f} / {b:.3f} ({a - b:+.3f})"
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/demo"))
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "gamut_effect_clip")
    args = parser.parse_args()
    clipped = clipped_evaluation(args.run_dir, args.profile, args.scratch)
    print(effect_table(args.run_dir, clipped).to_markdown(index=False))
    verdicts = [
        pd.read_csv(d / "eval" / "claims.csv", keep_default_na=False)["verdict"] for d in (args.run_dir, clipped)
    ]
    print(f"\nevery claim's verdict the same both ways: {bool((verdicts[0] == verdicts[1]).all())}")


if __name__ == "__main__":
    main()
