"""The kaggle client, either generation: find the paper's datasets, check a dataset before a push, read a
kernel's state and the last epoch its log reports.

kaggle 1.6 answers with dicts and objects whose fields are camelCase (``totalBytes``, ``lastUpdated``,
``nextPageToken``; ``kernels_status`` returns ``{"status": "complete", "failureMessage": ...}``) and raises
``ApiException`` (``.status``); 1.7 and 2.x answer with objects whose fields are snake_case (``total_bytes``,
``last_updated``, ``next_page_token``; ``.status`` is an enum) and raise ``requests``' ``HTTPError``
(``.response.status_code``). :func:`response_field` reads either. Every function takes the API object
(an authenticated ``KaggleApi``, or a stub); this module never imports ``kaggle``, whose import authenticates.

Whatever a call into the client raises (no network, an HTTP error, anything else) becomes, at the call, a
:class:`KaggleRequestError` naming what was asked for and saying what to do (:func:`kaggle_request`,
:func:`request_failure`), or a :class:`DatasetUnavailable` for a dataset Kaggle does not show these credentials.
"""

from __future__ import annotations

import enum
import functools
import json
import re
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
import requests
import urllib3

from utils.core.domains import is_placeholder_handle, location_parameter
from utils.core.errors import KaggleSetupError
from utils.core.parameters import RunParams
from utils.imaging.images import IMAGE_SUFFIXES

# Search words for the paper's two datasets, which it names without a Kaggle handle.
PAPER_DATASET_QUERIES: dict[str, str] = {"cartoon": "cartoon frames", "movie": "movie stills 2000-2020"}
DATASET_COLUMNS = ("handle", "title", "size", "files", "last_updated", "downloads")
HANDLE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
EPOCH_LINE_MARKS = (" epoch ", " done in ")  # what utils.pipeline.report_new_epochs prints per finished epoch
# kaggle 2.x asks through requests, 1.6 through urllib3; a name that does not resolve is socket.gaierror
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError, requests.exceptions.Timeout, urllib3.exceptions.HTTPError,
    ConnectionError, TimeoutError, socket.gaierror,
)  # fmt: skip
_MISSING = object()


class DatasetUnavailable(ValueError):
    """A dataset handle the kernel could not use: malformed, missing, private, or without images."""


class KaggleRequestError(KaggleSetupError):
    """A request to Kaggle failed (no network, an HTTP error, any exception out of the kaggle client); the message
    names what was asked for, what probably happened and what to do."""


# --- reading either generation's responses ------------------------------------------------------


@functools.cache  # a dataset's file list asks for the same few field names once per file
def snake_case(name: str) -> str:
    """``totalBytes`` -> ``total_bytes``; names without a lowercase-uppercase step stay as they are."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower() if re.search(r"[a-z]", name) else name


@functools.cache
def camel_case(name: str) -> str:
    """``total_bytes`` -> ``totalBytes``."""
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def response_field(response: Any, name: str, default: Any = None) -> Any:
    """A field of a kaggle response, whichever generation answered: an attribute or a dict key, spelled
    snake_case or camelCase (``response_field(dataset, "total_bytes")`` also finds ``totalBytes``).
    A field that is absent or None gives ``default``."""
    for spelling in dict.fromkeys((name, snake_case(name), camel_case(snake_case(name)))):
        if isinstance(response, dict):
            value = response.get(spelling)
        else:
            value = getattr(response, spelling, _MISSING)
        if value is not None and value is not _MISSING:
            return value
    return default


def kernel_state(response: Any) -> str:
    """'queued', 'running', 'complete', 'error', 'cancel_acknowledged', ... from a kernels_status response:
    2.x's ``.status`` enum (``KernelWorkerStatus.COMPLETE``), 1.6's ``{"status": "complete"}``, or a bare status."""
    status = response_field(response, "status", response)
    name = status.name if isinstance(status, enum.Enum) else str(status).rsplit(".", 1)[-1]
    return snake_case(name).lower()


def kernel_failure_message(response: Any) -> str:
    """A kernels_status response's failure message (2.x ``failure_message``, 1.6 ``failureMessage``); '' if none."""
    return str(response_field(response, "failure_message", ""))


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a client error: 1.6's ``ApiException.status``, 2.x's ``HTTPError.response.status_code``."""
    for status in (getattr(error, "status", None), getattr(getattr(error, "response", None), "status_code", None)):
        if isinstance(status, int):
            return status
    return None


def reached_no_server(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, is a connection that failed (no network, no DNS, a
    timeout): kaggle.com was not reached."""
    link: BaseException | None = error
    for _ in range(8):  # a cause chain is short; the bound guards against a cycle
        if link is None:
            return False
        if isinstance(link, NETWORK_ERRORS):
            return True
        link = link.__cause__ or link.__context__
    return False


