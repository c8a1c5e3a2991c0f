"""A picture of what near-duplicate grouping joined, one domain at a time. Also a CLI.

    python -m utils.eval.group_pictures --run-dir RUN [--domain NAME]

For each domain, ``figures/groups_<domain>.png``: its largest groups, a row each with a few of its images (one
from each of its folder groups first), labelled with the group's name, its size and how many folder groups it
joins; then the pairs nearest the threshold from ``data/near_pairs.csv``: the joined pairs with the largest
distances and the pairs not joined with the smallest, side by side with their distance in bits. A run whose
prepare recorded no pairs (the file missing, or its header alone) gets the largest groups alone. Everything is
read from the run directory (the manifest, the shards), nothing recomputed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from utils.core.errors import ParameterError, UnreadableFileError, run_command
from utils.core.run_dir import RunDirBusy, hold_run_dir, writes_run_dir
from utils.data.shards import load_manifest, load_shard, prepare_again, prepared_fingerprint
from utils.eval.plots import save_figure

if TYPE_CHECKING:
    import matplotlib.pyplot as plt
    from IPython.display import Image
    from matplotlib.figure import SubFigure

NEAR_PAIRS_COLUMNS = ("domain", "source_a", "source_b", "bits", "joined")
LARGEST_GROUPS = 4  # rows of groups in a picture
IMAGES_PER_GROUP = 8  # images in a group's row; also the columns of the picture
PAIRS_EACH = 4  # joined pairs, and pairs not joined, in a picture: one row each, two columns a pair
LABEL_CHARACTERS = 22  # a file or folder group name under an image, cut to this
JOINED_TITLE = "joined, the largest distances: copies?"
APART_TITLE = "not joined, the smallest distances: distinct?"


@dataclass(frozen=True)
class GroupRow:
    """One group as its row shows it: its name, size, folder groups, and the images shown (split, shard row,
    folder group)."""

    name: str
    images: int
    folder_groups: int
    shown: list[tuple[str, int, str]]


class ChosenPairs(NamedTuple):
    """The pairs a picture shows: ``joined`` (the largest distances first) and ``apart`` (not joined, the smallest
    distances first); each a frame of near_pairs.csv's columns."""

    joined: pd.DataFrame
    apart: pd.DataFrame


def group_picture_path(run_dir: str | Path, domain: str) -> Path:
    return Path(run_dir) / "figures" / f"groups_{domain}.png"


def largest_groups(
    domain_rows: pd.DataFrame, n: int = LARGEST_GROUPS, per_group: int = IMAGES_PER_GROUP
) -> list[GroupRow]:
    """The ``n`` largest groups of one domain's manifest rows (ties by name), each with up to ``per_group`` images:
    the first of each folder group, then the second of each, and so on, so a row shows every folder group joined."""
    sizes = domain_rows.groupby("group").size().reset_index(name="images")
    sizes = sizes.sort_values(["images", "group"], ascending=[False, True], kind="stable").head(n)
    groups = []
    for name, images in zip(sizes["group"], sizes["images"]):
        members = domain_rows[domain_rows["group"] == name].sort_values(["split", "index"], kind="stable")
        members = members.assign(rank=members.groupby("folder_group").cumcount())
        rows = members.sort_values(["rank", "folder_group"], kind="stable").head(per_group)
        shown = [(str(s), int(i), str(f)) for s, i, f in zip(rows["split"], rows["index"], rows["folder_group"])]
        groups.append(GroupRow(str(name), int(images), int(members["folder_group"].nunique()), shown))
    return groups


def load_near_pairs(run_dir: str | Path) -> pd.DataFrame:
    """``data/near_pairs.csv``: every candidate pair the prepare's search considered, ``joined`` as booleans; an
    empty frame when the prepare recorded none (a run prepared before the file existed, or a header alone). One
    without its columns is an UnreadableFileError naming it."""
    path = Path(run_dir) / "data" / "near_pairs.csv"
    if not path.is_file():
        return pd.DataFrame({"domain": [], "source_a": [], "source_b": [], "bits": [], "joined": []}).astype(
            {"domain": str, "source_a": str, "source_b": str, "bits": int, "joined": bool}
        )
    try:
        pairs = pd.read_csv(path, dtype={c: str for c in ("domain", "source_a", "source_b", "joined")})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UnreadableFileError(f"{path}: damaged, not a readable CSV ({err}); {prepare_again(run_dir)}") from None
    missing = [c for c in NEAR_PAIRS_COLUMNS if c not in pairs.columns]
    bits = pd.to_numeric(pairs.get("bits"), errors="coerce") if not missing else None
    if missing or bits.isna().any():
        why = f"no {', '.join(missing)} column" if missing else "a bits value that is not a number"
        raise UnreadableFileError(f"{path}: damaged, {why}; {prepare_again(run_dir)}")
    joined = pairs["joined"].str.strip().str.lower().isin(("true", "1"))
    return pairs.assign(bits=bits.astype(int), joined=joined)


