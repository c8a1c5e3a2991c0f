"""Render every measurement table of docs/performance.md from the committed result files.

    python benchmarks/render_docs.py [--check] [--page docs/performance.md] [--measured benchmarks/measured]

A measurement is one benchmark run, committed as ``benchmarks/measured/<name>.json`` (the layout of
benchmarks/results.py: ``benchmark``, ``context``, ``figures``, with ``machine``, ``date``, ``commit`` and
``command``). The page holds one block per measurement, between ``<!-- measured: <name> -->`` and
``<!-- /measured -->``; this script rewrites each block's body from its file: a table of every figure, naming
the machine, the date, the commit and the command. A measurement without a file reads "not measured yet", with
the command that makes the file (:data:`MEASUREMENTS`). ``--check`` changes nothing and exits 1 when the page and
the files disagree; a malformed file, or a block or file without the other, exits 2 naming it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import report_excerpt  # noqa: E402
from utils.core.run_dir import write_text_atomic  # noqa: E402

KIT_ROOT = Path(__file__).resolve().parent.parent
PAGE = KIT_ROOT / "docs" / "performance.md"
EXCERPT_PAGE = KIT_ROOT / "docs" / "results.md"  # its report excerpt: benchmarks/report_excerpt.py
MEASURED_DIR = KIT_ROOT / "benchmarks" / "measured"
BLOCK = re.compile(r"<!-- measured: (?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /measured -->", re.DOTALL)
FIELDS = ("benchmark", "context", "figures", "machine", "date", "commit", "command")
FIGURE_FIELDS = ("name", "value", "unit", "target", "met", "note")

# Each measurement the page shows: the benchmark script and its arguments (``--json`` is added). "_cpu" runs on
# a machine without a GPU, "_cuda" on a GPU machine.
MEASUREMENTS: dict[str, tuple[str, str]] = {
    "bench_data_cpu": ("bench_data", ""),
    "bench_data_cuda": ("bench_data", ""),
    "bench_train_cpu": ("bench_train", ""),
    "bench_train_cuda": ("bench_train", "--compile"),
    "bench_concurrency_cpu": ("bench_concurrency", ""),
    "bench_concurrency_cuda": ("bench_concurrency", ""),
    "bench_metrics_cpu": ("bench_metrics", "--devices cpu"),
    "bench_metrics_cuda": ("bench_metrics", "--devices cuda"),
    "bench_gamut_cpu": ("bench_gamut", "--devices cpu --compile"),
    "bench_gamut_cuda": ("bench_gamut", "--devices cuda --compile"),
    "bench_colorize_memory_cpu": ("bench_colorize_memory", ""),
    "bench_statistics_cpu": ("bench_statistics", ""),
    "bench_near_duplicates_cpu": ("bench_near_duplicates", ""),
    "bench_near_duplicates_prepare_cpu": (
        "bench_near_duplicates",
        "--distinct 0 --group-hashes 0 --prepare-images 10000",
    ),
    "bench_demo_cpu": ("bench_demo", ""),
    "bench_demo_cuda": ("bench_demo", "-p device=cuda -p precision=fp16"),
    "bench_quick_cpu": ("bench_quick", "--debian-domains runs/quick-domains"),
    "bench_run_dir_cpu": ("bench_run_dir", "--run-dir runs/demo"),
    "gpu_check_cuda": ("gpu_check", ""),
}


class RenderError(ValueError):
    """A result file or the page cannot be rendered; the message names the file or the block."""


@dataclass(frozen=True)
class Measurement:
    """One committed result file."""

    path: Path
    payload: dict[str, Any]


def measuring_command(name: str) -> str:
    """The command that writes ``benchmarks/measured/<name>.json``."""
    script, args = MEASUREMENTS[name]
    return " ".join(
        part for part in (f".venv/bin/python benchmarks/{script}.py", args, f"--json benchmarks/measured/{name}.json")
        if part
    )  # fmt: skip


def load_measurement(path: Path) -> Measurement:
    """A result file, its layout checked."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RenderError(f"{path}: not a readable JSON file ({err})") from None
    missing = [name for name in FIELDS if not isinstance(payload, dict) or name not in payload]
    if missing:
        raise RenderError(f"{path}: missing {', '.join(missing)} (the layout of benchmarks/results.py)")
    for index, figure in enumerate(payload["figures"]):
        absent = [name for name in FIGURE_FIELDS if name not in figure]
        if absent:
            raise RenderError(f"{path}: figure {index} lacks {', '.join(absent)}")
    return Measurement(path, payload)