def request_failure(subject: str, error: BaseException) -> KaggleRequestError:
    """What ``error``, raised by the kaggle client when asked about ``subject`` (``dataset 'owner/slug'``,
    ``kernel owner/slug``, ``search 'words'``), means and what to do about it."""
    status = http_status(error)
    if status is None and reached_no_server(error):
        why = (
            f"could not reach kaggle.com ({type(error).__name__}): check the network (on Kaggle: the notebook's "
            "Settings, Internet on) and run the command again"
        )
    elif status == 401:
        why = (
            "Kaggle refused the credentials (HTTP 401): create a new token on kaggle.com (Settings, API) and "
            "replace the old one (~/.kaggle/kaggle.json)"
        )
    elif status == 403:
        why = (
            "access denied (HTTP 403): it is private to another account, or these credentials may not use it "
            "(Kaggle asks for phone verification before GPUs and internet in notebooks)"
        )
    elif status == 404:
        why = (
            "not found on Kaggle (HTTP 404): it does not exist (a typo in the handle, a kernel not pushed yet), "
            "or it is private and these credentials cannot see it"
        )
    elif status == 429:
        why = "Kaggle answered HTTP 429 (too many requests): wait a few minutes and run the command again"
    elif status is not None and status >= 500:
        why = f"Kaggle answered HTTP {status} (a fault on Kaggle's side): run the command again later"
    elif status is not None:
        why = f"Kaggle answered HTTP {status}: {first_line(error)}"
    else:
        why = f"the kaggle client raised {type(error).__name__}: {first_line(error)} (KIT_DEBUG=1 shows its traceback)"
    return KaggleRequestError(f"{subject}: {why}")


def first_line(error: BaseException, limit: int = 300) -> str:
    """An error's message, its first line only and at most ``limit`` characters: an error line stays one line."""
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else "(no message)"
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextmanager
def kaggle_request(subject: str) -> Iterator[None]:
    """Around a call into the kaggle client, and nothing else: whatever the client raises becomes the
    :class:`KaggleRequestError` of :func:`request_failure` (raised from it, so ``KIT_DEBUG=1`` shows the client's
    traceback). The kit's own code stays outside, so a bug in it keeps its traceback."""
    try:
        yield
    except Exception as err:
        raise request_failure(subject, err) from err


def human_size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


# --- finding datasets ---------------------------------------------------------------------------


