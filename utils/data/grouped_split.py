"""The prepare's near-duplicate grouping: a folder or Kaggle source's files split by group, the pairs the search
found close (``data/near_pairs.csv``), and the demo's checks (its splits are fixed by its generators)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from utils.core.parameters import RunParams
from utils.data.near_duplicates import NearPairs, hamming, hash_array, near_duplicate_grouping
from utils.data.sources import Candidate, SourceFile, assign_splits

NEAR_PAIR_COLUMNS = ["domain", "source_a", "source_b", "bits", "joined"]


def near_pair_table(domain: str, sources: Sequence[str], pairs: NearPairs) -> pd.DataFrame:
    """``data/near_pairs.csv``'s rows of one domain (``sources``: each image's source, as the manifest has it)."""
    paths = np.asarray(sources, dtype=object)
    columns = [[domain] * len(pairs), paths[pairs.first], paths[pairs.second], pairs.bits, pairs.joined]
    return pd.DataFrame(dict(zip(NEAR_PAIR_COLUMNS, columns)), columns=NEAR_PAIR_COLUMNS)


def read_near_pairs(path: Path) -> pd.DataFrame:
    """A table :func:`near_pair_table` made, written as CSV."""
    return pd.read_csv(path, dtype={"domain": str, "source_a": str, "source_b": str, "bits": np.int64, "joined": bool})


def grouped_splits(
    params: RunParams, domain: str, files: list[SourceFile], hashes: list[str], thumbnails: list[str] | None = None
) -> tuple[dict[str, list[SourceFile]], pd.DataFrame]:
    """The files with their near-duplicate groups (``hashes`` and ``thumbnails``: one per file, "" for none), split
    by group; and the near pairs' rows (:func:`near_pair_table`)."""
    folder_groups = [f.group for f in files]
    groups, pairs = near_duplicate_grouping(folder_groups, hashes, params.near_duplicate_bits, thumbnails)
    if len(set(groups)) < 2 <= len(set(folder_groups)):
        raise ValueError(
            f"domain {domain!r}: near-duplicate grouping (near_duplicate_bits={params.near_duplicate_bits}) joined "
            f"the {len(set(folder_groups))} folder groups of its {len(files)} files into one group, which no split "
            "can share; lower near_duplicate_bits (0: folder groups only)"
        )
    grouped = [SourceFile(f.path, group, f.group) for f, group in zip(files, groups)]
    splits = assign_splits(
        grouped, params.train_per_domain, params.test_per_domain, params.seed * 1000 + params.domain_names.index(domain)
    )
    return splits, near_pair_table(domain, [f.path for f in files], pairs)


class DecidedImages(Protocol):
    entries: list[dict[str, Any]]


def near_test_check(journal: DecidedImages, bits: int) -> Callable[[Candidate], str | None] | None:
    """For the demo's train split: why a candidate within ``bits`` of an accepted test image is rejected, or None."""
    test = [e for e in journal.entries if e["split"] == "test" and e.get("hash")]
    if bits == 0 or not test:
        return None
    table = hash_array([e["hash"] for e in test])

    def reason(candidate: Candidate) -> str | None:
        if not candidate.hash:
            return None
        distance = hamming(table, hash_array([candidate.hash]))
        nearest = int(distance.argmin())
        if distance[nearest] > bits:
            return None
        return (
            f"near-duplicate: {distance[nearest]} bits from test image {test[nearest]['source']} "
            f"(near_duplicate_bits {bits})"
        )

    return reason


def join_within_splits(kept: dict[str, list[dict[str, Any]]], bits: int, domain: str) -> pd.DataFrame:
    """The demo's groups: near-duplicates by hash joined within each split (its splits are fixed by its
    generators; it keeps no thumbnails); returns the pairs the search found (:func:`near_pair_table`)."""
    tables = [pd.DataFrame(columns=NEAR_PAIR_COLUMNS)]
    for entries in kept.values():
        hashes = [e.get("hash", "") for e in entries]
        groups, pairs = near_duplicate_grouping([e["folder_group"] for e in entries], hashes, bits)
        for entry, group in zip(entries, groups):
            entry["group"] = group
        tables.append(near_pair_table(domain, [e["source"] for e in entries], pairs))
    return pd.concat(tables, ignore_index=True)