def chosen_pairs(pairs: pd.DataFrame, domain: str, sources: Collection[str], n: int = PAIRS_EACH) -> ChosenPairs:
    """The pairs of ``domain`` nearest the threshold whose two images are both in the shards (``sources``: the
    domain's manifest sources; a rejected file's pairs are skipped): the ``n`` joined pairs with the largest
    distances, and the ``n`` pairs not joined with the smallest (ties in the file's order)."""
    known = set(sources)
    own = pairs[(pairs["domain"] == domain) & pairs["source_a"].isin(known) & pairs["source_b"].isin(known)]
    joined = own[own["joined"]].sort_values("bits", ascending=False, kind="stable").head(n)
    apart = own[~own["joined"]].sort_values("bits", ascending=True, kind="stable").head(n)
    return ChosenPairs(joined.reset_index(drop=True), apart.reset_index(drop=True))


def short(name: str) -> str:
    return name if len(name) <= LABEL_CHARACTERS else "..." + name[-(LABEL_CHARACTERS - 3) :]


def show_image(ax: plt.Axes, image: np.ndarray | None, label: str = "") -> None:
    """One image in ``ax`` (none: an empty cell), ``label`` under it, no ticks."""
    if image is None:
        ax.axis("off")
        return
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(short(label), fontsize=7)


class ShardImages:
    """A domain's shards, opened once each, read by (split, row) or by source."""

    def __init__(self, run_dir: Path, domain: str, domain_rows: pd.DataFrame) -> None:
        self.shards = {split: load_shard(run_dir, domain, split) for split in pd.unique(domain_rows["split"])}
        self.place = {
            s: (sp, int(i)) for s, sp, i in zip(domain_rows["source"], domain_rows["split"], domain_rows["index"])
        }

    def at(self, split: str, index: int) -> np.ndarray:
        return np.asarray(self.shards[split][index])

    def of(self, source: str) -> np.ndarray:
        return self.at(*self.place[source])


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def draw_group_row(row: SubFigure, group: GroupRow, images: ShardImages) -> None:
    """A group's images in a row, each named by its folder group where the group joins several."""
    joins = f"joins {group.folder_groups} folder groups" if group.folder_groups > 1 else "one folder group"
    row.suptitle(f"group {group.name}: {counted(group.images, 'image')}, {joins}", x=0.0, ha="left", fontsize=10)
    for j, ax in enumerate(row.subplots(1, IMAGES_PER_GROUP)):
        split, index, folder_group = group.shown[j] if j < len(group.shown) else (None, 0, "")
        label = folder_group if group.folder_groups > 1 else ""
        show_image(ax, None if split is None else images.at(split, index), label)


def draw_pair_row(row: SubFigure, pairs: pd.DataFrame, title: str, images: ShardImages) -> None:
    """Pairs side by side, each titled with its distance and whether it was joined, each image named by its file."""
    row.suptitle(title, x=0.0, ha="left", fontsize=10)
    for k, cell in enumerate(row.subfigures(1, PAIRS_EACH, wspace=0.04)):
        left, right = cell.subplots(1, 2, gridspec_kw={"wspace": 0.02})
        if k >= len(pairs):
            show_image(left, None)
            show_image(right, None)
            continue
        pair = pairs.iloc[k]
        show_image(left, images.of(pair["source_a"]), Path(pair["source_a"]).name)
        show_image(right, images.of(pair["source_b"]), Path(pair["source_b"]).name)
        cell.suptitle(f"{int(pair['bits'])} bits, {'joined' if pair['joined'] else 'not joined'}", fontsize=9)