def cell(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def format_value(value: float | None) -> str:
    """A figure's value; a figure that could not be measured (``null`` in its file) reads "not measured"."""
    if value is None:
        return "not measured"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def pairs(mapping: dict[str, Any]) -> str:
    return "; ".join(f"{key}: {value}" for key, value in mapping.items())


def render_body(name: str, measurement: Measurement | None) -> str:
    """A block's body: the figures' table with machine, date, commit and command, or "not measured yet"."""
    if measurement is None:
        return f"*Not measured yet.* Measure it with `{measuring_command(name)}`, then `make docs`.\n"
    data = measurement.payload
    met = {True: "yes", False: "**no**", None: ""}
    lines = [
        f"Measured on {cell(pairs(data['machine']))}, {cell(data['date'])}, commit `{cell(data['commit'])}`: "
        f"`{cell(data['command'])}`.",
        "",
    ]
    if data["context"]:
        lines += [f"Settings: {cell(pairs(data['context']))}.", ""]
    lines += ["| figure | value | unit | target | met | note |", "| --- | ---: | --- | --- | --- | --- |"]
    for figure in data["figures"]:
        row = (figure["name"], format_value(None if figure["value"] is None else float(figure["value"])), figure["unit"], figure["target"],
               met[figure["met"]], figure["note"])  # fmt: skip
        lines.append("| " + " | ".join(cell(part) for part in row) + " |")
    return "\n".join(lines) + "\n"


def measurements_in(folder: Path) -> dict[str, Measurement]:
    """Every result file of ``folder`` by name (none when the folder does not exist)."""
    return {path.stem: load_measurement(path) for path in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def render_page(text: str, folder: Path) -> str:
    """``text`` with every measured block rendered from ``folder``'s files.

    Raises:
        RenderError: a block named twice, a block with neither a file nor a command, a file without a block,
            or a malformed file.
    """
    found = measurements_in(folder)
    names = [match["name"] for match in BLOCK.finditer(text)]
    problems = [f"block {name!r} appears twice" for name in sorted({n for n in names if names.count(n) > 1})]
    problems += [f"block {name!r}: no result file {folder / name}.json and no command to measure it"
                 for name in names if name not in found and name not in MEASUREMENTS]  # fmt: skip
    problems += [f"{found[name].path}: no block '<!-- measured: {name} -->' shows it" for name in found
                 if name not in names]  # fmt: skip
    if problems:
        raise RenderError("; ".join(problems))
    return BLOCK.sub(
        lambda m: f"<!-- measured: {m['name']} -->\n{render_body(m['name'], found.get(m['name']))}<!-- /measured -->",
        text,
    )


def stale_blocks(text: str, folder: Path) -> list[str]:
    """The blocks whose body differs from what their files render (empty: the page agrees with the files)."""
    rendered = {m["name"]: m["body"] for m in BLOCK.finditer(render_page(text, folder))}
    return [m["name"] for m in BLOCK.finditer(text) if m["body"] != rendered[m["name"]]]


PARAMETERS_PAGE = KIT_ROOT / "docs" / "running.md"


def render_parameter_table(page: Path, check: bool) -> int:
    """Rewrite ``page``'s block between ``<!-- parameters -->`` and ``<!-- /parameters -->`` with the parameter table
    that the parameters' declarations render (utils/core/profiles.py); with ``check``, change nothing and return 1
    when the block differs from it. 2: the page has no such block."""
    from utils.core.profiles import parameter_table

    text = page.read_text()
    block = re.compile(r"(<!-- parameters -->\n).*?(<!-- /parameters -->)", re.DOTALL)
    rendered, found = block.subn(lambda m: m[1] + parameter_table() + m[2], text)
    if not found:
        print(f"error: {page}: no block '<!-- parameters -->' for the parameter table", file=sys.stderr)
        return 2
    if rendered != text and check:
        print(f"{page}: stale block parameters; run `make docs`", file=sys.stderr)
        return 1
    if rendered != text:
        write_text_atomic(page, rendered)
        print(f"{page}: parameter table rendered from the declarations")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page is stale")
    parser.add_argument("--page", type=Path, default=PAGE)
    parser.add_argument("--excerpt-page", type=Path, default=EXCERPT_PAGE, help="the page with the report excerpt")
    parser.add_argument("--measured", type=Path, default=MEASURED_DIR, help="the folder of result files")
    args = parser.parse_args(argv)
    renders = {args.page: lambda text: render_page(text, args.measured),
               args.excerpt_page: report_excerpt.render}  # its excerpt: benchmarks/measured/*.md  # fmt: skip
    for page, render in renders.items():
        text = page.read_text()
        try:
            rendered = render(text)
        except (RenderError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if rendered == text:
            continue
        if args.check:
            stale = stale_blocks(text, args.measured) if page == args.page else ["the report excerpt"]
            print(f"{page}: stale block(s) {', '.join(stale)}; run `make docs`", file=sys.stderr)
            return 1
        write_text_atomic(page, rendered)
        print(f"{page}: rendered from the committed files")
    return render_parameter_table(PARAMETERS_PAGE, args.check)


if __name__ == "__main__":
    sys.exit(main())