def _date(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if hasattr(value, "strftime") else str(value or "")[:10]


def dataset_row(dataset: Any) -> dict[str, Any]:
    """One search result as a table row (see :data:`DATASET_COLUMNS`)."""
    total_bytes = response_field(dataset, "total_bytes")
    files = response_field(dataset, "files")
    downloads = response_field(dataset, "download_count")
    return {
        "handle": str(response_field(dataset, "ref", "")),
        "title": str(response_field(dataset, "title", "")),
        "size": human_size(int(total_bytes)) if total_bytes is not None else str(response_field(dataset, "size", "")),
        "files": len(files) if files else "",  # search results often leave the file list empty: unknown, not 0
        "last_updated": _date(response_field(dataset, "last_updated")),
        "downloads": int(downloads) if downloads is not None else "",
    }


def search_datasets(api: Any, query: str, max_results: int = 20) -> pd.DataFrame:
    """Kaggle datasets matching ``query``, in Kaggle's order, one row each (:data:`DATASET_COLUMNS`);
    ``handle`` is what a domain's location takes (``domains``, or the paper's ``cartoon_dataset``/``movie_dataset``). Suggested queries: :data:`PAPER_DATASET_QUERIES`."""
    if max_results < 1:
        raise ValueError(f"max_results = {max_results}: must be at least 1")
    rows: dict[str, dict[str, Any]] = {}
    page = 1
    while len(rows) < max_results:
        with kaggle_request(f"search {query!r}"):
            answer = api.dataset_list(search=query, page=page)
        found = [dataset_row(d) for d in answer or []]
        new = [row for row in found if row["handle"] not in rows]
        if not new:
            break
        rows |= {row["handle"]: row for row in new}
        page += 1
    return pd.DataFrame(list(rows.values())[:max_results], columns=list(DATASET_COLUMNS))


def format_dataset_table(table: pd.DataFrame) -> str:
    """:func:`search_datasets`'s table for a terminal."""
    if table.empty:
        return "no datasets found"
    return table.to_string(index=False, max_colwidth=48)


# --- checking one dataset -----------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetCheck:
    """What a dataset holds, against what a profile needs of one domain (``train_per_domain + test_per_domain``).
    Image counts are before decoding: the prepare stage may still reject some (grayscale, too small, duplicates)."""

    handle: str
    images_by_extension: dict[str, int]
    total_bytes: int
    other_files: int
    needed: int

    @property
    def images(self) -> int:
        return sum(self.images_by_extension.values())

    @property
    def enough(self) -> bool:
        return self.images >= self.needed

    def summary(self) -> str:
        kinds = ", ".join(f"{count} {ext}" for ext, count in sorted(self.images_by_extension.items()))
        size = human_size(self.total_bytes)
        held = f"{self.handle}: {self.images} images ({kinds}), {self.other_files} other files, {size}"
        if self.enough:
            return f"{held}; enough: the profile needs {self.needed} (train_per_domain + test_per_domain)"
        return (
            f"{held}; NOT ENOUGH: {self.images} images against the {self.needed} the profile needs "
            "(train_per_domain + test_per_domain)"
        )


def check_handle(handle: str) -> str:
    if not HANDLE_PATTERN.fullmatch(handle):
        raise DatasetUnavailable(
            f"dataset handle {handle!r}: expected 'owner/slug', as in kaggle.com/datasets/owner/slug "
            "(find one with `python -m utils.kaggle datasets WORDS`)"
        )
    if is_placeholder_handle(handle):
        raise DatasetUnavailable(
            f"dataset handle {handle!r}: the docs' placeholder, not a dataset; "
            "find one with `python -m utils.kaggle datasets WORDS`"
        )
    return handle


def unavailable(handle: str, error: BaseException) -> DatasetUnavailable | None:
    """The DatasetUnavailable an HTTP error of the client means (a missing or private dataset); None for any other
    error: no network, a fault on Kaggle's side, a client that failed."""
    status = http_status(error)
    if status == 404:
        return DatasetUnavailable(
            f"dataset {handle!r}: not found on Kaggle (HTTP 404): a typo in the handle, "
            "or a private dataset these credentials cannot see"
        )
    if status in (401, 403):
        return DatasetUnavailable(
            f"dataset {handle!r}: access denied (HTTP {status}): the dataset is private, "
            "or these credentials may not read it"
        )
    return None


def dataset_files(api: Any, handle: str, page_size: int = 200) -> Iterator[Any]:
    """Every file of the dataset, page after page until the client gives no next page token."""
    page_token = None
    while True:
        try:
            page = api.dataset_list_files(handle, page_token=page_token, page_size=page_size)
        except Exception as err:
            raise (unavailable(handle, err) or request_failure(f"dataset {handle!r}", err)) from err
        error_message = response_field(page, "error_message")
        if error_message:
            raise DatasetUnavailable(f"dataset {handle!r}: {error_message}")
        yield from response_field(page, "files") or response_field(page, "dataset_files") or ()
        page_token = response_field(page, "next_page_token")
        if not page_token:
            return


def is_image_name(name: str) -> bool:
    """An image by its extension, hidden files and folders skipped (as utils.imaging.images.find_images does)."""
    path = PurePosixPath(name)
    return path.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in path.parts)


