"""The picture of what near-duplicate grouping joined: the largest groups, the pairs nearest the threshold, and
its command."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import run_python
from utils.core.processes import PARENT_ENV
from utils.core.run_dir import WRITER_ENV, hold_run_dir
from utils.data.shards import load_shard
from utils.eval import group_pictures

JOINED_GROUP = "seed1:frame0+2"  # three cartoon folder groups the tests join into one group


def copy_of_prepared(prepared_run: Path, run_dir: Path) -> Path:
    """A run directory with a copy of ``prepared_run``'s data, three cartoon frames joined into one group, and no
    near_pairs.csv."""
    shutil.copytree(prepared_run / "data", run_dir / "data")
    (run_dir / "data" / "near_pairs.csv").unlink(missing_ok=True)
    path = run_dir / "data" / "manifest.csv"
    manifest = pd.read_csv(path)
    joined = (manifest["domain"] == "cartoon") & manifest["folder_group"].isin([f"seed1:frame{i}" for i in range(3)])
    manifest.loc[joined, "group"] = JOINED_GROUP
    manifest.to_csv(path, index=False)
    return run_dir


def cartoon_sources(run_dir: Path) -> list[str]:
    manifest = pd.read_csv(run_dir / "data" / "manifest.csv")
    return manifest.loc[manifest["domain"] == "cartoon", "source"].tolist()


def pair_rows(sources: list[str]) -> list[tuple[str, str, str, int, bool]]:
    """Cartoon pairs: joined at 10, 30, 20, 25, 5 bits; not joined at 37, 40, 50, 60, 39; a rejected file's pairs at
    35 (joined) and 36 (not); a movie pair."""
    rows = [("cartoon", sources[i], sources[i + 1], bits, True) for i, bits in enumerate((10, 30, 20, 25, 5))]
    rows += [("cartoon", sources[i + 10], sources[i + 11], bits, False) for i, bits in enumerate((37, 40, 50, 60, 39))]
    rows += [("cartoon", sources[0], "procedural:rejected:7", 35, True)]
    rows += [("cartoon", "procedural:rejected:8", sources[5], 36, False)]
    rows += [("movie", "a.png", "b.png", 38, False)]
    return rows


def write_near_pairs(run_dir: Path, rows: list[tuple[str, str, str, int, bool]]) -> None:
    frame = pd.DataFrame(rows, columns=list(group_pictures.NEAR_PAIRS_COLUMNS))
    frame["joined"] = frame["joined"].map({True: "true", False: "false"})
    frame.to_csv(run_dir / "data" / "near_pairs.csv", index=False)


class DrawnFigure:
    """What the picture's figure held when it was saved: its texts, and each row's images."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.texts: list[str] = []
        self.rows: list[list[np.ndarray | None]] = []
        save = group_pictures.save_figure

        def capture(fig, path: Path):  # noqa: ANN001, ANN202
            import matplotlib.text

            self.texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
            grid = np.array(fig.axes).reshape(-1, group_pictures.IMAGES_PER_GROUP)
            self.rows = [[np.asarray(ax.images[0].get_array()) if ax.images else None for ax in row] for row in grid]
            return save(fig, path)

        monkeypatch.setattr(group_pictures, "save_figure", capture)


def test_the_chosen_pairs_are_the_joined_farthest_and_the_apart_nearest(tmp_path: Path, prepared_run: Path) -> None:
    sources = cartoon_sources(prepared_run)
    pairs = pd.DataFrame(pair_rows(sources), columns=list(group_pictures.NEAR_PAIRS_COLUMNS))
    chosen = group_pictures.chosen_pairs(pairs, "cartoon", sources, n=4)
    assert chosen.joined["bits"].tolist() == [30, 25, 20, 10]  # 35: a rejected file's, skipped; 5: the fifth
    assert chosen.apart["bits"].tolist() == [37, 39, 40, 50]  # 36: a rejected file's, skipped
    assert chosen.joined["joined"].all() and not chosen.apart["joined"].any()
    assert (chosen.joined["source_a"] == sources[1]).iloc[0] and (chosen.apart["source_b"] == sources[11]).iloc[0]
    assert group_pictures.chosen_pairs(pairs, "movie", sources).joined.empty  # movie's pair: sources not its own


