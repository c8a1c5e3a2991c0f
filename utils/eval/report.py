"""report.md, a results page that answers first: everything read from the run directory, nothing recomputed.

Its sections, in order (:func:`report_sections`): the answer, in at most three lines; the paper's claims, a verdict
word each and the reasons as footnotes; the cross-domain heatmap; one compact table each for CIEDE2000 and SSIM;
the findings, each said once, with the comparisons that decide something and the one minimum-groups rule; the data
and each model's training; the other figures. Each figure stands in the section whose text it supports, and the
figures notebook shows the same sections with the same figures. The full tables stay in ``eval/*.csv``. The test
group is the unit of evidence (utils.core.statistics): every table gives groups beside images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from utils.core.config import KIT_ROOT
from utils.core.errors import read_json_file
from utils.core.parameters import RunParams
from utils.core.run_dir import read_run_record, write_text_atomic, writes_run_dir
from utils.data.shards import grouping_sentence, load_manifest, model_rows, prepare_again, train_shard_sizes
from utils.eval.claims import CONTRADICTED, HOLDS, INCONCLUSIVE, NOT_TESTABLE
from utils.eval.plots import model_order, test_domains
from utils.eval.report_findings import (
    ANSWER_METRIC,
    REPORT_METRICS,
    RunTables,
    answer_lines,
    counted,
    deciding_comparisons,
    findings_lines,
    metric_table,
    minimum_groups_lines,
    seed_lines,
)
from utils.imaging.metric_table import METRICS

CLAIM_HEADERS = {"claim": "claim", "reading": "reading", "shown_verdict": "verdict", "key_figures": "key figures",
                 "seeds_holding": "holds in seeds"}  # fmt: skip
OTHER_FIGURES = {  # figure stem -> what it shows, for the figures no other section reads
    "ssim_ab": "Chroma SSIM: SSIM on a and b alone, colour without the lightness the model was given.",
    "psnr": "PSNR on RGB.",
    "chroma_ratio": "Mean chroma of the output over the truth's (1 = as colourful as the truth).",
}


@dataclass(frozen=True)
class Section:
    """One part of the report: its markdown, and the figures (files in ``figures/``) that stand with it."""

    text: str
    figures: list[Path] = field(default_factory=list)


def shown_run_dir(run_dir: str | Path) -> str:
    """The run directory as the report names it: relative to the kit when inside it, else by its name
    (never an absolute path of the machine that ran it)."""
    path = Path(run_dir).resolve()
    return path.relative_to(KIT_ROOT).as_posix() if path.is_relative_to(KIT_ROOT) else path.name


def read_claims(path: Path) -> pd.DataFrame:
    """eval/claims.csv as the report shows it: every cell as text, an empty number as ""."""
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def read_tables(run_dir: Path) -> RunTables:
    """What the report reads: eval/summary.csv, comparisons.csv, claims.csv, generalization.csv and run.json."""
    claims = read_claims(run_dir / "eval" / "claims.csv")
    gaps_path = run_dir / "eval" / "generalization.csv"
    record = read_run_record(run_dir)
    seeds_path = run_dir / "eval" / "summary_by_seed.csv"
    return RunTables(
        summary=pd.read_csv(run_dir / "eval" / "summary.csv"),
        comparisons=pd.read_csv(run_dir / "eval" / "comparisons.csv"),
        claims=claims,
        gaps=pd.read_csv(gaps_path) if gaps_path.is_file() else pd.DataFrame(),
        by_seed=pd.read_csv(seeds_path) if seeds_path.is_file() else None,
        parameters=record.get("parameters", {}) if isinstance(record, dict) else {},
    )


def figure(run_dir: Path, stem: str) -> list[Path]:
    """``figures/<stem>.png`` when the figures notebook drew it."""
    path = run_dir / "figures" / f"{stem}.png"
    return [path] if path.is_file() else []


# --- the sections ------------------------------------------------------------------------------------


def answer_section(run_dir: Path, tables: RunTables) -> Section:
    models = [m for m in model_order(list(tables.summary["model"].unique())) if m not in ("gray", "truth")]
    domains = test_domains(tables.summary)
    seeds = tables.parameters.get("seeds", 1)
    lines = [
        "# Cross-domain colorization: results",
        "",
        f"`{shown_run_dir(run_dir)}`: models {', '.join(models)} ({counted(seeds, 'training seed')}), scored on "
        f"{', '.join(domains)} test images.",
        "",
        *(f"> {line}" if i == 0 else f">\n> {line}" for i, line in enumerate(answer_lines(tables))),
    ]
    return Section("\n".join(lines))


def claims_section(claims: pd.DataFrame) -> Section:
    """The compact claims table (``claims``: :func:`read_claims`): a verdict word each, its reason as a footnote
    (one per distinct reason)."""
    claims = claims.apply(lambda column: column.str.replace("|", "\\|", regex=False))
    reasons = list(dict.fromkeys(r for r in claims["reason"] if r))
    marks = [f"{v}[^{reasons.index(r) + 1}]" if r else v for v, r in zip(claims["verdict"], claims["reason"])]
    decided = claims["verdict"].isin([HOLDS, CONTRADICTED])
    repeated = claims["claim"].eq(claims["claim"].shift())
    shown = claims.assign(
        claim=("(" + claims["claim"] + ") " + claims["figure"]).mask(repeated, ""),
        key_figures=claims["key_figures"].mask(repeated, ""),
        shown_verdict=pd.Series(marks, index=claims.index).mask(decided, "**" + claims["verdict"] + "**"),
    )
    tally = claims.drop_duplicates(["claim", "reading"])["verdict"].value_counts()
    counts = ", ".join(f"{tally[v]} {v}" for v in (HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE) if v in tally)
    lines = [
        "## The paper's claims",
        "",
        f"Each claim of the paper's Results section under each reading ({counts}). CIEDE2000 is a distance: lower is "
        "better; the paper read it the other way, so (a)-(c) are checked *as stated* and *as meant*. What each "
        "claim says and how it is measured, with this run's numbers in full: [eval/claims.csv](eval/claims.csv).",
        "",
        shown[list(CLAIM_HEADERS)].rename(columns=CLAIM_HEADERS).to_markdown(index=False),
        "",
        *(f"[^{i}]: {reason}." for i, reason in enumerate(reasons, 1)),
    ]
    return Section("\n".join(lines).rstrip())


def cross_domain_section(run_dir: Path) -> Section:
    info = METRICS[ANSWER_METRIC]
    text = (
        f"## Each training set on each test domain\n\n{info.label}: the mean of each model (rows) on each "
        "domain's test images (columns), with its 95% interval; the gray baseline, the input shown as colour, "
        "is the reference row."
    )
    mixing = figure(run_dir, f"mixing_curve_{ANSWER_METRIC}")
    if mixing:
        text += " The mixing curve: each test domain against the share of the first domain in training."
    return Section(text, figure(run_dir, f"cross_domain_{ANSWER_METRIC}") + mixing)


def metric_sections(run_dir: Path, tables: RunTables) -> list[Section]:
    sections = []
    for metric in REPORT_METRICS:
        info = METRICS[metric]
        text = [
            f"## {info.label}",
            "",
            f"{info.about}. Mean [95% interval, test groups resampled]; the best per "
            "column in bold; the last row: the test images (groups).",
            "",
            metric_table(tables.summary, metric).to_markdown(),
        ]
        sections.append(Section("\n".join(text), figure(run_dir, metric)))
    return sections


def findings_section(run_dir: Path, tables: RunTables) -> list[Section]:
    lines = ["## Findings", "", *findings_lines(tables)]
    deciding = deciding_comparisons(tables.comparisons)
    comparisons = [
        "### The comparisons that decide something",
        "",
        f"The significant ones, and the best model against the runner-up, on {' and '.join(METRICS[m].label for m in REPORT_METRICS)}: "
        "the difference of the metric (model A minus model B, in the direction its loss is read: negative favours A), "
        "its 95% interval, and the Holm-adjusted p. Every comparison: [eval/comparisons.csv](eval/comparisons.csv).",
        "",
        deciding.to_markdown(index=False) if len(deciding) else "None.",
    ]
    rule = ["", "### How many groups a verdict needs", "", *minimum_groups_lines(tables)]
    seeds = ["", "### Run-to-run variation", "", *seed_lines(tables)]
    return [Section("\n".join(lines), figure(run_dir, "saturation")), Section("\n".join(comparisons + rule + seeds))]


def data_section(run_dir: Path, tables: RunTables) -> Section:
    """Images and groups per domain and split, and each model's training: images, best epoch, its remarks."""
    record = read_json_file(run_dir / "data" / "prepared.json", prepare_again(run_dir))
    groups = record.get("groups", {}) if isinstance(record, dict) else {}
    rows = [
        {
            "domain": domain,
            **{
                f"{split} images (groups)": f"{c['images']} ({c['groups']})"
                for split, c in sorted(splits.items(), key=lambda item: item[0] != "train")
            },
        }
        for domain, splits in groups.items()
    ]
    models, remarks = training_rows(run_dir, tables)
    lines = [
        "## The data and the training",
        "",
        "Images and groups per domain and split (a group is a film, a show, a photograph, a cluster of "
        "near-duplicate frames: kept whole in one split):",
        "",
        pd.DataFrame(rows).to_markdown(index=False),
        "",
        *([grouping_sentence(record), ""] if grouping_sentence(record) else []),
        "Each model's training images, and the epoch whose validation CIEDE2000 was best (its `best.pt`):",
        "",
        pd.DataFrame(models).to_markdown(index=False),
        *(["", *remarks] if remarks else []),
    ]
    shown = figure(run_dir, "dataset_samples") + figure(run_dir, "loss_curves")
    shown += [f for d in test_domains(tables.summary) for f in figure(run_dir, f"examples_{d}")]
    return Section("\n".join(lines), shown)