def check_dataset(api: Any, handle: str, needed_images: int, page_size: int = 200) -> DatasetCheck:
    """Count the dataset's image files (by extension, every page of its file list) against ``needed_images``.

    Raises:
        DatasetUnavailable: the handle is malformed, the dataset is missing (404) or private (401/403), or
            none of its files is an image. Too few images is not an error: the check says so (``enough``).
    """
    check_handle(handle)
    images: Counter[str] = Counter()
    others: Counter[str] = Counter()
    total_bytes = 0
    for file in dataset_files(api, handle, page_size):
        name = str(response_field(file, "name", ""))
        total_bytes += int(response_field(file, "total_bytes", 0))
        if is_image_name(name):
            images[PurePosixPath(name).suffix.lower()] += 1
        else:
            others[PurePosixPath(name).suffix.lower() or "no extension"] += 1
    if not images:
        kinds = ", ".join(f"{count} {ext}" for ext, count in others.most_common(5))
        raise DatasetUnavailable(
            f"dataset {handle!r}: has {others.total()} files, none an image ({kinds or 'no files at all'}); "
            f"the kit reads {', '.join(sorted(IMAGE_SUFFIXES))}"
        )
    return DatasetCheck(handle, dict(images), total_bytes, others.total(), needed_images)


def check_datasets(api: Any, params: RunParams) -> list[DatasetCheck]:
    """Every domain's dataset, each against ``train_per_domain + test_per_domain``.

    Raises:
        DatasetUnavailable: naming every unusable handle at once, with its parameter.
    """
    needed = params.train_per_domain + params.test_per_domain
    checks, problems = [], []
    for domain in params.domain_names:
        try:
            checks.append(check_dataset(api, params.location(domain), needed))
        except DatasetUnavailable as err:
            problems.append(f"parameter {location_parameter('kaggle', domain)}: {err}")
    if problems:
        raise DatasetUnavailable("; ".join(problems))
    return checks


# --- a running kernel's log ---------------------------------------------------------------------


def log_lines(log: str) -> list[str]:
    """The lines of a kernel log: 2.x gives a JSON array of ``{stream_name, time, data}`` or plain text."""
    try:
        entries = json.loads(log)
    except ValueError:
        entries = None
    if isinstance(entries, list):
        log = "".join(str(response_field(entry, "data", "")) for entry in entries)
    return log.splitlines()


def last_epoch_line(api: Any, kernel_id: str) -> str | None:
    """The last per-epoch line the pipeline printed in the kernel's log so far
    (``[2/7] 02_train_cartoon_seed0 epoch 1 done in 82 s, ...``); None when there is none yet, when the
    client has no logs call (1.6), or when fetching the log fails: polling must not fail on it."""
    fetch_log = getattr(api, "kernels_logs", None)
    if fetch_log is None:
        return None
    try:
        lines = log_lines(str(fetch_log(kernel_id) or ""))
    except Exception:  # noqa: BLE001 - a log is a nicety; the status poll goes on without it
        return None
    for line in reversed(lines):
        if all(mark in line for mark in EPOCH_LINE_MARKS):
            return line.strip()
    return None
