"""The prepared data as later stages read it: the shards and data/manifest.csv, each checked before use.

A shard or manifest that is missing, cut short or from another prepare is an UnreadableFileError naming the file
and the command that prepares it again.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from utils.core.domains import mix_fraction
from utils.core.errors import ParameterError, UnreadableFileError, read_json_file
from utils.core.parameters import RunParams

MANIFEST_COLUMNS = ["domain", "split", "index", "source", "sha1", "folder_group", "group", "width", "height"]
REJECTED_COLUMNS = ["domain", "source", "reason"]
MANIFEST_KEYS = ("domain", "split", "index")  # on every row of every kit's manifest: without them it is damaged


def shard_path(run_dir: str | Path, domain: str, split: str) -> Path:
    return Path(run_dir) / "data" / f"{domain}_{split}.npy"


def load_shard(run_dir: str | Path, domain: str, split: str) -> np.ndarray:
    """A shard as a read-only memory map (N x S x S x 3 uint8), once :func:`check_shard` has passed it."""
    return np.load(check_shard(run_dir, domain, split), mmap_mode="r")


def prepare_again(run_dir: str | Path) -> str:
    """What to do about damaged data: the command that prepares it again."""
    done = Path(run_dir) / "data" / "prepared.json"
    return (
        f"prepare the data again: delete {done}, then rerun the pipeline on this run directory "
        f"(python -m utils.pipeline --run-dir {run_dir} with your --profile and -p options)"
    )


def prepared_image_size(run_dir: str | Path) -> int:
    """The image size data/prepared.json records (its fingerprint: the whole file, or its "fingerprint")."""
    path = Path(run_dir) / "data" / "prepared.json"
    if not path.is_file():
        raise UnreadableFileError(f"{path} is missing: the prepare stage did not finish; {prepare_again(run_dir)}")
    record = read_json_file(path, prepare_again(run_dir))
    fingerprint = record.get("fingerprint", record) if isinstance(record, dict) else None
    size = fingerprint.get("image_size") if isinstance(fingerprint, dict) else None
    if not isinstance(size, int) or size < 1:
        raise UnreadableFileError(f"{path}: damaged, no image_size recorded; {prepare_again(run_dir)}")
    return size


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from a C-order .npy file's header; anything else is an UnreadableFileError."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with path.open("rb") as file:
            version = np.lib.format.read_magic(file)
            if version not in readers:
                raise ValueError(f".npy format version {version}, the kit writes 1.0")
            shape, fortran_order, dtype = readers[version](file)
            offset = file.tell()
    except (ValueError, EOFError, SyntaxError) as err:
        raise UnreadableFileError(f"{path}: damaged shard, no readable .npy header ({err})") from None
    if fortran_order:
        raise UnreadableFileError(f"{path}: damaged shard, Fortran-ordered; the kit writes C order")
    return shape, dtype, offset


def check_shard(run_dir: str | Path, domain: str, split: str) -> Path:
    """The shard's path, once its .npy header and size agree with data/prepared.json (the image size S) and the
    manifest (its N images): N x S x S x 3 uint8, and exactly that many bytes after the header. A shard that
    disagrees (cut short, overwritten, from another prepare) is an UnreadableFileError naming it and the command
    that prepares it again."""
    path = shard_path(run_dir, domain, split)
    if not path.is_file():
        raise UnreadableFileError(f"{path} is missing: run the prepare stage for this run directory")
    size = prepared_image_size(run_dir)
    manifest = load_manifest(run_dir)
    expected = (int(((manifest["domain"] == domain) & (manifest["split"] == split)).sum()), size, size, 3)
    try:
        shape, dtype, offset = npy_header(path)
    except UnreadableFileError as err:
        raise UnreadableFileError(f"{err}; {prepare_again(run_dir)}") from None
    if shape != expected or dtype != np.uint8:
        raise UnreadableFileError(
            f"{path}: damaged shard, its header says {shape} {dtype}, the manifest and prepared.json say "
            f"{expected} uint8; {prepare_again(run_dir)}"
        )
    wanted_bytes, held_bytes = offset + math.prod(expected), path.stat().st_size
    if held_bytes != wanted_bytes:
        raise UnreadableFileError(
            f"{path}: damaged shard, {held_bytes} bytes where {expected[0]} images of {size}x{size} take "
            f"{wanted_bytes} ({'cut short' if held_bytes < wanted_bytes else 'more than written'}); "
            f"{prepare_again(run_dir)}"
        )
    return path


def prepared_fingerprint(path: Path) -> dict[str, Any] | None:
    """The fingerprint a finished prepare recorded in ``prepared.json``; None for one written before the file held
    more than the fingerprint (such data lacks near-duplicate groups)."""
    record = read_json_file(path, prepare_again(path.parent.parent))
    return record.get("fingerprint") if isinstance(record, dict) else None


def grouping_sentence(prepared: Any) -> str:
    """What ``prepared`` (prepared.json's contents) says of grouping by name, in a sentence; "" when the prepare
    used no ``group_pattern``."""
    grouping = prepared.get("grouping") if isinstance(prepared, dict) else None
    pattern = grouping.get("group_pattern") if isinstance(grouping, dict) else None
    if not pattern:
        return ""
    matched, files = grouping.get("matched") or {}, grouping.get("files") or {}
    counts = ", ".join(f"{matched.get(domain, 0)} of {n} files of {domain}" for domain, n in files.items())
    return (
        f"Groups by name: `group_pattern` `{pattern}` matched {counts}; a file it did not match kept its folder group."
    )


def ends_with_newline(path: Path) -> bool:
    with path.open("rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"


def load_manifest(run_dir: str | Path) -> pd.DataFrame:
    """``data/manifest.csv``: the one reader. One that is missing, not a CSV, cut short, or without a domain, split,
    index and group on every row is an UnreadableFileError naming it; one without today's columns (a run directory
    prepared by an older version of the kit) is refused, naming the run directory and the command that prepares it
    again."""
    path = Path(run_dir) / "data" / "manifest.csv"

    def damaged(why: str) -> UnreadableFileError:
        return UnreadableFileError(f"{path}: damaged, {why}; {prepare_again(run_dir)}")

    if not path.is_file():
        raise UnreadableFileError(f"{path} is missing: run the prepare stage for this run directory")
    try:
        manifest = pd.read_csv(path, dtype={c: str for c in ("source", "sha1", "folder_group", "group")})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise damaged(f"not a readable CSV ({reason})") from None
    if not ends_with_newline(path):  # the writer ends every row with one: a row cut off mid-way
        raise damaged("cut short (its last row ends mid-way)")
    absent = [column for column in MANIFEST_KEYS if column not in manifest.columns]
    if absent:
        raise damaged(f"{' and '.join(absent)} missing or unreadable on some rows")
    missing = [column for column in MANIFEST_COLUMNS if column not in manifest.columns]
    if missing:
        raise ParameterError(
            f"run directory '{run_dir}': {path} has no {', '.join(missing)} column (prepared by an older version of "
            f"the kit, without near-duplicate groups). Prepare it again: python -m utils.pipeline --profile "
            f"<its profile> --run-dir {run_dir} (or notebooks/01_prepare_data.ipynb with run_dir='{run_dir}'); "
            "its models and evaluation are then made anew from the new data"
        )
    unreadable = [c for c in (*MANIFEST_KEYS, "group") if manifest[c].isna().any()]
    if not unreadable and not pd.api.types.is_integer_dtype(manifest["index"]):
        unreadable = ["index"]
    if unreadable:
        raise damaged(f"{' and '.join(unreadable)} missing or unreadable on some rows")
    return manifest


def training_data_sha1(run_dir: Path, model: str) -> str:
    """sha1 over the manifest rows (domain, split, index, sha1) of the train shards ``model`` trains and
    validates on: the same images in the same shard rows give the same digest, wherever they were read from."""
    manifest = load_manifest(run_dir)
    train = manifest[manifest["split"] == "train"]
    own = train[train["domain"] == model]
    rows = own if len(own) else train  # mixed and the mix_fractions models: every domain of the run
    rows = rows.sort_values(["domain", "index"])[["domain", "split", "index", "sha1"]]
    return hashlib.sha1(rows.to_csv(index=False).encode()).hexdigest()


# --- which rows each model trains on ---------------------------------------------------------------


def train_val_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded held-out validation slice of a train shard: (train indices, val indices)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
    return order[n_val:], order[:n_val]


@dataclass(frozen=True)
class ModelRows:
    """The rows of each domain's train shard that one model trains on and validates on."""

    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]

    @property
    def n_train(self) -> int:
        return sum(len(rows) for rows in self.train.values())


