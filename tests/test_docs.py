"""The README and docs/ as a user reads them: links resolve, commands parse, the parameter table is RunParams,
no build-machine path or history, the measured tables are the committed result files, and every Kaggle command
runs as shown against stub clients. Nothing here runs a pipeline: each command is parsed in-process."""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import io
import json
import re
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest

from benchmarks import render_docs, report_excerpt
from tests.helpers import KIT_ROOT
from tests.test_kaggle_client import KernelWorkerStatus, StubApi2, StubApi16
from utils.core import parameters
from utils.core.domains import model_names, resolve_domains
from utils.core.parameters import RunParams
from utils.core.profiles import PROFILES
from utils.eval import report
from utils.kaggle import commands as kit_kaggle

README = KIT_ROOT / "README.md"
PAGES = [README, *sorted((KIT_ROOT / "docs").glob("*.md"))]
TASK_PAGES = ("kaggle", "running", "results", "colorize", "performance", "development", "paper")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*$", re.MULTILINE)
ITALIC = re.compile(r"(?<![*\w])\*([^*\n]+?)\*(?![*\w])")
PYTHONS = ("python", "python3", ".venv/bin/python")
PAPERMILLS = ("papermill", ".venv/bin/papermill")
LEAKS = [r"/work/", r"/root/", r"/tmp/", r"/home/", r"/Users/", r"\.\./shared", r"shared/reference", r"shared/device"]
HISTORY = [r"\bissue \d+", r"\bUTC\b", r"before this change", r"\bon this machine\b", r"no GPU was lent",
           r"\b20\d\d-\d\d-\d\d\b"]  # fmt: skip


def read(path: Path) -> str:
    return path.read_text()


def without_code(text: str) -> str:
    """Prose only: fenced blocks and inline code removed."""
    return INLINE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        found.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return found


# --- links --------------------------------------------------------------------------------------------------


def broken_links(pages: dict[Path, str]) -> list[str]:
    """Every relative link whose file or #anchor does not exist."""
    problems = []
    for page, text in pages.items():
        for _, target in LINK.findall(without_code(text)):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if path and not dest.exists():
                problems.append(f"{page.name}: link to {target!r}: no file {path}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(pages.get(dest) or read(dest)):
                problems.append(f"{page.name}: link to {target!r}: no heading #{anchor} in {dest.name}")
    return problems


def unlinked_cross_references(pages: dict[Path, str]) -> list[str]:
    """An italic phrase that is the title of a section, but not a link to it."""
    titles = {re.sub(r"[`*]", "", h).strip().lower() for text in pages.values() for h in HEADING.findall(text)}
    problems = []
    for page, text in pages.items():
        prose = LINK.sub("", without_code(text))
        problems += [f"{page.name}: *{phrase}* names a section: make it a link"
                     for phrase in ITALIC.findall(prose) if phrase.strip().lower() in titles]  # fmt: skip
    return problems


# --- commands -----------------------------------------------------------------------------------------------


def shown_commands(text: str) -> list[list[str]]:
    """Every command of a bash block (lines joined at a trailing backslash) and of inline code, as argv lists,
    split at && ; | and without leading VAR=value assignments."""
    lines = [line for lang, body in FENCE.findall(text) if lang in ("bash", "sh", "shell")
             for line in body.replace("\\\n", " ").splitlines()]  # fmt: skip
    lines += [span for span in INLINE.findall(FENCE.sub("", text))
              if re.match(r"(\w+=\S+ )*(make |papermill |\.venv/bin/|python3? )", span)]  # fmt: skip
    commands = []
    for line in lines:
        tokens = shlex.split(line, comments=True)
        current: list[str] = []
        for token in [*tokens, "&&"]:
            if token in ("&&", ";", "||", "|"):
                while current and re.fullmatch(r"[A-Z_]+=\S*", current[0]):
                    current.pop(0)
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
    return commands


def parse_error(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """argparse's complaint about ``argv``, or None when it parses."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser.parse_args(argv)
    except SystemExit as exited:
        return None if exited.code == 0 else stderr.getvalue().strip().splitlines()[-1]  # 0: --help
    return None


class _Parsed(Exception):
    """Raised by a patched parse_args: the script's arguments parsed, so nothing of it runs."""


def benchmark_parse_error(script: str, argv: list[str]) -> str | None:
    """A benchmark script's complaint about ``argv``: its main() is run with parse_args stopping it right after
    parsing (the scripts build their parser inside main)."""
    module = importlib.import_module(f"benchmarks.{script}")
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    stderr = io.StringIO()
    takes_argv = bool(inspect.signature(module.main).parameters)
    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop), \
            mock.patch.object(sys, "argv", [f"{script}.py", *argv]), contextlib.redirect_stderr(stderr):  # fmt: skip
        try:
            module.main(argv) if takes_argv else module.main()
        except _Parsed:
            return None
        except SystemExit:
            return stderr.getvalue().strip().splitlines()[-1]
    return f"benchmarks/{script}.py: main() did not parse its arguments first"


def makefile_targets() -> dict[str, list[str]]:
    """target -> its recipe lines."""
    targets: dict[str, list[str]] = {}
    current = None
    for line in read(KIT_ROOT / "Makefile").splitlines():
        if match := re.match(r"^([\w.-]+):", line):
            current = targets.setdefault(match[1], [])
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
    return targets


def expand_make(argv: list[str]) -> tuple[list[str], list[list[str]]]:
    """``make T VAR=value`` -> (its targets, the recipes' commands with $(PY) and the variables filled in)."""
    targets = [a for a in argv[1:] if "=" not in a and not a.startswith("-")]
    variables = {"PY": ".venv/bin/python"} | dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    recipes = makefile_targets()
    commands = []
    for target in targets:
        for line in recipes.get(target, []):
            expanded = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], ""), line)
            commands.append(shlex.split(expanded))
    return targets, commands