def training_rows(run_dir: Path, tables: RunTables) -> tuple[list[dict[str, Any]], list[str]]:
    """(one row per trained model and seed: training images, best epoch of how many; remarks on a model trained
    on far fewer images than the others, or whose first epoch stayed its best)."""
    manifest = load_manifest(run_dir)
    recorded = tables.parameters  # the run's own, as prepare recorded them: the split's seed and validation share
    params = RunParams(
        domains=tuple((d, "") for d in pd.unique(manifest["domain"])),
        val_fraction=float(recorded.get("val_fraction", RunParams.val_fraction)),
        seed=int(recorded.get("seed", RunParams.seed)),
    )
    sizes = train_shard_sizes(manifest, params)
    rows, remarks = [], []
    order = [str(m) for m in pd.unique(tables.summary["model"])]  # the run's order, as evaluation wrote it
    histories = [path for path in (run_dir / "models").glob("seed*/*/history.csv") if path.parent.name in order]
    for history_path in sorted(histories, key=lambda path: (path.parent.parent.name, order.index(path.parent.name))):
        model, seed = history_path.parent.name, history_path.parent.parent.name.removeprefix("seed")
        history = pd.read_csv(history_path)
        images = model_rows(sizes, model, params).n_train
        best = history.loc[history["val_ciede2000"].idxmin()] if len(history) else None
        rows.append(
            {
                "model": model,
                "seed": seed,
                "training images": images,
                "best epoch": f"{int(best['epoch'])} of {len(history)}" if best is not None else "none",
            }
        )
        if best is not None and int(best["epoch"]) == 1 and len(history) > 1:
            remarks.append(
                f"- {model} (seed {seed}): its first epoch stayed its best; later epochs did not lower its "
                "validation CIEDE2000."
            )
    largest = max((r["training images"] or 0 for r in rows), default=0)
    remarks += [
        f"- {r['model']} trained on {r['training images']} images, a tenth or less of the largest model's "
        f"{largest}: its scores say little about its training mix."
        for r in rows
        if r["training images"] is not None and r["training images"] * 10 <= largest
    ]
    return rows, remarks


