"""An excerpt of a run's report.md for the docs, made by a command: the answer, the claims and the heatmap.

    python benchmarks/report_excerpt.py --run-dir runs/demo --out benchmarks/measured/report_excerpt_demo.md

It writes the report's first sections (:func:`utils.eval.report.report_sections`, made to sit inside a docs page) into a
committed file, headed by the command, the commit and the date. ``make docs`` (``benchmarks/render_docs.py``) fills
each ``<!-- excerpt: NAME -->`` block of docs/results.md from ``benchmarks/measured/NAME.md`` with :func:`render`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.results import MEASURED, command_line, git_state  # noqa: E402
from utils.core.run_dir import write_text_atomic  # noqa: E402
from utils.eval import report  # noqa: E402

EXCERPT_SECTIONS = 3  # the answer, the claims, the heatmap
BLOCK = re.compile(r"<!-- excerpt: (?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /excerpt -->", re.DOTALL)
IMAGE = re.compile(r"!\[(?P<stem>[^]]*)\]\((?P<path>figures/[^)]+)\)")
LINK = re.compile(r"(?<!!)\[(?P<text>[^]]+)\]\((?P<target>[^)]+)\)")
HEADING = re.compile(r"^#{1,6} (?P<title>.+)$", re.MULTILINE)
FOOTNOTE = re.compile(r"\[\^(?P<mark>\d+)\](?P<colon>:?)")


def excerpt(run_dir: Path) -> str:
    """The report's first sections as report.md holds them, made to sit inside a docs page: its headings as bold
    lines (the page keeps its own anchors), its links to the run's files as code (they are not the page's), its
    footnotes as superscripts, and each figure as a line naming its file."""
    sections = report.report_sections(run_dir)[:EXCERPT_SECTIONS]
    text = "\n\n".join(report.section_markdown(section) for section in sections)
    text = IMAGE.sub(lambda m: f"*[figure: `{m['path']}`]*", text)
    text = LINK.sub(
        lambda m: f"`{m['target']}`" if m["text"] == m["target"] else f"{m['text']} (`{m['target']}`)", text
    )
    text = HEADING.sub(lambda m: f"**{m['title']}**", text)
    return FOOTNOTE.sub(lambda m: f"- <sup>{m['mark']}</sup>" if m["colon"] else f"<sup>{m['mark']}</sup>", text) + "\n"


def write_excerpt(run_dir: Path, out: Path, argv: list[str]) -> None:
    made = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    header = f"<!-- made by `{command_line(argv)}`, commit {git_state()}, {made} -->\n"
    write_text_atomic(out, header + excerpt(run_dir))


def render(page_text: str, folder: Path = MEASURED) -> str:
    """``page_text`` with each excerpt block filled from its committed file (its header line left out)."""

    def body(match: re.Match[str]) -> str:
        path = folder / f"{match['name']}.md"
        if not path.is_file():
            raise FileNotFoundError(f"excerpt block {match['name']!r}: no file {path}; make it with --run-dir/--out")
        content = path.read_text().split("\n", 1)[1]
        return f"<!-- excerpt: {match['name']} -->\n{content}<!-- /excerpt -->"

    return BLOCK.sub(body, page_text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a finished run whose report to excerpt")
    parser.add_argument("--out", type=Path, required=True, help="the committed file the excerpt goes to")
    args = parser.parse_args(argv)
    write_excerpt(args.run_dir, args.out, ["benchmarks/report_excerpt.py", *argv])
    print(f"{args.out}: the first {EXCERPT_SECTIONS} sections of {args.run_dir / 'report.md'}; then `make docs`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