def parameters_cell_names(notebook: Path) -> set[str]:
    cells = json.loads(read(notebook))["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    return {target.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for target in node.targets}


def command_problem(argv: list[str]) -> str | None:
    """Why a shown command would not run as written, or None."""
    program = argv[0]
    if program in PYTHONS and argv[1:2] == ["-m"] and argv[2].startswith("utils."):
        if importlib.util.find_spec(argv[2]) is None:
            return f"no module {argv[2]}"
        module = importlib.import_module(argv[2])
        if hasattr(module, "__path__"):  # a package: its command line is its __main__
            module = importlib.import_module(f"{argv[2]}.__main__")
        if not hasattr(module, "build_parser"):
            return f"{argv[2]} has no build_parser()"
        return parse_error(module.build_parser(), argv[3:])
    if program in PYTHONS and len(argv) > 1 and argv[1].startswith("benchmarks/"):
        if not (KIT_ROOT / argv[1]).is_file() and shlex.join(argv) in pending_measurements():
            return None  # "not measured yet" names the command of a script still to come
        return benchmark_parse_error(Path(argv[1]).stem, argv[2:])
    if program == "make":
        targets, recipes = expand_make(argv)
        missing = [t for t in targets if t not in makefile_targets()]
        if missing:
            return f"no make target {', '.join(missing)}"
        return next(filter(None, (command_problem(c) for c in recipes if c and c[0] in PYTHONS)), None)
    if program in PAPERMILLS:
        notebook = KIT_ROOT / argv[1]
        if not notebook.is_file():
            return f"no notebook {argv[1]}"
        names = [argv[i + 1] for i, a in enumerate(argv) if a in ("-p", "--parameters")]
        unknown = sorted(set(names) - parameters_cell_names(notebook))
        return f"{argv[1]} has no parameter {', '.join(unknown)}" if unknown else None
    return None  # cd, pip, source, ...: not the kit's


def pending_measurements() -> set[str]:
    """The command of each measurement the renderer knows that has no result file yet."""
    return {render_docs.measuring_command(name) for name in render_docs.MEASUREMENTS
            if not (render_docs.MEASURED_DIR / f"{name}.json").is_file()}  # fmt: skip


def command_problems(pages: dict[Path, str]) -> list[str]:
    problems = []
    for page, text in pages.items():
        for argv in shown_commands(text):
            problem = command_problem(argv)
            if problem:
                problems.append(f"{page.name}: `{shlex.join(argv)}`: {problem}")
    return problems


# --- the parameter table ------------------------------------------------------------------------------------


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table: rows of stripped cells, the header first, the separator dropped."""
    found, rows = [], []
    for line in [*FENCE.sub("", text).splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
        elif rows:
            found.append(rows)
            rows = []
    return found


def profile_params(profile: str) -> RunParams:
    """A profile's values, unvalidated (the paper profile's dataset handles are empty), with its domains and models
    as resolve_params fills them in."""
    params = dataclasses.replace(RunParams(), **PROFILES[profile])
    domains = resolve_domains(params.source, (), {})
    return dataclasses.replace(params, domains=domains, models=model_names(domains))


def cell_value(cell: str, default: object) -> object:
    cell = cell.replace("`", "").strip()
    if isinstance(default, tuple):
        return tuple(part.strip() for part in cell.split(",") if part.strip())
    if isinstance(default, bool):
        return {"True": True, "False": False}.get(cell, cell)
    try:
        return type(default)(cell)
    except ValueError:
        return cell


def parameter_table_problems(pages: dict[Path, str], complete: bool = True) -> list[str]:
    """Rows of every table headed `parameter`: a RunParams field, with each profile's value; with ``complete``,
    every field has a row."""
    problems, documented = [], set()
    fields = {f.name: f.default for f in dataclasses.fields(RunParams)}
    for page, text in pages.items():
        for table in tables(text):
            header, *rows = table
            if header[0] != "parameter":
                continue
            profiles = [(i, name) for i, name in enumerate(header) if name in PROFILES]
            for row in rows:
                name = row[0].strip("`")
                documented.add(name)
                if name not in fields:
                    problems.append(f"{page.name}: parameter {name!r} is not in RunParams")
                    continue
                for column, profile in profiles:
                    params = profile_params(profile)
                    actual = params.domain_names if name == "domains" else getattr(params, name)  # names, in order
                    if cell_value(row[column], actual) != actual:
                        problems.append(f"{page.name}: parameter {name!r}: the table says {row[column]!r} for "
                                        f"{profile}, the profile has {actual!r}")  # fmt: skip
    if complete:
        problems += [f"RunParams field {name!r} has no row in a parameter table" for name in fields
                     if name not in documented]  # fmt: skip
    return problems


# --- the checks on the real pages ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pages() -> dict[Path, str]:
    return {page.resolve(): read(page) for page in PAGES}


def test_the_readme_is_the_front_door(pages) -> None:
    text = pages[README.resolve()]
    assert len(text.split()) <= 1500, f"README.md has {len(text.split())} words; at most 1500"
    opening = "\n".join(text.splitlines()[:15])
    for needed in ("make demo", "make test", "runs/demo/report.md", "runs/demo/notebooks/"):
        assert needed in opening, f"{needed!r} is not within the README's first 15 lines"
    linked = {target for _, target in LINK.findall(text)}
    for page in TASK_PAGES:
        assert f"docs/{page}.md" in linked, f"README.md does not link docs/{page}.md"


@pytest.mark.parametrize(
    ("section", "page"),
    [("Run the paper on Kaggle", "kaggle"), ("Use your own image folders", "running"),
     ("Colorize your own images", "colorize")],
)  # fmt: skip
def test_each_path_in_the_readme_is_short_and_links_its_page(pages, section: str, page: str) -> None:
    text = pages[README.resolve()]
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.strip()]
    assert len(lines) <= 10, f"README section {section!r} has {len(lines)} lines; at most 10"
    assert f"(docs/{page}.md" in body


def test_every_relative_link_resolves(pages) -> None:
    assert broken_links(pages) == []


def test_cross_references_are_links(pages) -> None:
    assert unlinked_cross_references(pages) == []


def test_every_command_shown_parses_and_every_make_target_exists(pages) -> None:
    assert command_problems(pages) == []
    shown = {argv[2] for text in pages.values() for argv in shown_commands(text) if argv[1:2] == ["-m"]}
    assert {"utils.pipeline", "utils.train", "utils.kaggle", "utils.colorize"} <= shown


def test_the_parameter_table_is_runparams_and_the_profiles(pages) -> None:
    assert parameter_table_problems(pages) == []


def test_the_parameter_table_is_rendered_from_the_declarations(tmp_path: Path, monkeypatch, capsys) -> None:
    page = render_docs.PARAMETERS_PAGE
    assert render_docs.render_parameter_table(page, check=True) == 0  # the page is the rendering
    copy = tmp_path / "running.md"
    copy.write_text(read(page))
    epochs = dataclasses.replace(parameters.DECLARATIONS["epochs"], meaning="changed", at_least=3, resumable=False)
    monkeypatch.setitem(parameters.DECLARATIONS, "epochs", epochs)
    assert render_docs.render_parameter_table(copy, check=True) == 1 and copy.read_text() == read(page)
    assert "stale block parameters" in capsys.readouterr().err
    assert render_docs.main(["--check"]) == 1  # make docs --check says so too
    assert render_docs.render_parameter_table(copy, check=False) == 0
    assert "| `epochs` | 2 | 4 | 20 | at least 3 |  | changed |\n" in copy.read_text()
    assert render_docs.render_parameter_table(copy, check=True) == 0
    copy.write_text("# Running\n")
    assert render_docs.render_parameter_table(copy, check=True) == 2


def test_no_build_machine_path_and_no_history(pages) -> None:
    problems = []
    for page, text in pages.items():
        problems += [f"{page.name}: {pattern}" for pattern in LEAKS if re.search(pattern, text)]
        prose = render_docs.SUMMARY.sub("", render_docs.BLOCK.sub("", text))  # rendered: each measurement's date
        problems += [f"{page.name}: {pattern}" for pattern in HISTORY if re.search(pattern, prose, re.IGNORECASE)]
    assert problems == []


def test_the_measured_tables_are_the_committed_result_files() -> None:
    assert render_docs.stale_blocks(read(render_docs.PAGE), render_docs.MEASURED_DIR) == []
    assert render_docs.main(["--check"]) == 0


PERFORMANCE_WORDS = 2500  # the performance page, rendered blocks included (as `wc -w` counts)


def test_the_performance_page_is_short() -> None:
    words = len(read(render_docs.PAGE).split())
    assert words <= PERFORMANCE_WORDS, (
        f"docs/performance.md has {words} words; at most {PERFORMANCE_WORDS}: show fewer figures "
        "(render_docs.HEADLINES) and leave the rest to the full tables in benchmarks/measured/"
    )


def typed_figures(text: str, folder: Path) -> list[str]:
    """Numbers in the page's prose (outside its rendered blocks and code) that are a result file's figure as the
    renderer writes it: a figure typed by hand. Only values with a decimal point or a thousands separator count
    (a bare small integer is a size or a target as often as a figure)."""
    prose = without_code(render_docs.SUMMARY.sub("", render_docs.BLOCK.sub("", text)))
    rendered = {render_docs.format_value(float(figure["value"]))
                for measurement in render_docs.measurements_in(folder).values()
                for figure in measurement.payload["figures"] if figure["value"] is not None}  # fmt: skip
    numbers = re.findall(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+\.\d+)(?![\w])", prose)
    return [number for number in numbers if number in rendered]


def test_every_figure_on_the_performance_page_comes_from_a_result_file() -> None:
    text = read(render_docs.PAGE)
    assert render_docs.render_page(text, render_docs.MEASURED_DIR) == text, "the page is stale: make docs"
    assert typed_figures(text, render_docs.MEASURED_DIR) == []
    shown = {match["name"] for match in render_docs.BLOCK.finditer(text)}
    assert set(render_docs.MEASUREMENTS) <= shown, "every measurement has its block, measured or not"
    assert len(render_docs.SUMMARY.findall(text)) == 1


def test_every_full_table_the_page_links_is_its_result_files_rendering() -> None:
    text, folder = read(render_docs.PAGE), render_docs.MEASURED_DIR
    linked = {(render_docs.PAGE.parent / target).resolve() for _, target in LINK.findall(text)
              if target.startswith("../benchmarks/measured/")}  # fmt: skip
    tables = {path.resolve(): body for path, body in render_docs.table_files(folder).items()}
    assert linked == {path for path, body in tables.items() if body is not None}, "each measurement's table, linked"
    for path in sorted(linked):
        assert path.is_file(), f"{path.name}: linked from the page but not written: make docs"
        assert read(path) == tables[path], f"{path.name}: not what its result file renders: make docs"
    assert render_docs.stale_tables(folder) == []


def test_the_report_excerpt_is_its_committed_file_made_to_sit_in_the_page(monkeypatch) -> None:
    page = KIT_ROOT / "docs" / "results.md"
    assert report_excerpt.render(read(page)) == read(page) and "<!-- excerpt: report_excerpt_demo -->" in read(page)
    assert render_docs.main(["--check"]) == 0
    sections = [report.Section("# Results\n\n> **Answer**\n\n## Claims\n\n| (c) | inconclusive[^1] |\n\n[^1]: why\n"
                               "\nIn full: [eval/claims.csv](eval/claims.csv)", [Path("figures/heat.png")])]  # fmt: skip
    monkeypatch.setattr(report, "report_sections", lambda run_dir: sections)
    made = report_excerpt.excerpt(Path("run"))
    assert "**Results**" in made and "**Claims**" in made and not re.search(r"^#", made, re.MULTILINE)  # no anchors
    assert "inconclusive<sup>1</sup>" in made and "- <sup>1</sup>: why" not in made and "- <sup>1</sup> why" in made
    assert "`eval/claims.csv`" in made and "](" not in made and "*[figure: `figures/heat.png`]*" in made


# --- the checks go red --------------------------------------------------------------------------------------


def test_the_checks_find_a_broken_link_an_unknown_flag_and_a_wrong_default(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n")
    page = tmp_path / "page.md"
    text = (
        "# Page\n\n[ok](other.md#a-section) [gone](missing.md) [no anchor](other.md#nowhere) [here](#page)\n\n"
        "See *A section* for more.\n\n"
        "```bash\npython -m utils.kaggle push --no-such-flag\nmake no-such-target\n"
        "python -m utils.pipeline --profile demo -p epochs=3\n```\n\n"
        "| parameter | demo | paper | meaning |\n| --- | --- | --- | --- |\n| `epochs` | 3 | 20 | GAN epochs |\n"
        "| `lr` | 2e-4 | 2e-4 | Adam |\n| `epoch` | 2 | 20 | a typo |\n"
    )
    pages = {page: text, tmp_path / "other.md": read(tmp_path / "other.md")}
    assert broken_links(pages) == [
        "page.md: link to 'missing.md': no file missing.md",
        "page.md: link to 'other.md#nowhere': no heading #nowhere in other.md",
    ]
    assert unlinked_cross_references(pages) == ["page.md: *A section* names a section: make it a link"]
    problems = command_problems(pages)
    assert len(problems) == 2
    assert "unrecognized arguments: --no-such-flag" in problems[0] and "no make target no-such-target" in problems[1]
    assert parameter_table_problems(pages, complete=False) == [
        "page.md: parameter 'epochs': the table says '3' for demo, the profile has 2",
        "page.md: parameter 'epoch' is not in RunParams",
    ]


def test_slugs_follow_github() -> None:
    assert slug("6. Continue after the time limit") == "6-continue-after-the-time-limit"
    assert slug("The paper's claims") == "the-papers-claims"
    assert slug("Two readings of (a) to (c)") == "two-readings-of-a-to-c"
    assert slug("`gamut`: colours outside sRGB") == "gamut-colours-outside-srgb"
    assert anchors("# A\n\n## A\n\n```bash\n# not a heading\n```\n") == {"a", "a-1"}


# --- the renderer -------------------------------------------------------------------------------------------


def result_file(folder: Path, name: str, **changes: object) -> Path:
    payload = {
        "benchmark": name.rsplit("_", 1)[0],
        "context": {"device": "Test GPU", "size": "256"},
        "figures": [
            {
                "name": "kit images/s, batch 16",
                "value": 1234.5,
                "unit": "images/s",
                "target": None,
                "met": None,
                "note": "peak 3 | 4 MiB",
            },
            {
                "name": "kit vs reference, batch 16",
                "value": 3.25,
                "unit": "x",
                "target": ">= 3x",
                "met": True,
                "note": "",
            },
        ],
        "machine": {"gpu": "Test GPU", "cpus": 16},
        "date": "2030-01-02T03:04:05+00:00",
        "commit": "abc1234",
        "command": f".venv/bin/python benchmarks/bench_train.py --json benchmarks/measured/{name}.json",
    } | changes
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload))
    return path


@pytest.fixture
def plain_headlines(monkeypatch) -> None:
    """No headline figures beyond those with a target: the test files hold other figures than the real ones."""
    monkeypatch.setattr(render_docs, "HEADLINES", {})


PAGE_WITH_BLOCKS = (
    "# Speed\n\n<!-- measured: bench_train_cuda -->\nold text\n<!-- /measured -->\n\n"
    "<!-- measured: bench_data_cpu -->\nold text\n<!-- /measured -->\n"
)


def test_the_renderer_writes_each_file_as_a_table_and_names_the_missing(tmp_path: Path, plain_headlines) -> None:
    measured = tmp_path / "measured"
    result_file(measured, "bench_train_cuda")
    page = tmp_path / "docs" / "performance.md"
    rendered = render_docs.render_page(PAGE_WITH_BLOCKS, measured, page)
    train = rendered.split("<!-- measured: bench_train_cuda -->\n")[1].split("<!-- /measured -->")[0]
    assert train.startswith("Test GPU, 2030-01-02, commit `abc1234` ([every figure](../measured/bench_train_cuda.md))")
    assert "- kit vs reference, batch 16: 3.25 x; target >= 3x, met\n" in train  # a target: shown on the page
    assert "kit images/s" not in train  # no target, not in HEADLINES: in the full table only
    table = render_docs.table_files(measured, page)[measured / "bench_train_cuda.md"]
    assert table.startswith(render_docs.GENERATED.format(name="bench_train_cuda"))
    assert "Measured on gpu: Test GPU; cpus: 16, 2030-01-02T03:04:05+00:00, commit `abc1234`" in table
    assert "`.venv/bin/python benchmarks/bench_train.py --json benchmarks/measured/bench_train_cuda.json`" in table
    assert "| kit images/s, batch 16 | 1,234 | images/s |  |  | peak 3 \\| 4 MiB |" in table
    assert "| kit vs reference, batch 16 | 3.25 | x | >= 3x | yes |  |" in table
    data = rendered.split("<!-- measured: bench_data_cpu -->\n")[1].split("<!-- /measured -->")[0]
    command = render_docs.measuring_command("bench_data_cpu")
    assert data == f"*Not measured yet:* `{command}`, then `make docs`.\n"
    assert render_docs.stale_blocks(PAGE_WITH_BLOCKS, measured, page) == ["bench_train_cuda", "bench_data_cpu"]
    assert render_docs.stale_blocks(rendered, measured, page) == []


def test_the_summary_is_a_row_per_stage_from_the_files(tmp_path: Path, plain_headlines) -> None:
    measured = tmp_path / "measured"
    result_file(measured, "bench_train_cuda", figures=[{"name": "kit vs reference, batch 16", "value": 2.5,
                "unit": "x", "target": ">= 3x", "met": False, "note": ""}])  # fmt: skip
    page = "<!-- summary -->\nold\n<!-- /summary -->\n\n<!-- measured: bench_train_cuda -->\n<!-- /measured -->\n"
    rendered = render_docs.render_page(page, measured, tmp_path / "docs" / "performance.md")
    rows = rendered.split("<!-- summary -->\n")[1].split("<!-- /summary -->")[0].splitlines()[2:]
    assert len(rows) == len(render_docs.STAGES)
    assert ("| [train](#training-speed) | kit vs the tutorial's loop, batch 16 | [2.5 x](../measured/bench_train_cuda.md)"
            " | >= 3x | **no** | Test GPU | 2030-01-02 |") in rows  # fmt: skip
    assert (
        "| [notebook start](#start-up-of-each-notebook) | the train notebook's start | not measured yet |"
        in "\n".join(rows)
    )
    assert render_docs.stale_blocks(page.replace("old\n", ""), measured) == ["bench_train_cuda", "summary"]


def test_a_block_shows_the_headline_figures_or_says_which_is_missing(tmp_path: Path, monkeypatch) -> None:
    measured = tmp_path / "measured"
    result_file(measured, "bench_train_cuda")
    monkeypatch.setitem(render_docs.HEADLINES, "bench_train_cuda", ("kit images/s, batch 16",))
    rendered = render_docs.render_page(PAGE_WITH_BLOCKS, measured)
    assert "- kit images/s, batch 16: 1,234 images/s\n- kit vs reference, batch 16: 3.25 x" in rendered
    monkeypatch.setitem(render_docs.HEADLINES, "bench_train_cuda", ("kit images/s, batch 99",))
    with pytest.raises(render_docs.RenderError, match=r"no figure 'kit images/s, batch 99'"):
        render_docs.render_page(PAGE_WITH_BLOCKS, measured)


def test_a_figure_that_could_not_be_measured_renders_as_a_row_saying_so(tmp_path: Path, plain_headlines) -> None:
    measured = tmp_path / "measured"
    unmeasured = {"name": "kit compiled images/s, batch 16", "value": None, "unit": "images/s", "target": None,
                  "met": None, "note": "--time-limit reached"}  # fmt: skip
    result_file(measured, "bench_train_cuda", figures=[unmeasured])
    rendered = render_docs.render_page(PAGE_WITH_BLOCKS, measured)
    assert "- kit compiled images/s, batch 16: not measured (--time-limit reached)\n" in rendered
    table = render_docs.table_files(measured)[measured / "bench_train_cuda.md"]
    assert "| kit compiled images/s, batch 16 | not measured | images/s |  |  | --time-limit reached |" in table


def test_check_exits_1_when_the_page_and_the_files_disagree(tmp_path: Path, capsys, plain_headlines) -> None:
    page, measured = tmp_path / "performance.md", tmp_path / "measured"
    page.write_text(PAGE_WITH_BLOCKS)
    args = ["--page", str(page), "--measured", str(measured)]
    assert render_docs.main(["--check", *args]) == 1 and "bench_train_cuda" in capsys.readouterr().err
    assert render_docs.main(args) == 0 and render_docs.main(["--check", *args]) == 0
    result_file(measured, "bench_train_cuda")  # a new measurement: the page is stale until rendered
    assert render_docs.main(["--check", *args]) == 1
    assert render_docs.main(args) == 0 and render_docs.main(["--check", *args]) == 0
    result_file(measured, "bench_train_cuda", commit="def5678")
    assert render_docs.main(["--check", *args]) == 1
    assert render_docs.main(args) == 0 and render_docs.main(["--check", *args]) == 0
    table = measured / "bench_train_cuda.md"
    table.write_text(table.read_text().replace("3.25", "3.5"))  # a full table edited by hand
    assert render_docs.main(["--check", *args]) == 1 and "bench_train_cuda.md" in capsys.readouterr().err
    table.unlink()  # a full table missing
    assert render_docs.main(["--check", *args]) == 1
    assert render_docs.main(args) == 0 and render_docs.main(["--check", *args]) == 0 and table.is_file()
    (measured / "bench_train_cuda.json").unlink()  # its result file gone: the table goes too
    assert render_docs.main(args) == 0 and not table.exists() and render_docs.main(["--check", *args]) == 0


def test_a_bad_result_file_or_an_unmatched_block_is_named(tmp_path: Path, plain_headlines) -> None:
    measured = tmp_path / "measured"
    path = result_file(measured, "bench_train_cuda")
    payload = json.loads(path.read_text())
    del payload["commit"]
    path.write_text(json.dumps(payload))
    with pytest.raises(render_docs.RenderError, match=r"bench_train_cuda.json: missing commit"):
        render_docs.render_page(PAGE_WITH_BLOCKS, measured)
    path.unlink()
    result_file(measured, "bench_new_cpu")
    with pytest.raises(render_docs.RenderError, match=r"bench_new_cpu.json: no block"):
        render_docs.render_page(PAGE_WITH_BLOCKS, measured)
    with pytest.raises(render_docs.RenderError, match=r"block 'bench_unknown': no result file"):
        render_docs.render_page("<!-- measured: bench_unknown -->\n<!-- /measured -->\n", tmp_path / "none")


# --- every Kaggle command as shown, against stub clients -----------------------------------------------------


def documented_kaggle_commands() -> list[list[str]]:
    """The argv of every `python -m utils.kaggle` command in the docs, the make shortcuts expanded."""
    commands = []
    for page in PAGES:
        for argv in shown_commands(read(page)):
            expanded = expand_make(argv)[1] if argv[0] == "make" else [argv]
            commands += [c[3:] for c in expanded if c[1:3] == ["-m", "utils.kaggle"]]
    return commands


def documented_stub(generation: type) -> object:
    """A client of ``generation`` with datasets large enough for the paper profile, a push, a finished kernel
    and an output to download."""

    class Documented(generation):
        config_values = {"username": "tester"}

        def __init__(self) -> None:
            super().__init__(pages=[[(f"show{i % 50}/{i}.png", 100) for i in range(10_000)]])
            self.pushed: list[Path] = []
            self.file_list = super().dataset_list_files("any/dataset")  # one page of 10,000 images, built once

        def dataset_list_files(self, dataset: str, page_token: str | None = None, page_size: int = 20) -> object:
            return self.file_list

        def kernels_status(self, kernel: str) -> object:
            if generation is StubApi16:
                return {"status": "complete", "failureMessage": None}
            return SimpleNamespace(status=KernelWorkerStatus.COMPLETE, failure_message="")

        def kernels_push(self, folder: str) -> SimpleNamespace:
            self.pushed.append(Path(folder))
            return SimpleNamespace(error=None, version_number=len(self.pushed), url="https://www.kaggle.com/code/x")

        def kernels_output(self, kernel: str, path: str, force: bool, quiet: bool) -> tuple[list[str], None]:
            (Path(path) / "report.md").write_text("# results\n")
            return [str(Path(path) / "report.md")], None

    return Documented()


PLACEHOLDER = re.compile(r"\bOWNER/(?:([A-Z]+)-)?SLUG\b")  # the docs' dataset handle: OWNER/CARTOON-SLUG, OWNER/SLUG


def filled_in(argv: list[str]) -> list[str]:
    """``argv`` with each of the docs' placeholder handles replaced by a handle, as a reader does."""
    return [PLACEHOLDER.sub(lambda m: f"someone/{(m[1] or 'image').lower()}-frames", arg) for arg in argv]


