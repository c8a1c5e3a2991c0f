"""Prepare: uint8 shards with a manifest, written resumably through each domain's journal.

A prepared run holds ``data/<domain>_<split>.npy`` (N x S x S x 3 uint8 RGB, opened with mmap),
``data/manifest.csv`` (one row per shard image, in shard order), ``data/rejected.csv``, ``data/near_pairs.csv``
(the pairs the near-duplicate search found close: utils/data/grouped_split.py) and ``data/prepared.json`` (the fingerprint
of the parameters, and the groups per domain and split).

Order of work for a folder or Kaggle source: the hash pass (every file hashed and thumbnailed; a JPEG from a
reduced decode, any other file decoded in full once and kept), near-duplicate groups, the split by groups, then the
accept pass (files decoded in split order until each split is full). The demo's splits are fixed by its generators:
a train image within ``near_duplicate_bits`` of a test image is rejected, and groups are joined by hash within each
split (its near_pairs.csv holds the header only).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from utils.core.parameters import RunParams
from utils.core.run_dir import write_csv_atomic, write_text_atomic, writes_run_dir
from utils.data.decoding import DecodePool, DecodeSettings, prepare_workers
from utils.data.demo import demo_stream
from utils.data.grouped_split import (
    NEAR_PAIR_COLUMNS,
    grouped_splits,
    join_within_splits,
    near_test_check,
    read_near_pairs,
)
from utils.data.near_duplicates import HASH_SCHEME
from utils.data.shard_journal import ShardJournal, write_npy_atomic
from utils.data.shards import (
    MANIFEST_COLUMNS,
    REJECTED_COLUMNS,
    grouping_sentence,
    load_manifest,
    prepared_fingerprint,
    shard_path,
)
from utils.data.sources import SPLITS, Candidate, SourceFile, list_source_files, source_root

ROW_KEYS = ("source", "sha1", "folder_group", "group", "width", "height")  # a manifest row's, from a journal entry


def prepare_fingerprint(params: RunParams) -> dict[str, Any]:
    """Everything that decides a domain's shards: a journal or finished data with another one is stale.
    (Not ``decode_timeout_s``: it decides only what becomes of a file that hangs its decoder.)"""
    keys = (
        "source",
        "image_size",
        "resize",
        "train_per_domain",
        "test_per_domain",
        "seed",
        "min_colorfulness",
        "max_pixels",
        "near_duplicate_bits",
    )
    # only when set: without a pattern, data prepared before the parameter existed stays prepared
    named = {"group_pattern": params.group_pattern} if params.group_pattern else {}
    return {
        "domains": dict(params.domains),
        **{k: getattr(params, k) for k in keys},
        "hash_scheme": HASH_SCHEME,
        **named,
    }


# (start, still_needed) -> the split's candidates after the first ``start``; ``still_needed()``: images still wanted
SplitStream = Callable[[int, Callable[[], int]], Iterator[Candidate]]


def demo_streams(params: RunParams, domain: str) -> dict[str, SplitStream]:
    """Per split, the demo generator's stream of candidates."""
    return {split: (lambda start, _, split=split: demo_stream(params, domain, split, start)) for split in SPLITS}


def decode_settings(params: RunParams, hash_only: bool = False) -> DecodeSettings:
    return DecodeSettings(params.image_size, params.resize, params.min_colorfulness, params.max_pixels, hash_only)


def hash_pass(
    params: RunParams, data_dir: Path, domain: str, files: list[SourceFile], pool: DecodePool
) -> ShardJournal:
    """Every file hashed, in file order, by ``pool`` (which survives dying and hanging workers): a JPEG from a
    reduced decode; any other file decoded in full, and its accepted pixels kept in the journal's pool (row: the
    file's index) for the accept pass, so no file is decoded in full twice. Resumable like the accept pass."""
    listing = hashlib.sha1("\n".join(f.path for f in files).encode()).hexdigest()
    journal = ShardJournal(
        data_dir, f"{domain}_hashes", {**prepare_fingerprint(params), "files": listing}, len(files), params.image_size
    )
    done = len(journal.entries)
    if 0 < done < len(files):
        print(f"prepare {domain}: hash pass resuming after {done} files already hashed")
    progress = tqdm(total=len(files), initial=done, desc=f"hash {domain}", unit="img")
    with closing(pool.decode(files[done:], decode_settings(params, hash_only=True))) as stream:
        for index, candidate in enumerate(stream, start=done):
            signature = {"hash": candidate.hash, "thumbnail": candidate.thumbnail}
            if candidate.reason is not None:
                journal.record({"reason": candidate.reason})
            elif candidate.rgb is not None:
                journal.record(
                    {
                        **signature,
                        "slot": index,
                        "sha1": candidate.sha1,
                        "width": candidate.width,
                        "height": candidate.height,
                    },
                    candidate.rgb,
                )
            else:
                journal.record(signature)
            progress.update(1)
    progress.close()
    journal.commit()
    return journal


