"""The resumable journal of one domain's preparation: a pool of decoded images and one JSON line per decision,
flushed together every ``JOURNAL_COMMIT_EVERY`` images, so an interrupted prepare goes on where it stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from utils.core.run_dir import AtomicWriteError, atomic_write, write_text_atomic

JOURNAL_COMMIT_EVERY = 64  # images between flushes of the pool and the journal


def write_npy_atomic(path: Path, images: np.ndarray) -> None:
    with atomic_write(path) as temporary:
        out = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=images.shape)
        for start in range(0, len(images), 512):  # chunked: the source is a large memory map
            out[start : start + 512] = images[start : start + 512]
        out.flush()
        del out


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


class ShardJournal:
    """An interrupted prepare resumes from here: a pool memory map plus a JSON-lines journal, named after
    ``name`` (a domain's accept pass; ``<domain>_hashes``: its hash pass).

    Pool rows are flushed to disk before the journal lines that point at them, so the journal
    never names a row that is not on disk. A write that fails (a file-size limit, a full disk) raises
    AtomicWriteError naming the pool or the journal.
    """

    def __init__(self, data_dir: Path, name: str, fingerprint: dict[str, Any], capacity: int, size: int) -> None:
        self.pool_path = data_dir / f".{name}_pool.npy"
        self.log_path = data_dir / f".{name}_journal.jsonl"
        header = {"fingerprint": fingerprint, "capacity": capacity}
        self.entries: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        lines = self.log_path.read_text().splitlines() if self.log_path.is_file() else []
        ours = bool(lines) and _json_or_none(lines[0]) == header
        if ours and self.pool_path.is_file():
            for line in lines[1:]:
                entry = _json_or_none(line)
                if entry is None:  # a line cut short by the interruption: it and what follows are redone
                    break
                self.entries.append(entry)
            write_text_atomic(self.log_path, "".join(json.dumps(e) + "\n" for e in [header, *self.entries]))
            self.pool = np.load(self.pool_path, mmap_mode="r+")
        else:
            if ours:  # its pool is gone: a new pool must not meet entries naming rows it does not hold
                self.log_path.unlink()
            self.pool = self.new_pool(header, (capacity, size, size, 3))
        self.log = self.log_path.open("a")

    def new_pool(self, header: dict[str, Any], shape: tuple[int, ...]) -> np.memmap:
        """A zeroed pool, then the journal's header. Each is written whole or not at all; a pool whose journal
        could not be written is removed. A journal of other parameters stays until the new one replaces it."""
        with atomic_write(self.pool_path) as temporary:  # sparse: only the rows written take disk space
            pool = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=shape)
        try:
            write_text_atomic(self.log_path, json.dumps(header) + "\n")
        except AtomicWriteError:
            del pool
            self.pool_path.unlink()
            raise
        return pool

    def record(self, entry: dict[str, Any], rgb: np.ndarray | None = None) -> None:
        if rgb is not None:
            self.pool[entry["slot"]] = rgb
        self.entries.append(entry)
        self.pending.append(entry)
        if len(self.pending) >= JOURNAL_COMMIT_EVERY:
            self.commit()

    def commit(self) -> None:
        self.pool.flush()
        try:  # a line cut short is redone on resuming: the lines before it are the journal as it was
            self.log.write("".join(json.dumps(e) + "\n" for e in self.pending))
            self.log.flush()
            os.fsync(self.log.fileno())
        except OSError as err:
            raise AtomicWriteError(self.log_path, err) from err
        self.pending = []

    def remove(self) -> None:
        self.log.close()
        del self.pool
        self.pool_path.unlink(missing_ok=True)
        self.log_path.unlink(missing_ok=True)