def pairs_note(pairs: pd.DataFrame, domain: str, chosen: ChosenPairs) -> str:
    """The title's line on the pairs: what is shown, or why none is."""
    recorded = int((pairs["domain"] == domain).sum())
    if not recorded:
        return "no near-duplicate pairs recorded (data/near_pairs.csv): the largest groups alone"
    if not len(chosen.joined) and not len(chosen.apart):
        return f"none of its {counted(recorded, 'recorded pair')} has both images in the shards"
    return (
        f"pairs near the threshold: {len(chosen.joined)} joined (largest distances), "
        f"{len(chosen.apart)} not joined (smallest distances), of {recorded} recorded"
    )


def threshold_words(run_dir: Path) -> str:
    path = run_dir / "data" / "prepared.json"
    fingerprint = prepared_fingerprint(path) if path.is_file() else None
    bits = fingerprint.get("near_duplicate_bits") if isinstance(fingerprint, dict) else None
    return f" (near_duplicate_bits {bits})" if bits is not None else ""


@writes_run_dir("the picture of the {domain} groups")
def plot_groups(run_dir: str | Path, domain: str) -> Image:
    """The picture of what grouping joined in ``domain`` (module docstring), saved as figures/groups_<domain>.png."""
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    check_domain(manifest, domain, run_dir)
    domain_rows = manifest[manifest["domain"] == domain]
    groups = largest_groups(domain_rows)
    pairs = load_near_pairs(run_dir)
    chosen = chosen_pairs(pairs, domain, domain_rows["source"])
    pair_rows = [
        (frame, title) for frame, title in ((chosen.joined, JOINED_TITLE), (chosen.apart, APART_TITLE)) if len(frame)
    ]
    images = ShardImages(run_dir, domain, domain_rows)
    n_rows = len(groups) + len(pair_rows)
    fig = plt.figure(figsize=(1.6 * IMAGES_PER_GROUP, 2.1 * n_rows), layout="constrained")
    rows = fig.subfigures(n_rows, 1, squeeze=False).ravel()
    for row, group in zip(rows, groups):
        draw_group_row(row, group, images)
    for row, (frame, title) in zip(rows[len(groups) :], pair_rows):
        draw_pair_row(row, frame, title, images)
    n_groups = domain_rows["group"].nunique()
    fig.suptitle(
        f"{domain}: the {len(groups)} largest of its {n_groups} groups{threshold_words(run_dir)}\n"
        f"{pairs_note(pairs, domain, chosen)}"
    )
    return save_figure(fig, group_picture_path(run_dir, domain))


def check_domain(manifest: pd.DataFrame, domain: str, run_dir: Path) -> None:
    domains = [str(d) for d in pd.unique(manifest["domain"])]
    if domain not in domains:
        raise ParameterError(
            f"domain '{domain}': not in {run_dir / 'data' / 'manifest.csv'}; its domains: {', '.join(domains)}"
        )


def draw_group_pictures(run_dir: str | Path, domain: str | None = None) -> list[Path]:
    """The picture of every domain of a prepared run (or of ``domain`` alone), drawn as the run directory's one
    writer; their paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():  # before the hold, which would make it
        raise ParameterError(f"run directory '{run_dir}': no such directory; give a prepared run's directory")
    with hold_run_dir(run_dir, "group pictures"):
        return draw_each(run_dir, domain)


def draw_each(run_dir: Path, domain: str | None) -> list[Path]:
    manifest = load_manifest(run_dir)
    if domain is not None:
        check_domain(manifest, domain, run_dir)
    domains = [domain] if domain is not None else [str(d) for d in pd.unique(manifest["domain"])]
    for name in domains:
        plot_groups(run_dir, name)
    return [group_picture_path(run_dir, name) for name in domains]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m utils.eval.group_pictures``."""
    parser = argparse.ArgumentParser(prog="python -m utils.eval.group_pictures", description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="a prepared run directory (its data/manifest.csv)")
    parser.add_argument("--domain", default=None, help="one domain (default: every domain of the run)")
    return parser


def work(args: argparse.Namespace) -> int:
    """``python -m utils.eval.group_pictures``'s work, once its arguments are parsed."""
    for path in draw_group_pictures(args.run_dir, args.domain):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: work(args), (ParameterError, UnreadableFileError, RunDirBusy))


if __name__ == "__main__":
    sys.exit(main())