def hashed_candidate(file: SourceFile, entry: dict[str, Any], hashed: ShardJournal) -> Candidate | None:
    """The hash pass's decision on ``file``, or None if it only hashed it (a JPEG: the accept pass decodes it)."""
    if "reason" in entry:
        return Candidate(file.path, file.group, None, entry["reason"], folder_group=file.folder_group)
    if "slot" in entry:
        rgb = np.array(hashed.pool[entry["slot"]])
        return Candidate(
            file.path,
            file.group,
            rgb,
            None,
            entry["sha1"],
            entry["width"],
            entry["height"],
            file.folder_group,
            entry["hash"],
        )
    return None


def file_streams(
    params: RunParams, data_dir: Path, domain: str, files: list[SourceFile], pool: DecodePool
) -> tuple[dict[str, SplitStream], ShardJournal | None, pd.DataFrame]:
    """Per split, its stream of candidates from a folder or Kaggle source's ``files``; with near-duplicate grouping,
    the hash pass's journal (files it decided are not decoded again), else None; and the near pairs' rows
    (data/near_pairs.csv)."""
    settings = decode_settings(params)
    if params.near_duplicate_bits == 0:
        splits, no_pairs = grouped_splits(params, domain, files, [""] * len(files))
        return (
            {
                split: (lambda start, needed, fs=fs: pool.decode(fs[start:], settings, needed))
                for split, fs in splits.items()
            },
            None,
            no_pairs,
        )
    hashed = hash_pass(params, data_dir, domain, files, pool)
    splits, near_pairs = grouped_splits(
        params,
        domain,
        files,
        [e.get("hash", "") for e in hashed.entries],
        [e.get("thumbnail", "") for e in hashed.entries],
    )
    entry_of = {f.path: e for f, e in zip(files, hashed.entries)}

    def stream_from(split_files: list[SourceFile], start: int, needed: Callable[[], int]) -> Iterator[Candidate]:
        rest = split_files[start:]
        undecided = [f for f in rest if not {"reason", "slot"} & entry_of[f.path].keys()]
        with closing(pool.decode(undecided, settings, needed)) as decoded:
            for file in rest:  # kept pixels are read one at a time: a split's worth would not fit in memory
                candidate = hashed_candidate(file, entry_of[file.path], hashed)
                yield candidate if candidate is not None else next(decoded)

    streams = {split: (lambda start, needed, fs=fs: stream_from(fs, start, needed)) for split, fs in splits.items()}
    return streams, hashed, near_pairs


def fill_split(
    journal: ShardJournal,
    split: str,
    stream_from: SplitStream,
    wanted: int,
    first_slot: int,
    seen: dict[str, str],
    desc: str,
    reject: Callable[[Candidate], str | None] | None = None,
) -> None:
    """Decide one split's candidates in order (after those the journal holds) until ``wanted`` are accepted
    or the source runs out; ``seen`` maps the sha1 of every accepted image to its source; ``reject``: why an
    otherwise accepted candidate is rejected, or None."""
    done = [e for e in journal.entries if e["split"] == split]
    accepted = sum("slot" in e for e in done)
    if accepted >= wanted:
        return

    def still_needed() -> int:
        return wanted - accepted

    progress = tqdm(total=wanted, initial=accepted, desc=desc, unit="img")
    with closing(stream_from(len(done), still_needed)) as stream:  # stopping early cancels decoding queued ahead
        for candidate in stream:
            entry: dict[str, Any] = {"split": split, "source": candidate.source}
            if candidate.rgb is None:
                journal.record({**entry, "reason": candidate.reason})
                continue
            if candidate.sha1 in seen:
                journal.record({**entry, "reason": f"duplicate: same pixels as {seen[candidate.sha1]}"})
                continue
            reason = reject(candidate) if reject else None
            if reason is not None:
                journal.record({**entry, "reason": reason})
                continue
            seen[candidate.sha1] = candidate.source
            journal.record(
                {
                    **entry,
                    "slot": first_slot + accepted,
                    "sha1": candidate.sha1,
                    "group": candidate.group,
                    "folder_group": candidate.folder_group or candidate.group,
                    "width": candidate.width,
                    "height": candidate.height,
                    **({"hash": candidate.hash} if candidate.hash else {}),
                },
                candidate.rgb,
            )
            accepted += 1
            progress.update(1)
            if accepted == wanted:
                break
    progress.close()


