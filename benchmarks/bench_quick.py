"""The CPU recipe on your own folders: the ``quick`` profile's whole run, and its plan's estimate against the time
the run then took.

    python benchmarks/bench_quick.py -p 'domains={"clipart": "...", "wallpaper": "...", "stamp": "..."}' [--json PATH]

Runs ``python -m utils.pipeline --profile quick --run-dir <fresh> --no-progress`` with the ``-p`` overrides given,
once. The pipeline prints its plan after prepare, with the estimated time of the rest of the run; the real time
of that rest runs from the moment the plan is printed to the pipeline's end. Figures: the wall time of the whole
run (target: under 10 minutes on a 2-core CPU), the estimate, the real time from the plan, and their ratio (the
kit's figure over the baseline's: the estimate over the real time; target 0.5-2x), and each domain's images.

The committed result (a 2-core CPU; the three domains from Debian's packages openclipart-png, the desktop
wallpapers (plasma-workspace-wallpapers, gnome-backgrounds, ...) and tuxpaint-stamps-default, laid out by
``--debian-domains``):

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
from utils.core.run_dir import read_run_record  # noqa: E402

PLAN_LINE = "estimated time from here:"  # the plan's line with the estimate (utils/run/plan.py format_plan)
RECIPE_TARGET_S = 600.0
STOP_GRACE_S = 10.0
CLIPART = ("/usr/share/openclipart/png", ("animals", "food", "buildings", "plants", "people", "transportation"), 60)
WALLPAPERS = ("/usr/share/wallpapers", "/usr/share/backgrounds")  # Plasma's (each in several sizes), GNOME's, ...
WALLPAPER_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
STAMPS = ("/usr/share/tuxpaint/stamps", 25)  # tuxpaint-stamps-default: stamp categories


def debian_domains(folder: Path) -> dict[str, str]:
    """Three domains of a few hundred images from Debian's image packages, in ``folder``, one sub-folder per group:
    clip art (openclipart-png: 60 files from each of 6 categories), desktop wallpapers (the largest file of each,
    cut into its four quarters: a wallpaper is one group) and drawn stamps (tuxpaint-stamps-default: 25 from each
    category). Files are copied: links that lead out of a domain's folder are not followed."""
    root, categories, per_category = CLIPART
    for category in categories:
        copy_files(sorted((Path(root) / category).rglob("*.png"))[:per_category], folder / "clipart" / category)
    stamps_root, per_category = STAMPS
    for category in sorted(p for p in Path(stamps_root).iterdir() if p.is_dir()):
        copy_files(sorted(category.rglob("*.png"))[:per_category], folder / "stamp" / category.name)
    for name, largest in wallpapers().items():
        quarters(largest, folder / "wallpaper" / name)
    return {domain: str(folder / domain) for domain in ("clipart", "wallpaper", "stamp")}


def copy_files(files: list[Path], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for i, file in enumerate(files):
        if not (target / f"{i:04d}{file.suffix}").exists():
            shutil.copyfile(file, target / f"{i:04d}{file.suffix}")


def wallpapers() -> dict[str, Path]:
    """Each wallpaper's largest file, by a name of its own: a Plasma wallpaper's folder holds it in several sizes."""
    found: dict[str, Path] = {}
    for root in map(Path, WALLPAPERS):
        for file in sorted(root.rglob("*")) if root.is_dir() else []:
            if file.suffix.lower() not in WALLPAPER_SUFFIXES or not file.is_file():
                continue
            relative = file.relative_to(root).parts
            name = relative[0] if root.name == "wallpapers" else "_".join(relative).rsplit(".", 1)[0]
            if name not in found or file.stat().st_size > found[name].stat().st_size:
                found[name] = file
    return found


def quarters(source: Path, target: Path) -> None:
    from PIL import Image

    target.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image = image.convert("RGB")
        width, height = image.size
        for i, (x, y) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
            box = (x * width // 2, y * height // 2, (x + 1) * width // 2, (y + 1) * height // 2)
            image.crop(box).save(target / f"{i}.jpg", quality=92)


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
    record = read_run_record(run_dir)
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