@pytest.mark.parametrize("generation", [StubApi16, StubApi2], ids=["kaggle-1.6", "kaggle-2.x"])
def test_every_kaggle_command_runs_as_documented(generation: type, tmp_path: Path, monkeypatch, capsys) -> None:
    commands = documented_kaggle_commands()
    assert {argv[0] for argv in commands} >= {"datasets", "check", "push", "status", "output"}
    api = documented_stub(generation)
    monkeypatch.setattr(kit_kaggle, "kaggle_api", lambda: api)
    monkeypatch.setattr(kit_kaggle, "BUILD_DIR", tmp_path / "build")
    for shown in commands:
        argv = filled_in(shown)
        if argv != shown:  # copied with the placeholder still in: refused, naming it, before Kaggle is asked
            assert kit_kaggle.main(shown) == 2
            refusal = capsys.readouterr().err
            assert refusal.startswith("error: ") and "the docs' placeholder" in refusal and "OWNER/" in refusal
            assert len(refusal.strip().splitlines()) == 1
        with monkeypatch.context() as scoped:
            if argv[0] == "output":  # into a scratch copy of runs/, not the repository's
                scoped.setattr(kit_kaggle, "KIT_ROOT", tmp_path)
            code = kit_kaggle.main(argv)
        printed = capsys.readouterr()
        assert code == 0, f"`python -m utils.kaggle {shlex.join(argv)}` exited {code}: {printed.err or printed.out}"
    pushes = sum(argv[0] == "push" for argv in commands)
    assert len(api.pushed) == pushes and all((p / kit_kaggle.NOTEBOOK_NAME).is_file() for p in api.pushed)
    assert (tmp_path / "runs" / "kaggle-cross-domain-colorization" / "report.md").is_file()