def write_domain_shards(
    params: RunParams, data_dir: Path, domain: str, pool: DecodePool
) -> tuple[list[dict], list[dict], dict[str, int], pd.DataFrame]:
    """Fill one domain's test then train split from its source, then write both shards.

    Resumable: accepted images go straight into a memory-mapped pool (memory stays flat),
    every decision into a journal. Exact duplicates of the decoded pixels are kept once (test
    first, so a test image never reappears in train). Returns (manifest rows, rejected rows, the source's files
    and how many of them ``group_pattern`` matched: ``{"files": n, "matched": m}``, empty for the demo, and the near
    pairs' rows).
    """
    wanted = {"test": params.test_per_domain, "train": params.train_per_domain}
    offset = {"test": 0, "train": wanted["test"]}  # pool slots: test rows first
    journal = ShardJournal(data_dir, domain, prepare_fingerprint(params), sum(wanted.values()), params.image_size)
    if journal.entries:
        print(f"prepare {domain}: resuming after {len(journal.entries)} images already decided")
    demo = params.source == "demo"
    files, outside = ([], []) if demo else list_source_files(source_root(params, domain), params.group_pattern)
    streams, hashed, near_pairs = (
        (demo_streams(params, domain), None, pd.DataFrame(columns=NEAR_PAIR_COLUMNS))
        if demo
        else file_streams(params, data_dir, domain, files, pool)
    )
    seen = {e["sha1"]: e["source"] for e in journal.entries if "slot" in e}
    for split in SPLITS:
        reject = near_test_check(journal, params.near_duplicate_bits) if demo and split == "train" else None
        fill_split(
            journal, split, streams[split], wanted[split], offset[split], seen, f"prepare {domain} {split}", reject
        )
    journal.commit()

    rows: list[dict] = []
    kept = {split: [e for e in journal.entries if e["split"] == split and "slot" in e] for split in SPLITS}
    if not kept["test"] or len(kept["train"]) < 2:
        journal.remove()
        raise ValueError(
            f"domain {domain!r}: only {len(kept['train'])} usable training and {len(kept['test'])} test images; "
            "need at least 2 and 1 (see data/rejected.csv for what was rejected and why)"
        )
    if demo:
        near_pairs = join_within_splits(kept, params.near_duplicate_bits, domain)
    for split, entries in kept.items():
        first = offset[split]
        write_npy_atomic(shard_path(data_dir.parent, domain, split), journal.pool[first : first + len(entries)])
        rows += [
            {"domain": domain, "split": split, "index": e["slot"] - first, **{k: e[k] for k in ROW_KEYS}}
            for e in entries
        ]
    rejected = [{"domain": domain, "source": link, "reason": reason} for link, reason in outside] + [
        {"domain": domain, "source": e["source"], "reason": e["reason"]} for e in journal.entries if "reason" in e
    ]
    journal.remove()
    if hashed is not None:
        hashed.remove()
    listed = {} if demo else {"files": len(files), "matched": sum(f.named for f in files)}
    return rows, rejected, listed, near_pairs