def model_rows(train_shard_sizes: dict[str, int], model: str, params: RunParams) -> ModelRows:
    """Which train-shard rows ``model`` uses, from each domain's train shard size (the manifest's count).

    A domain's model uses its own domain's train shard less the validation slice; ``mixed`` takes equal shares of
    every domain's training (and validation) rows, the same total count as a single domain; a ``mix_fractions``
    model of two domains takes that fraction of the same total from the first domain and the rest from the second.
    """
    splits = {d: train_val_indices(n, params.val_fraction, params.seed) for d, n in train_shard_sizes.items()}
    if model in splits:
        return ModelRows({model: splits[model][0]}, {model: splits[model][1]})
    fraction = mix_fraction(model)
    k = len(splits)
    shares = [1 / k] * k if fraction is None else [fraction, 1 - fraction]
    n_train = min(len(t) for t, _ in splits.values()) // k * k  # mixed: equal, whole shares
    if n_train == 0:
        smallest = min(splits, key=lambda d: len(splits[d][0]))
        raise ParameterError(
            f"model {model!r}: domain {smallest!r} has {len(splits[smallest][0])} training images, fewer than the "
            f"{k} domains it mixes; give {smallest!r} more images, or raise 'train_per_domain'"
        )
    n_val = max(k, min(len(v) for _, v in splits.values()) // k * k)
    counts = [(round(n_train * share), max(1, round(n_val * share))) for share in shares]
    train = {d: t[:n] for (d, (t, _)), (n, _) in zip(splits.items(), counts) if n}
    val = {d: v[:n] for (d, (_, v)), (_, n) in zip(splits.items(), counts)}
    return ModelRows(train, val)


def train_shard_sizes(manifest: pd.DataFrame, params: RunParams) -> dict[str, int]:
    """Each domain's train shard size, from the manifest, in the run's domain order."""
    train = manifest[manifest["split"] == "train"]
    return {d: int((train["domain"] == d).sum()) for d in params.domain_names}


def largest_batch(images_by_model: dict[str, int], step: int = 1) -> int:
    """The largest global batch every model's training images fill at least once, a multiple of ``step`` (each
    model's GPU processes take equal shares of it); 0 when one holds too few images for any."""
    return min(images_by_model.values()) // step * step


def check_batch_size(
    params: RunParams, images_by_model: dict[str, int], world_sizes: dict[str, int] | None = None
) -> None:
    """``batch_size`` against every model's training images (an epoch is whole batches: each model must fill one)
    and the processes each trains on (``world_sizes``: model -> GPU processes, 1 when absent: the global batch
    splits evenly across them), before any model trains; a refusal names the model and the largest batch that
    works for every model, as ``batch_size=N``."""
    worlds = {model: (world_sizes or {}).get(model, 1) for model in images_by_model}
    fits = largest_batch(images_by_model, math.lcm(*worlds.values()))
    remedy = (
        f"use batch_size={fits}, the largest batch every model's training images fill"
        if fits >= 2
        else f"give model {min(images_by_model, key=images_by_model.get)!r} more training images (a batch needs "
        f"at least 2{' per GPU process' if max(worlds.values()) > 1 else ''})"
    )
    uneven = [model for model, world in worlds.items() if params.batch_size % world]
    if uneven:
        raise ParameterError(
            f"parameter 'batch_size' = {params.batch_size}: model {uneven[0]!r} trains on {worlds[uneven[0]]} GPU "
            f"processes, and the global batch must split evenly across them; {remedy}"
        )
    model, fewest = min(images_by_model.items(), key=lambda item: item[1])
    if fewest < params.batch_size:
        raise ParameterError(
            f"parameter 'batch_size' = {params.batch_size}: larger than the {fewest} training image"
            f"{'s' if fewest != 1 else ''} of model {model!r}; {remedy}"
        )