def test_near_pairs_csv_is_read_as_written(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_near_pairs(tmp_path, [("cartoon", "a", "b", 12, True), ("cartoon", "a", "c", 40, False)])
    pairs = group_pictures.load_near_pairs(tmp_path)
    assert pairs["joined"].tolist() == [True, False] and pairs["bits"].tolist() == [12, 40]
    (tmp_path / "data" / "near_pairs.csv").write_text("domain,source_a,source_b,bits\ncartoon,a,b,12\n")
    with pytest.raises(group_pictures.UnreadableFileError, match="near_pairs.csv: damaged, no joined column"):
        group_pictures.load_near_pairs(tmp_path)


def test_the_picture_shows_the_largest_groups_and_the_chosen_pairs(
    tmp_path: Path, prepared_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = copy_of_prepared(prepared_run, tmp_path / "run")
    sources = cartoon_sources(run_dir)
    write_near_pairs(run_dir, pair_rows(sources))
    drawn = DrawnFigure(monkeypatch)
    image = group_pictures.plot_groups(run_dir, "cartoon")
    path = run_dir / "figures" / "groups_cartoon.png"
    assert path.read_bytes() == image.data
    text = "\n".join(drawn.texts)
    assert f"group {JOINED_GROUP}: 3 images, joins 3 folder groups" in text
    assert text.count("group seed") == group_pictures.LARGEST_GROUPS  # the joined group, then three of one image
    shown = [f"{bits} bits, joined" for bits in (30, 25, 20, 10)] + [f"{b} bits, not joined" for b in (37, 39, 40, 50)]
    assert all(label in text for label in shown), text
    assert not any(re.search(rf"\b{bits} bits", text) for bits in (5, 35, 36, 60))
    # each image from its shard row: the joined group's three frames, then each pair's two images
    manifest = pd.read_csv(run_dir / "data" / "manifest.csv").query("domain == 'cartoon'")
    train = load_shard(run_dir, "cartoon", "train")
    members = manifest[manifest["group"] == JOINED_GROUP].sort_values("index")["index"].tolist()
    assert [np.array_equal(a, train[i]) for a, i in zip(drawn.rows[0], members)] == [True] * 3
    assert drawn.rows[0][3] is None
    row_of = dict(zip(manifest["source"], zip(manifest["split"], manifest["index"])))
    joined_row = drawn.rows[group_pictures.LARGEST_GROUPS]
    first_pair = [row_of[sources[1]], row_of[sources[2]]]  # the 30-bit pair
    assert all(
        np.array_equal(joined_row[k], load_shard(run_dir, "cartoon", s)[i]) for k, (s, i) in enumerate(first_pair)
    )
    assert len(drawn.rows) == group_pictures.LARGEST_GROUPS + 2


@pytest.mark.parametrize("near_pairs", ["missing", "header only"])
def test_without_recorded_pairs_the_largest_groups_alone(
    tmp_path: Path, prepared_run: Path, monkeypatch: pytest.MonkeyPatch, near_pairs: str
) -> None:
    run_dir = copy_of_prepared(prepared_run, tmp_path / "run")
    if near_pairs == "header only":
        write_near_pairs(run_dir, [])
    drawn = DrawnFigure(monkeypatch)
    group_pictures.plot_groups(run_dir, "movie")
    assert (run_dir / "figures" / "groups_movie.png").is_file()
    text = "\n".join(drawn.texts)
    assert "no near-duplicate pairs recorded" in text and "bits, " not in text
    assert len(drawn.rows) == group_pictures.LARGEST_GROUPS
    assert "group astronaut: 4 images, one folder group" in text


def test_the_command_draws_every_domain_or_the_one_named(
    tmp_path: Path, prepared_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = copy_of_prepared(prepared_run, tmp_path / "run")
    assert group_pictures.main(["--run-dir", str(run_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(run_dir / "figures" / f"groups_{d}.png") for d in ("cartoon", "movie")]
    assert all(Path(p).is_file() for p in printed)
    (run_dir / "figures" / "groups_cartoon.png").unlink()
    assert group_pictures.main(["--run-dir", str(run_dir), "--domain", "movie"]) == 0
    assert capsys.readouterr().out.split() == [str(run_dir / "figures" / "groups_movie.png")]
    assert not (run_dir / "figures" / "groups_cartoon.png").exists()


@pytest.mark.parametrize("fault", ["no run directory", "no manifest", "unknown domain", "damaged near_pairs.csv"])
def test_bad_input_is_one_error_line_and_exit_2(
    tmp_path: Path, prepared_run: Path, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    run_dir = tmp_path / "run"
    argv = ["--run-dir", str(run_dir)]
    named = {"no run directory": f"run directory '{run_dir}'", "no manifest": str(run_dir / "data" / "manifest.csv"),
             "unknown domain": "domain 'anime'", "damaged near_pairs.csv": str(run_dir / "data" / "near_pairs.csv")}[fault]  # fmt: skip
    if fault == "no manifest":
        (run_dir / "data").mkdir(parents=True)
    elif fault != "no run directory":
        copy_of_prepared(prepared_run, run_dir)
    if fault == "unknown domain":
        argv += ["--domain", "anime"]
    if fault == "damaged near_pairs.csv":
        (run_dir / "data" / "near_pairs.csv").write_text("domain,source_a,source_b\ncartoon,a,b\n")
    assert group_pictures.main(argv) == 2
    printed = capsys.readouterr()
    lines = printed.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], printed.err
    assert "Traceback" not in printed.err and not printed.out


@pytest.mark.slow  # starts a process: the command, while this process holds the run directory
def test_the_command_waits_for_no_one_it_is_refused_while_another_writer_holds_the_run(
    tmp_path: Path, prepared_run: Path
) -> None:
    run_dir = copy_of_prepared(prepared_run, tmp_path / "run")
    with hold_run_dir(run_dir, "the pipeline"):
        env = {k: v for k, v in os.environ.items() if k not in (WRITER_ENV, PARENT_ENV)}  # not one of its children
        done = run_python("-m", "utils.eval.group_pictures", "--run-dir", str(run_dir), env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "is being written by process" in lines[0], done.stderr
    assert not list((run_dir / "figures").glob("groups_*.png"))