@writes_run_dir("prepare")
def prepare_data(params: RunParams, run_dir: str | Path) -> pd.DataFrame:
    """Write every domain's train/test shards, ``manifest.csv``, ``rejected.csv`` and ``near_pairs.csv``.

    A finished prepare with the same fingerprint is reused; an interrupted one resumes.

    Returns:
        The manifest.
    """
    data_dir = Path(run_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    done_path = data_dir / "prepared.json"
    fingerprint = prepare_fingerprint(params)
    if done_path.is_file():
        if prepared_fingerprint(done_path) == fingerprint:
            print(f"{data_dir}: already prepared with these parameters; reusing it")
            return load_manifest(run_dir)
        print(f"{data_dir}: prepared with other parameters, or by an older version of the kit; preparing it again")
    done_path.unlink(missing_ok=True)
    manifest_rows: list[dict] = []
    rejected_rows: list[dict] = []
    listed_files: dict[str, dict[str, int]] = {}
    near_pairs: list[pd.DataFrame] = []
    # one pool for every domain and split; a worker that dies or hangs is replaced, costing at most its own file
    with DecodePool(prepare_workers(params), params.decode_timeout_s) as pool:
        for domain in params.domain_names:
            # a domain finished by an interrupted prepare is not redone
            domain_done, domain_pairs = data_dir / f".{domain}_done.json", data_dir / f".{domain}_near_pairs.csv"
            record = json.loads(domain_done.read_text()) if domain_done.is_file() else {}
            if record.get("fingerprint") != fingerprint:
                rows, rejected, listed, pairs = write_domain_shards(params, data_dir, domain, pool)
                write_csv_atomic(domain_pairs, pairs)  # before the record that says the domain is done
                record = {"fingerprint": fingerprint, "rows": rows, "rejected": rejected, "listed": listed}
                write_text_atomic(domain_done, json.dumps(record))
            manifest_rows += record["rows"]
            rejected_rows += record["rejected"]
            listed_files[domain] = record.get("listed", {})
            near_pairs.append(read_near_pairs(domain_pairs))
    manifest = pd.DataFrame(manifest_rows, columns=MANIFEST_COLUMNS)
    write_csv_atomic(data_dir / "rejected.csv", pd.DataFrame(rejected_rows, columns=REJECTED_COLUMNS))
    write_csv_atomic(data_dir / "near_pairs.csv", pd.concat(near_pairs, ignore_index=True))
    write_csv_atomic(data_dir / "manifest.csv", manifest)
    groups = group_counts(manifest)
    for domain, splits in groups.items():
        print(
            f"prepare {domain}: "
            + "; ".join(
                f"{split} {c['images']} images in {c['groups']} groups (largest "
                f"{c['largest_group']}; {c['merged_images']} joined by near-duplicates)"
                for split, c in splits.items()
            )
        )
    grouping = grouping_record(params, listed_files)
    if sentence := grouping_sentence(grouping):
        print(f"prepare: {sentence}")
    prepared = {"fingerprint": fingerprint, "groups": groups, **grouping}
    write_text_atomic(done_path, json.dumps(prepared, indent=2) + "\n")
    for domain in params.domain_names:
        (data_dir / f".{domain}_done.json").unlink()
        (data_dir / f".{domain}_near_pairs.csv").unlink()
    return manifest


def grouping_record(params: RunParams, listed_files: dict[str, dict[str, int]]) -> dict[str, Any]:
    """prepared.json's ``grouping`` for a file source: ``group_pattern``, and per domain the files it matched and the
    files listed; nothing for the demo."""
    if params.source == "demo":
        return {}
    counts = {
        key: {domain: listed.get(key, 0) for domain, listed in listed_files.items()} for key in ("matched", "files")
    }
    return {"grouping": {"group_pattern": params.group_pattern, **counts}}


def rejection_counts(run_dir: str | Path) -> pd.DataFrame:
    """Rejected images per domain and reason (the reason's first word: 'corrupt', 'duplicate', ...)."""
    rejected = pd.read_csv(Path(run_dir) / "data" / "rejected.csv")
    kind = rejected["reason"].str.split(":").str[0]
    return rejected.assign(reason=kind).groupby(["domain", "reason"]).size().rename("images").reset_index()


def group_counts(manifest: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """Per domain and split: images, groups, the largest group's images, and the images near-duplicate grouping
    joined to another folder group (their group is not their folder group)."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for (domain, split), part in manifest.groupby(["domain", "split"], sort=False):
        sizes = part["group"].value_counts()
        counts.setdefault(str(domain), {})[str(split)] = {
            "images": len(part),
            "groups": len(sizes),
            "largest_group": int(sizes.max()),
            "merged_images": int((part["group"] != part["folder_group"]).sum()),
        }
    return counts


# --- the torch Dataset -------------------------------------------------------------------------
