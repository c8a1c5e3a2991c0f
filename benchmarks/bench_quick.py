"""The CPU recipe on your own folders: the ``quick`` profile's whole run, and its plan's estimate against the time
the run then took.

    python benchmarks/bench_quick.py -p 'domains={"clipart": "...", "photo": "...", "stamp": "..."}' [--json PATH]

Runs ``python -m utils.pipeline --profile quick --run-dir <fresh> --no-progress`` with the ``-p`` overrides given,
once. The pipeline prints its plan after prepare, with the estimated time of the rest of the run; the real time
of that rest runs from the moment the plan is printed to the pipeline's end. Figures: the wall time of the whole
run (target: under 10 minutes on a 2-core CPU), the estimate, the real time from the plan, and their ratio (the
kit's figure over the baseline's: the estimate over the real time; target 0.5-2x), and each domain's images.

The committed result (a 2-core CPU; the three domains from Debian's packages openclipart-png, the desktop
wallpapers and tuxpaint-stamps-default, laid out by ``--debian-domains``):

    python benchmarks/bench_quick.py --debian-domains runs/quick-domains --json benchmarks/measured/bench_quick_cpu.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import children  # noqa: E402
from benchmarks.results import Results, add_json_argument  # noqa: E402

PLAN_LINE = "estimated time from here:"  # the plan's line with the estimate (utils/plan.py format_plan)
RECIPE_TARGET_S = 600.0
STOP_GRACE_S = 10.0
# Debian packages' images, a few hundred per domain, one sub-folder per group: (domain, root, pattern, per group)
DEBIAN_SOURCES = (
    ("clipart", "/usr/share/openclipart/png", "*.png", 50),  # openclipart-png: categories
    ("photo", "/usr/share/wallpapers", "*.jpg", 0),  # plasma-workspace-wallpapers: each wallpaper's sizes
    ("stamp", "/usr/share/tuxpaint/stamps", "*.png", 25),  # tuxpaint-stamps-default: stamp categories
)
CLIPART_GROUPS = ("animals", "food", "buildings", "plants", "people", "transportation")


def debian_domains(folder: Path) -> dict[str, str]:
    """Links to Debian's packaged images in ``folder``: one domain per package, one sub-folder per group (a clip art
    category, a wallpaper with all its sizes, a stamp category), a few hundred images each."""
    domains = {}
    for domain, root, pattern, per_group in DEBIAN_SOURCES:
        target = folder / domain
        groups = [Path(root) / g for g in CLIPART_GROUPS] if domain == "clipart" else sorted(Path(root).iterdir())
        for group in (g for g in groups if g.is_dir()):
            files = sorted(group.rglob(pattern))[: per_group or None]
            for i, file in enumerate(files):
                link = target / group.name / f"{i:04d}{file.suffix}"
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to(file)
        domains[domain] = str(target)
    return domains


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter override for the pipeline (repeatable): domains, at least")  # fmt: skip
    parser.add_argument("--debian-domains", type=Path, default=None,
                        help="lay out three domains from Debian's image packages in this folder, and use them")  # fmt: skip
    add_json_argument(parser)
    args = parser.parse_args(argv)
    if args.debian_domains:
        args.param.append(f"domains={json.dumps(debian_domains(args.debian_domains))}")
    if not any(pair.startswith("domains=") for pair in args.param):
        parser.error("give the domains: -p 'domains={...}', or --debian-domains FOLDER")
    return args


def run_recipe(results: Results, run_dir: Path, params: list[str]) -> int:
    command = [sys.executable, "-m", "utils.pipeline", "--profile", "quick", "--run-dir", str(run_dir), "--no-progress"]
    command += [arg for pair in params for arg in ("-p", pair)]
    print(f"$ {' '.join(command)}", flush=True)
    planned_at: list[float] = []

    def echo(line: str) -> None:
        print(f"   {line}", flush=True)
        if PLAN_LINE in line and not planned_at:
            planned_at.append(time.perf_counter())

    finished = children.run_command(command, 3 * RECIPE_TARGET_S, echo, signal.SIGINT, STOP_GRACE_S)
    ended = time.perf_counter()
    if finished.code != 0 or not planned_at:
        last = finished.lines[-1].strip() if finished.lines else "(no output)"
        results.not_measured("the quick profile's whole run", "s", f"the pipeline did not finish: {last}")
        return finished.code or 1
    record = json.loads((run_dir / "run.json").read_text())
    plan = record["plan"]
    for domain, counts in plan["test"].items():
        images = json.loads((run_dir / "data" / "prepared.json").read_text())["groups"][domain]
        results.add(f"images of {domain} (train + test)", sum(split["images"] for split in images.values()), "images",
                    note=f"{sum(split['groups'] for split in images.values())} groups; {counts['groups']} test groups")  # fmt: skip
    results.add("the quick profile's whole run, wall time", finished.seconds, "s", f"< {RECIPE_TARGET_S:.0f} s",
                finished.seconds < RECIPE_TARGET_S, note=f"{len(plan['models'])} models")  # fmt: skip
    real = ended - planned_at[0]
    results.add("the plan's estimate of the rest of the run", plan["estimated_s"], "s", note=plan["estimated_how"])
    results.add("the rest of the run, real (from the plan to the end)", real, "s")
    ratio = plan["estimated_s"] / real
    results.add("estimate / real", ratio, "x", "0.5-2x", 0.5 <= ratio <= 2.0)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = Results("bench_quick", args.json)
    results.describe(profile="quick", overrides=" ".join(args.param))
    scratch = Path(tempfile.mkdtemp(prefix="bench_quick_"))
    try:
        with children.stopping_on(signal.SIGTERM, signal.SIGINT):
            return run_recipe(results, scratch / "run", args.param)
    finally:
        results.write()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
