"""Near-duplicate groups: the search and the groups against brute-force references, the hash on copies and
distinct images, and the prepare that splits by them (flat folders of frames of a shot, old run directories)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.cluster.hierarchy import DisjointSet

from benchmarks import bench_near_duplicates
from benchmarks.results import read_results
from tests.conftest import TINY
from tests.messy_data import colourful
from utils.core import config, errors
from utils.core.domains import DEMO_DOMAINS
from utils.core.parameters import NEAR_DUPLICATE_MAX_BITS, RunParams
from utils.data import decoding, demo, grouped_split, near_duplicates, prepare, shards, sources, thumbnail_check

BITS = RunParams.near_duplicate_bits


def planted_hashes(n: int, threshold: int, seed: int) -> np.ndarray:
    """Random 192-bit hashes, a third of them copies of another with up to threshold + 4 bits flipped."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=(n, 3), dtype=np.int64).astype(np.uint64) ^ np.uint64(1 << 63)
    for _ in range(n // 3):
        source, target = rng.integers(n, size=2)
        copy = hashes[source].copy()
        for bit in rng.choice(192, size=rng.integers(0, threshold + 5), replace=False):
            copy[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
        hashes[target] = copy
    return hashes


def brute_force_pairs(hashes: np.ndarray, threshold: int) -> set[tuple[int, int]]:
    """Every pair compared bit by bit, as Python integers: the reference for the multi-index search."""
    ints = [int("".join(f"{word:064b}" for word in row), 2) for row in hashes.tolist()]
    return {
        (i, j)
        for i in range(len(ints))
        for j in range(i + 1, len(ints))
        if (ints[i] ^ ints[j]).bit_count() <= threshold
    }


@pytest.mark.parametrize(("n", "threshold"), [(2, 36), (150, 4), (300, 36), (300, 64)])
def test_the_search_finds_exactly_the_pairs_of_a_brute_force_comparison(n: int, threshold: int) -> None:
    hashes = planted_hashes(n, threshold, seed=threshold)
    expected = brute_force_pairs(hashes, threshold)
    assert len(expected) >= n // 10 or n == 2  # the planted copies: near pairs to find
    assert set(map(tuple, near_duplicates.near_pairs(hashes, threshold).tolist())) == expected


def test_groups_are_the_union_find_of_near_pairs_and_folder_groups() -> None:
    hashes = planted_hashes(240, BITS, seed=7)
    hex_hashes = ["".join(f"{word:016x}" for word in row) for row in hashes.tolist()]
    hex_hashes[5] = hex_hashes[17] = ""  # no hash (a flat image): only their folder group joins them
    folders = [f"film{i % 60}" for i in range(240)]
    reference = DisjointSet(range(240))
    for i, j in brute_force_pairs(hashes, BITS):
        if hex_hashes[i] and hex_hashes[j]:
            reference.merge(i, j)
    for i in range(240):
        reference.merge(i, folders.index(folders[i]))
    groups = near_duplicates.near_duplicate_groups(folders, hex_hashes, BITS)
    same = {(i, j) for i in range(240) for j in range(i + 1, 240) if groups[i] == groups[j]}
    assert same == {(i, j) for i in range(240) for j in range(i + 1, 240) if reference.connected(i, j)}
    assert 1 < len(set(groups)) < 60  # merges happened, and not everything merged
    merged = [g for g, f in zip(groups, folders) if g != f]
    assert all("+" in g for g in merged) and merged


def test_the_pairs_found_are_the_hash_pairs_and_each_copy_with_the_first_of_its_hash() -> None:
    far = "f" * 48
    near = "0" * 9 + "f" * 9 + "0" * 30  # 36 bits from 0...0
    hashes = ["0" * 48, far, "0" * 48, near, "", "0" * 48]
    groups, pairs = near_duplicates.near_duplicate_grouping([f"f{i}" for i in range(6)], hashes, BITS)
    found = {(a, b): (bits, joined) for a, b, bits, joined in zip(pairs.first.tolist(), pairs.second.tolist(),
                                                                  pairs.bits.tolist(), pairs.joined.tolist())}  # fmt: skip
    assert found == {(0, 2): (0, True), (0, 5): (0, True), (0, 3): (36, True)}
    assert len({groups[i] for i in (0, 2, 3, 5)}) == 1 and len(set(groups)) == 3
    assert len(near_duplicates.near_duplicate_grouping(["a", "b"], ["0" * 48] * 2, 0)[1]) == 0


def test_zero_bits_gives_the_folder_groups() -> None:
    hashes = ["".join(f"{w:016x}" for w in row) for row in planted_hashes(30, BITS, seed=1).tolist()]
    hashes[1] = hashes[2] = hashes[0]  # exact copies in three shows
    folders = [f"show{i % 4}" for i in range(30)]
    assert near_duplicates.near_duplicate_groups(folders, hashes, 0) == folders
    assert near_duplicates.near_duplicate_groups(folders, hashes, BITS) != folders  # the planted copies join shows


def file_signature(path: Path) -> tuple[str, str]:
    """The hash and thumbnail of a file, as the prepare's hash pass takes them."""
    settings = decoding.DecodeSettings(32, "crop", 0.0, 50_000_000, hash_only=True)
    candidate = decoding.decode_source_file((sources.SourceFile(str(path), path.name), settings))
    return candidate.hash, candidate.thumbnail


def file_hash(path: Path) -> str:
    return file_signature(path)[0]


def grouped_files(paths: list[Path], thumbnails: bool = True) -> list[str]:
    """Each file's group, each file its own folder group, as the prepare groups them."""
    hashes, thumbs = zip(*map(file_signature, paths))
    return near_duplicates.near_duplicate_groups([p.name for p in paths], list(hashes), BITS,
                                                 list(thumbs) if thumbnails else None)  # fmt: skip


def test_one_photograph_at_three_resolutions_makes_one_group(tmp_path: Path) -> None:
    photo = demo.load_demo_photo("coffee")  # 600 x 400
    paths = []
    for scale, fmt in ((1.0, "JPEG"), (0.5, "PNG"), (0.25, "JPEG")):
        path = tmp_path / f"coffee_{scale}.{fmt.lower()}"
        Image.fromarray(photo).resize((int(600 * scale), int(400 * scale)), Image.Resampling.LANCZOS).save(
            path, quality=75
        )
        paths.append(path)
    hashes = [file_hash(p) for p in paths]
    assert all(len(h) == 48 for h in hashes)
    groups = near_duplicates.near_duplicate_groups([p.name for p in paths], hashes, BITS)
    assert len(set(groups)) == 1


def test_distinct_images_are_not_merged(tmp_path: Path) -> None:
    photographs = {**demo.demo_photos(), **{f"frame{i}": colourful(i, size=128) for i in range(12)}}
    photographs |= {f"{name} quarter {k}": q for name, p in demo.skimage_photos().items()
                    for k, q in enumerate(bench_near_duplicates.quarters(p))}  # fmt: skip
    white = np.full((120, 160, 3), 255, np.uint8)
    for i, colour in enumerate([(230, 40, 40), (40, 90, 220), (60, 180, 60)]):  # clip art on white backgrounds
        art = white.copy()
        art[20 + 10 * i : 90, 30 + 15 * i : 80 + 20 * i] = colour
        art[50 : 100 - 5 * i, 70:140] = (250, 220, 40)
        photographs[f"clipart{i}"] = art
    paths = []
    for name, rgb in photographs.items():
        paths.append(tmp_path / f"{name}.png")
        Image.fromarray(rgb).save(paths[-1])
    assert grouped_files(paths) == [p.name for p in paths]


def test_distinct_clip_art_mostly_keeps_its_own_group(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    paths = [tmp_path / f"art{i}.png" for i in range(120)]
    for path in paths:
        Image.fromarray(bench_near_duplicates.clip_art(rng)).save(path)
    groups = grouped_files(paths)
    merged = sum(groups.count(g) > 1 for g in groups) / len(groups)
    assert merged <= 0.05, merged


def panned_photographs(folder: Path, seed: int) -> dict[str, list[Path]]:
    """Six frames of each photograph (the demo's, and the quarters of the everyday ones), each a pan of up to 10% of
    each side, rescaled to 50-100%, JPEG at quality 70-95 (the benchmark's frames), in a flat folder."""
    rng = np.random.default_rng(seed)
    photos = demo.demo_photos()
    photos |= {f"{name}_q{k}": q for name, p in demo.skimage_photos().items()
               for k, q in enumerate(bench_near_duplicates.quarters(p))}  # fmt: skip
    frames = {}
    for name, photo in photos.items():
        frames[name] = [folder / f"{name}_{k}.jpg" for k in range(bench_near_duplicates.FRAMES_PER_ORIGINAL)]
        for path in frames[name]:
            path.write_bytes(bench_near_duplicates.panned_frame(photo, rng))
    return frames


def test_panned_frames_of_one_photograph_never_straddle_the_split(tmp_path: Path) -> None:
    frames = panned_photographs(tmp_path, seed=11)
    paths = [path for mine in frames.values() for path in mine]
    groups = grouped_files(paths)
    split_of = {}
    for split, files in sources.assign_splits([sources.SourceFile(str(p), g, p.name) for p, g in zip(paths, groups)],
                                              n_train=len(paths) // 2, n_test=len(paths) // 2, seed=0).items():  # fmt: skip
        split_of |= {Path(f.path).name: split for f in files}
    for photo, mine in frames.items():
        assert len({split_of[p.name] for p in mine}) == 1, photo
        assert len({groups[paths.index(p)] for p in mine}) == 1, photo
    straddling = [g for g in {*groups} if len({split_of[p.name] for p, h in zip(paths, groups) if h == g}) > 1]
    assert not straddling
    # the hash alone, even with its chains, leaves some photograph in pieces: the thumbnail check joins them
    hash_groups = grouped_files(paths, thumbnails=False)
    assert any(len({hash_groups[paths.index(p)] for p in mine}) > 1 for mine in frames.values())


def test_a_shifted_copy_agrees_and_a_figure_the_other_lacks_is_stray() -> None:
    scene = np.zeros((30, 30, 3), np.uint8)
    scene[:15], scene[15:] = (120, 190, 250), (70, 170, 60)  # sky and ground
    scene[17:25, 4:12], scene[12:18, 20:27] = (230, 40, 40), (40, 90, 220)
    frame, panned = scene[3:27, 3:27], scene[1:25, 5:29]
    other = frame.copy()
    other[3:8, 12:17] = (250, 220, 40)  # a figure in the sky
    thumbs, pairs = np.stack([frame, panned, other]), np.array([(0, 1), (0, 2)])
    colours = thumbnail_check.blurred(thumbs)
    lightness = colours.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    correlation, shift = thumbnail_check.best_shifts(lightness, pairs)
    mismatch = thumbnail_check.mismatch_shares(colours, pairs, shift)
    stray = thumbnail_check.stray_shares(colours, pairs, shift)
    assert (correlation >= thumbnail_check.MIN_CORRELATION).all()
    assert (mismatch <= thumbnail_check.MAX_MISMATCH_SHARE).all()  # neither correlation nor colour tells them apart
    assert stray[0] == 0 and stray[1] > thumbnail_check.MAX_STRAY_SHARE  # the figure does
    assert thumbnail_check.aligned_agreement(thumbs, pairs).tolist() == [True, False]


def test_the_alignment_finds_the_shift_and_the_pearson_correlation_of_the_overlap() -> None:
    rng = np.random.default_rng(0)
    side, most = thumbnail_check.THUMBNAIL_SIDE, thumbnail_check.MAX_SHIFT
    scene = rng.uniform(0, 255, (side + 2 * most, side + 2 * most)).astype(np.float32)
    planted = [(0, 0), (3, -2), (-3, 3), (1, 0)]
    views = [scene[most:-most, most:-most]] + [scene[most + dy : most + dy + side, most + dx : most + dx + side]
                                               for dy, dx in planted]  # fmt: skip
    images = np.stack(views + [rng.uniform(0, 255, (side, side)).astype(np.float32) for _ in range(3)])
    pairs = np.array([(0, k + 1) for k in range(len(planted))] + [(5, 6), (6, 7), (0, 7)])
    correlation, shift = thumbnail_check.best_shifts(images, pairs)
    size = 2 * most + 1
    for k, (dy, dx) in enumerate(planted):  # b(y - dy, x - dx) is a(y, x): the planted shift, correlation 1
        assert divmod(int(shift[k]), size) == (dy + most, dx + most) and correlation[k] == pytest.approx(1, abs=1e-4)
    start, end = thumbnail_check._overlap_bounds()
    for k, (a, b) in enumerate(pairs):
        best = -1.0
        for row in range(size):
            for col in range(size):
                first = images[a, start[row] : end[row], start[col] : end[col]].ravel()
                second = images[b, start[size - 1 - row] : end[size - 1 - row],
                                start[size - 1 - col] : end[size - 1 - col]].ravel()  # fmt: skip
                best = max(best, float(np.corrcoef(first, second)[0, 1]))
        assert correlation[k] == pytest.approx(best, abs=1e-4)


def test_a_blank_frame_has_no_hash_and_joins_nothing() -> None:
    assert near_duplicates.perceptual_hash(np.zeros((90, 160, 3), np.uint8)) == ""
    assert near_duplicates.perceptual_hash(np.full((90, 160, 3), 255, np.uint8)) == ""


@pytest.mark.parametrize("value", ["-1", str(NEAR_DUPLICATE_MAX_BITS + 1), "2.5"])
def test_near_duplicate_bits_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(errors.ParameterError, match="parameter 'near_duplicate_bits'"):
        config.resolve_params("demo", {"near_duplicate_bits": value})


# --- the prepare -------------------------------------------------------------------------------


def write_shot_frames(folder: Path, photos: dict[str, np.ndarray], seed: int = 0) -> dict[str, list[str]]:
    """Frames of a shot in a flat folder: per photograph, six pans of up to 10% of each side, rescaled to 50-100%,
    JPEG at quality 70-95 (the benchmark's frames). Returns photograph -> its file names."""
    rng = np.random.default_rng(seed)
    names: dict[str, list[str]] = {}
    for name, photo in photos.items():
        names[name] = [f"{name}_{k}.jpg" for k in range(bench_near_duplicates.FRAMES_PER_ORIGINAL)]
        for file in names[name]:
            (folder / file).write_bytes(bench_near_duplicates.panned_frame(photo, rng))
    return names


@pytest.fixture(scope="module")
def shot_folder(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    """A flat folder: frames of a shot of five photographs (each file its own folder group) and 14 cartoon frames."""
    folder = tmp_path_factory.mktemp("shots")
    photos = {name: np.asarray(Image.fromarray(p).reduce(2)) for name, p in demo.skimage_photos().items()}
    names = write_shot_frames(folder, photos)
    for i in range(14):
        Image.fromarray(colourful(500 + i, size=96)).save(folder / f"frame_{i:02d}.png")
    return folder, names


def shot_params(folder: Path, **extra) -> RunParams:
    overrides = {**TINY, "source": "folder", "cartoon_dir": str(folder), "movie_dir": str(folder),
                 "train_per_domain": 22, "test_per_domain": 8, "prepare_workers": 1, **extra}  # fmt: skip
    return config.resolve_params("demo", overrides)


def test_every_copy_of_one_photograph_ends_in_one_split_and_group(tmp_path: Path, shot_folder) -> None:
    folder, names = shot_folder
    manifest = prepare.prepare_data(shot_params(folder), tmp_path)
    for domain in DEMO_DOMAINS:
        rows = manifest[manifest.domain == domain].assign(file=lambda m: m.source.map(lambda s: Path(s).name))
        for photo, files in names.items():
            copies = rows[rows.file.isin(files)]
            assert len(copies) >= 3, (domain, photo)
            assert copies.split.nunique() == 1 and copies.group.nunique() == 1, (domain, photo, copies)
            assert (copies.folder_group == copies.file).all()  # a flat folder: each file its own folder group
    prepared = json.loads((tmp_path / "data" / "prepared.json").read_text())
    assert prepared["fingerprint"] == prepare.prepare_fingerprint(shot_params(folder))
    for domain in DEMO_DOMAINS:
        counts = prepared["groups"][domain]
        rows = manifest[manifest.domain == domain]
        for split in sources.SPLITS:
            part = rows[rows.split == split]
            assert counts[split] == {"images": len(part), "groups": part.group.nunique(),
                                     "largest_group": int(part.group.value_counts().max()),
                                     "merged_images": int((part.group != part.folder_group).sum())}  # fmt: skip
        assert sum(c["merged_images"] for c in counts.values()) >= 15  # the photographs' copies


def test_near_pairs_csv_names_the_pairs_the_search_found_and_which_it_joined(tmp_path: Path, shot_folder) -> None:
    folder, names = shot_folder
    prepare.prepare_data(shot_params(folder), tmp_path)
    pairs = pd.read_csv(tmp_path / "data" / "near_pairs.csv")
    assert list(pairs.columns) == ["domain", "source_a", "source_b", "bits", "joined"]
    assert set(pairs.domain) == set(DEMO_DOMAINS) and pairs.joined.dtype == bool
    listed = {str(p) for p in folder.iterdir()}  # the paths as the manifest's source column has them
    assert set(pairs.source_a) | set(pairs.source_b) <= listed
    assert (pairs.source_a < pairs.source_b).all() and pairs.bits.between(0, 192).all()
    assert pairs[pairs.bits <= BITS].joined.all()  # within the hash threshold: joined
    beyond = pairs[pairs.bits > BITS]
    assert beyond.joined.any() and not beyond.joined.all()  # beyond it: the thumbnail check decides
    photo_of = {str(folder / file): photo for photo, files in names.items() for file in files}
    for _, pair in beyond[beyond.joined].iterrows():  # frames a pan moved beyond the hash's reach, joined
        assert photo_of.get(pair.source_a, pair.source_a) == photo_of.get(pair.source_b), pair


def test_the_demos_near_pairs_are_those_its_hash_joined_within_each_split(prepared_run: Path) -> None:
    pairs = pd.read_csv(prepared_run / "data" / "near_pairs.csv")
    manifest = shards.load_manifest(prepared_run).set_index("source")
    assert len(pairs) and pairs.joined.all() and pairs.bits.between(0, BITS).all()  # by hash alone: no thumbnails
    for pair in pairs.itertuples():  # both in one split and one group, as their join made them
        a, b = manifest.loc[pair.source_a], manifest.loc[pair.source_b]
        assert (a.split, a.group, a.domain) == (b.split, b.group, pair.domain), pair


def test_zero_bits_splits_by_folder_groups_only(tmp_path: Path, shot_folder) -> None:
    folder, names = shot_folder
    manifest = prepare.prepare_data(shot_params(folder, near_duplicate_bits=0), tmp_path)
    assert (manifest.group == manifest.folder_group).all()
    assert manifest.group.tolist() == manifest.source.map(lambda s: Path(s).name).tolist()
    files = manifest.source.map(lambda s: Path(s).name)
    straddling = [photo for photo, mine in names.items() if manifest[files.isin(mine)].split.nunique() > 1]
    assert straddling  # what near-duplicate groups prevent: copies of one photograph in both splits
    header = "domain,source_a,source_b,bits,joined"
    assert (tmp_path / "data" / "near_pairs.csv").read_text().strip() == header  # no pair search


def test_an_old_run_directory_is_prepared_again_not_reused(tmp_path: Path, prepared_run: Path, capsys) -> None:
    import shutil

    shutil.copytree(prepared_run, tmp_path / "run")
    old = tmp_path / "run" / "data"
    fingerprint = {k: v for k, v in prepare.prepare_fingerprint(config.resolve_params("demo", TINY)).items()
                   if k not in ("near_duplicate_bits", "hash_scheme")}  # fmt: skip
    (old / "prepared.json").write_text(json.dumps(fingerprint, indent=2) + "\n")  # the layout before groups
    pd.read_csv(old / "manifest.csv").drop(columns="folder_group").to_csv(old / "manifest.csv", index=False)
    manifest = prepare.prepare_data(config.resolve_params("demo", TINY), tmp_path / "run")
    assert (
        "prepared with other parameters, or by an older version of the kit; preparing it again"
        in capsys.readouterr().out
    )
    assert list(manifest.columns) == shards.MANIFEST_COLUMNS
    pd.testing.assert_frame_equal(shards.load_manifest(tmp_path / "run"), shards.load_manifest(prepared_run))
    assert set(json.loads((old / "prepared.json").read_text())) == {"fingerprint", "groups"}


def test_an_old_manifest_is_refused_naming_the_run_directory_and_the_command(
    tmp_path: Path, prepared_run: Path
) -> None:
    (tmp_path / "data").mkdir()
    old = pd.read_csv(prepared_run / "data" / "manifest.csv").drop(columns="folder_group")
    old.to_csv(tmp_path / "data" / "manifest.csv", index=False)
    with pytest.raises(errors.ParameterError) as err:
        shards.load_manifest(tmp_path)
    message = str(err.value)
    assert f"run directory '{tmp_path}'" in message and "folder_group" in message
    assert f"python -m utils.pipeline --profile <its profile> --run-dir {tmp_path}" in message


def test_the_demo_rejects_a_train_image_near_a_test_image() -> None:
    class Journal:
        entries = [{"split": "test", "source": "photo[0:9]", "hash": "0" * 48}, {"split": "test", "source": "x"}]

    check = grouped_split.near_test_check(Journal(), BITS)
    near = "f" * 9 + "0" * 39  # 36 bits from the test image's
    reason = check(sources.Candidate("b", "g", None, hash=near)) or ""
    assert reason.startswith("near-duplicate: 36 bits from test image photo[0:9]")
    assert check(sources.Candidate("c", "g", None, hash="f" * 10 + "0" * 38)) is None
    assert check(sources.Candidate("d", "g", None)) is None  # no hash: nothing to compare
    assert grouped_split.near_test_check(Journal(), 0) is None


def test_bench_near_duplicates_times_the_grouping_against_both_baselines(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    bench_near_duplicates.main(["--distinct", "0", "--group-hashes", "60", "--workers", "1", "--json", str(out)])
    figures = {f.name: f for f in read_results(out).figures}
    kit = next(f for name, f in figures.items() if name.startswith("kit: group"))
    assert kit.met is True and kit.value > 0
    assert figures["kit's hash search vs Python n^2 loop"].value > 0
    assert figures["kit's hash search vs numpy n^2 comparison"].value > 0