def other_figures_section(run_dir: Path) -> Section:
    shown = {stem: text for stem, text in OTHER_FIGURES.items() if figure(run_dir, stem)}
    lines = ["## Other figures", "", *(f"- {text}" for text in shown.values())]
    return Section("\n".join(lines), [f for stem in shown for f in figure(run_dir, stem)])


def report_sections(run_dir: str | Path) -> list[Section]:
    """The report's sections in order, each with its figures: what report.md and the figures notebook show."""
    run_dir = Path(run_dir)
    tables = read_tables(run_dir)
    sections = [answer_section(run_dir, tables), claims_section(tables.claims), cross_domain_section(run_dir)]
    sections += metric_sections(run_dir, tables)
    sections += findings_section(run_dir, tables)
    sections += [data_section(run_dir, tables), other_figures_section(run_dir)]
    return sections


def section_markdown(section: Section) -> str:
    """A section as report.md holds it: its text, then its figures, linked relative to the run directory."""
    images = [f"![{path.stem}](figures/{path.name})" for path in section.figures]
    return "\n\n".join([section.text, *images])


@writes_run_dir("report.md")
def write_report(run_dir: str | Path) -> Path:
    """report.md: :func:`report_sections` in order, each figure beside the text it supports."""
    run_dir = Path(run_dir)
    path = run_dir / "report.md"
    write_text_atomic(path, "\n\n".join(section_markdown(s) for s in report_sections(run_dir)) + "\n")
    return path


def write_partial_report(run_dir: str | Path, partial: dict[str, Any]) -> Path:
    """report.md of a run the time budget cut short (``partial``, as run.json records it): how far each model
    got, what did not run, and how to continue."""
    run_dir = Path(run_dir)
    lines = [
        "# Cross-domain colorization: partial run",
        "",
        f"Run directory: `{shown_run_dir(run_dir)}`.",
        "",
        f"**This run is partial: the {partial['reason']}** before every model had trained all its epochs.",
        "Each model stopped at a checkpoint. Evaluation, the figures and the sample colorizations did not run:",
        "they need finished models, so this report has no results yet.",
        "",
        "| model | trained |",
        "| --- | --- |",
        *(f"| {name} | {epochs} |" for name, epochs in partial["models"].items()),
        "",
        "## How to continue",
        "",
        f"{partial['continue'][0].upper()}{partial['continue'][1:]}.",
        "Training resumes exactly where each model stopped, to the batch; a model already done is not trained again.",
        "",
    ]
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
