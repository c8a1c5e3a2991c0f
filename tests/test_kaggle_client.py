"""utils.kaggle.client against stub clients shaped like kaggle 1.6 (camelCase objects and dicts, ApiException)
and like kaggle 1.7+/2.x (snake_case objects, enums, requests' HTTPError). Offline: no stub calls the real client."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import socket
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import requests
import urllib3

from tests.helpers import run_python
from utils.core import domains, errors
from utils.core.parameters import RunParams
from utils.kaggle import client

UPDATED = dt.datetime(2021, 3, 4, 5, 6, 7)


class KernelWorkerStatus(enum.Enum):  # as in kagglesdk.kernels.types.kernels_enums
    QUEUED = 0
    RUNNING = 1
    COMPLETE = 2
    ERROR = 3
    CANCEL_REQUESTED = 4
    CANCEL_ACKNOWLEDGED = 5


class LegacyObject:
    """kaggle 1.6's model objects (Dataset, File, ListFilesResult): a JSON dict's camelCase keys as attributes."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)


class ApiException(Exception):
    """kaggle 1.6's kaggle.rest.ApiException."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"({status})\nReason: {reason}")
        self.status, self.reason = status, reason


def http_error(status: int) -> requests.exceptions.HTTPError:
    """What kaggle 2.x's client raises for an HTTP error status."""
    response = requests.Response()
    response.status_code = status
    return requests.exceptions.HTTPError(f"{status} Client Error", response=response)


# (name, bytes) per page of a dataset's file list; the last page alone holds .png files and a hidden file
PAGES = [
    [("frames/0001.jpg", 1000), ("frames/0002.JPG", 1000), ("README.md", 50)],
    [("frames/0003.jpeg", 1000), ("labels.csv", 20)],
    [("frames/0004.png", 2000), ("frames/0005.png", 2000), ("__MACOSX/._0005.png", 10)],
]
TEXT_ONLY = [[("train.csv", 100), ("test.csv", 100), ("README", 10)]]


class StubApi16:
    """kaggle 1.6: camelCase model objects, ``nextPageToken``, dict from kernels_status, no kernels_logs."""

    def __init__(self, pages: list | None = None, error: Exception | None = None) -> None:
        self.pages, self.error, self.calls = pages or PAGES, error, []

    def dataset_list(self, search: str = "", page: int = 1) -> list[LegacyObject]:
        self.calls.append(("dataset_list", search, page))
        if page > 1:
            return []
        return [
            LegacyObject({"ref": "alice/cartoon-frames", "title": "Cartoon frames", "totalBytes": 3 * 2**30,
                          "size": "3GB", "lastUpdated": UPDATED, "downloadCount": 1234, "files": []}),
            LegacyObject({"ref": "bob/toons", "title": "Toons", "size": "12MB", "lastUpdated": UPDATED,
                          "downloadCount": 7, "files": [LegacyObject({"name": "a.png"})] * 2}),
        ]  # fmt: skip

    def dataset_list_files(self, dataset: str, page_token: str | None = None, page_size: int = 20) -> LegacyObject:
        self.calls.append(("dataset_list_files", dataset, page_token, page_size))
        if self.error is not None:
            raise self.error
        index = int(page_token or 0)
        files = [
            LegacyObject({"name": name, "totalBytes": size, "size": f"{size}B"}) for name, size in self.pages[index]
        ]
        following = str(index + 1) if index + 1 < len(self.pages) else ""
        return LegacyObject({"error_message": None, "files": files, "nextPageToken": following})

    def kernels_status(self, kernel: str) -> dict[str, Any]:
        return {"status": "error", "failureMessage": "CUDA out of memory"}


class StubApi2:
    """kaggle 1.7+/2.x: snake_case objects, ``next_page_token``, an enum status, a kernels_logs call."""

    def __init__(self, pages: list | None = None, error: Exception | None = None, log: str | Exception = "") -> None:
        self.pages, self.error, self.log, self.calls = pages or PAGES, error, log, []

    def dataset_list(self, search: str = "", page: int = 1) -> list[SimpleNamespace]:
        self.calls.append(("dataset_list", search, page))
        ref = f"carol/movie-stills-{page}"
        return [SimpleNamespace(ref=ref, title=f"Movie stills {page}", total_bytes=1536, last_updated=UPDATED,
                                download_count=page, files=[])]  # fmt: skip

    def dataset_list_files(self, dataset: str, page_token: str | None = None, page_size: int = 20) -> SimpleNamespace:
        self.calls.append(("dataset_list_files", dataset, page_token, page_size))
        if self.error is not None:
            raise self.error
        index = int(page_token or 0)
        files = [SimpleNamespace(name=name, total_bytes=size) for name, size in self.pages[index]]
        following = str(index + 1) if index + 1 < len(self.pages) else ""
        return SimpleNamespace(files=files, next_page_token=following, error_message="")

    def kernels_status(self, kernel: str) -> SimpleNamespace:
        return SimpleNamespace(status=KernelWorkerStatus.COMPLETE, failure_message="")

    def kernels_logs(self, kernel: str) -> str:
        if isinstance(self.log, Exception):
            raise self.log
        return self.log


BOTH = pytest.mark.parametrize("stub", [StubApi16, StubApi2], ids=["kaggle-1.6", "kaggle-2.x"])


def test_response_field_reads_attributes_and_keys_in_either_spelling() -> None:
    assert client.response_field({"totalBytes": 5}, "total_bytes") == 5
    assert client.response_field(LegacyObject({"nextPageToken": "p2"}), "next_page_token") == "p2"
    assert client.response_field(SimpleNamespace(total_bytes=7), "total_bytes") == 7
    assert client.response_field({"failure_message": "x"}, "failure_message") == "x"
    assert client.response_field(SimpleNamespace(total_bytes=None, totalBytes=9), "total_bytes") == 9
    assert client.response_field(SimpleNamespace(), "total_bytes", "unknown") == "unknown"


def test_search_tables_the_16_shape() -> None:
    table = client.search_datasets(StubApi16(), "cartoon frames")
    assert list(table.columns) == list(client.DATASET_COLUMNS)
    assert table.to_dict("records") == [
        {"handle": "alice/cartoon-frames", "title": "Cartoon frames", "size": "3.0 GB", "files": "",
         "last_updated": "2021-03-04", "downloads": 1234},
        {"handle": "bob/toons", "title": "Toons", "size": "12MB", "files": 2, "last_updated": "2021-03-04",
         "downloads": 7},
    ]  # fmt: skip
    assert "alice/cartoon-frames" in client.format_dataset_table(table)


def test_search_tables_the_2x_shape_and_pages_up_to_max_results() -> None:
    api = StubApi2()
    table = client.search_datasets(api, client.PAPER_DATASET_QUERIES["movie"], max_results=3)
    assert table["handle"].tolist() == ["carol/movie-stills-1", "carol/movie-stills-2", "carol/movie-stills-3"]
    assert table.iloc[0].to_dict() == {
        "handle": "carol/movie-stills-1", "title": "Movie stills 1", "size": "1.5 KB", "files": "",
        "last_updated": "2021-03-04", "downloads": 1,
    }  # fmt: skip
    assert [call[1:] for call in api.calls] == [("movie stills 2000-2020", page) for page in (1, 2, 3)]
    assert client.format_dataset_table(table.iloc[:0]) == "no datasets found"


@BOTH
def test_check_counts_the_images_of_every_page(stub) -> None:
    api = stub()
    checked = client.check_dataset(api, "alice/cartoon-frames", needed_images=5, page_size=3)
    assert checked.images_by_extension == {".jpg": 2, ".jpeg": 1, ".png": 2}  # the hidden ._0005.png skipped
    assert checked.images == 5 and checked.enough
    assert checked.other_files == 3 and checked.total_bytes == 7080
    assert [call[2:] for call in api.calls] == [(None, 3), ("1", 3), ("2", 3)]
    assert "alice/cartoon-frames: 5 images" in checked.summary() and "enough" in checked.summary()


@BOTH
def test_too_few_images_is_reported_not_raised(stub) -> None:
    checked = client.check_dataset(stub(), "alice/cartoon-frames", needed_images=10_000)
    assert not checked.enough
    assert "NOT ENOUGH: 5 images against the 10000 the profile needs" in checked.summary()


@pytest.mark.parametrize(
    ("stub", "error", "expected"),
    [
        (StubApi16, ApiException(404, "Not Found"), "not found on Kaggle (HTTP 404)"),
        (StubApi2, http_error(404), "not found on Kaggle (HTTP 404)"),
        (StubApi16, ApiException(403, "Forbidden"), "access denied (HTTP 403)"),
        (StubApi2, http_error(403), "access denied (HTTP 403)"),
        (StubApi2, http_error(401), "access denied (HTTP 401)"),
    ],
    ids=["1.6-missing", "2.x-missing", "1.6-private", "2.x-private", "2.x-unauthorized"],
)
def test_missing_or_private_datasets_raise_naming_the_handle(stub, error: Exception, expected: str) -> None:
    with pytest.raises(client.DatasetUnavailable, match=r"'someone/typo-slug'") as caught:
        client.check_dataset(stub(error=error), "someone/typo-slug", needed_images=10)
    assert expected in str(caught.value)


@BOTH
def test_a_dataset_without_images_is_unavailable(stub) -> None:
    with pytest.raises(client.DatasetUnavailable, match=r"'someone/tables': has 3 files, none an image"):
        client.check_dataset(stub(pages=TEXT_ONLY), "someone/tables", needed_images=10)


@pytest.mark.parametrize("handle", ["cartoon-frames", "alice/cartoon/frames", "", "alice/ frames", "/frames"])
def test_a_malformed_handle_is_refused_before_any_request(handle: str) -> None:
    api = StubApi2()
    with pytest.raises(client.DatasetUnavailable, match=r"expected 'owner/slug'") as caught:
        client.check_dataset(api, handle, needed_images=10)
    assert repr(handle) in str(caught.value) and api.calls == []


def test_check_datasets_names_every_bad_handle_at_once() -> None:
    params = dataclasses.replace(RunParams(), source="kaggle", train_per_domain=8, test_per_domain=2,
                                 domains=(("cartoon", "cartoons"), ("movie", "carol/gone"), ("anime", "dan/gone")))  # fmt: skip
    with pytest.raises(client.DatasetUnavailable) as caught:
        client.check_datasets(StubApi2(error=http_error(404)), params)
    message = str(caught.value)
    assert "parameter domains['cartoon'] ('cartoon_dataset')" in message and "'cartoons'" in message
    assert "parameter domains['movie'] ('movie_dataset')" in message and "'carol/gone'" in message
    assert "parameter domains['anime']:" in message and "'dan/gone'" in message and "HTTP 404" in message

    good = dataclasses.replace(params, domains=(("cartoon", "alice/cartoon-frames"), ("movie", "carol/stills")))
    checks = client.check_datasets(StubApi16(), good)
    assert [c.handle for c in checks] == ["alice/cartoon-frames", "carol/stills"]
    assert all(c.needed == 10 and not c.enough for c in checks)


def test_kernel_state_and_failure_message_from_both_generations() -> None:
    response_16 = StubApi16().kernels_status("tester/kernel")
    assert client.kernel_state(response_16) == "error"
    assert client.kernel_failure_message(response_16) == "CUDA out of memory"
    assert client.kernel_state({"status": "cancelAcknowledged"}) == "cancel_acknowledged"

    response_2x = StubApi2().kernels_status("tester/kernel")
    assert client.kernel_state(response_2x) == "complete" and client.kernel_failure_message(response_2x) == ""
    failed = SimpleNamespace(status=KernelWorkerStatus.CANCEL_ACKNOWLEDGED, failure_message="stopped by the user")
    assert client.kernel_state(failed) == "cancel_acknowledged"
    assert client.kernel_failure_message(failed) == "stopped by the user"
    assert client.kernel_state(SimpleNamespace(status="KernelWorkerStatus.RUNNING")) == "running"


EPOCH_1 = "[2/7] 02_train_cartoon_seed0 epoch 1 done in 82 s, val CIEDE2000 9.12, 41.0 images/s"
EPOCH_2 = "[2/7] 02_train_cartoon_seed0 epoch 2 done in 80 s, val CIEDE2000 8.70, 41.5 images/s"
LOG_TEXT = f"training 3 model(s), 1 at a time\n{EPOCH_1}\n{EPOCH_2}\n[2/7] 02_train_cartoon_seed0 done in 170 s\n"


def test_last_epoch_line_from_a_json_log() -> None:
    # the JSON log splits the printed text into chunks that need not end at a line break
    chunks = [LOG_TEXT[:30], LOG_TEXT[30:100], LOG_TEXT[100:]]
    log = json.dumps([{"stream_name": "stdout", "time": 1.5 * i, "data": chunk} for i, chunk in enumerate(chunks)])
    assert client.last_epoch_line(StubApi2(log=log), "tester/kernel") == EPOCH_2


def test_last_epoch_line_from_a_plain_log_and_when_there_is_none() -> None:
    assert client.last_epoch_line(StubApi2(log=LOG_TEXT), "tester/kernel") == EPOCH_2
    assert client.last_epoch_line(StubApi2(log="installing what this image lacks\n"), "tester/kernel") is None
    assert client.last_epoch_line(StubApi2(log=http_error(403)), "tester/kernel") is None
    assert client.last_epoch_line(StubApi16(), "tester/kernel") is None  # 1.6 has no kernels_logs


@pytest.mark.slow
def test_importing_the_module_does_not_import_kaggle() -> None:
    probe = "import sys, utils.kaggle.client; sys.exit('kaggle' in sys.modules)"
    run = run_python("-c", probe, timeout=120)
    assert run.returncode == 0, run.stderr or "importing utils.kaggle.client imported kaggle"


def test_the_real_2x_response_objects_are_read() -> None:
    """kagglesdk's own classes, built offline (no request): the fields the stubs above assume exist."""
    service = pytest.importorskip("kagglesdk.datasets.types.dataset_api_service")
    kernels = pytest.importorskip("kagglesdk.kernels.types.kernels_api_service")
    enums = pytest.importorskip("kagglesdk.kernels.types.kernels_enums")
    dataset = service.ApiDataset()
    dataset.ref, dataset.title, dataset.total_bytes, dataset.download_count = "a/b", "Stills", 2048, 3
    dataset.last_updated = UPDATED
    assert client.dataset_row(dataset) == {"handle": "a/b", "title": "Stills", "size": "2.0 KB", "files": "",
                                           "last_updated": "2021-03-04", "downloads": 3}  # fmt: skip
    file, page = service.ApiDatasetFile(), service.ApiListDatasetFilesResponse()
    file.name, file.total_bytes = "stills/1.png", 10
    page.dataset_files, page.next_page_token = [file], ""
    api = SimpleNamespace(dataset_list_files=lambda handle, page_token=None, page_size=20: page)
    assert client.check_dataset(api, "a/b", needed_images=1).images_by_extension == {".png": 1}
    status = kernels.ApiGetKernelSessionStatusResponse()
    status.status, status.failure_message = enums.KernelWorkerStatus.ERROR, "out of memory"
    assert client.kernel_state(status) == "error" and client.kernel_failure_message(status) == "out of memory"


# --- whatever the client raises: one KaggleRequestError naming what was asked ---------------------------------


def no_network_2x() -> requests.exceptions.ConnectionError:
    """What kaggle 2.x raises without a network: requests' ConnectionError, from urllib3's MaxRetryError."""
    refused = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 101]")
    cause = urllib3.exceptions.MaxRetryError(None, "/api/v1/datasets/list", refused)
    error = requests.exceptions.ConnectionError(cause)
    error.__cause__ = cause
    return error


def no_network_16() -> urllib3.exceptions.MaxRetryError:
    """What kaggle 1.6 raises without a network: urllib3's own MaxRetryError (its client is urllib3's)."""
    return urllib3.exceptions.MaxRetryError(None, "/api/v1/datasets/list", socket.gaierror(-3, "name resolution"))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (no_network_2x(), "could not reach kaggle.com (ConnectionError): check the network (on Kaggle: "),
        (no_network_16(), "could not reach kaggle.com (MaxRetryError)"),
        (requests.exceptions.ReadTimeout("read timed out"), "could not reach kaggle.com (ReadTimeout)"),
        (http_error(401), "Kaggle refused the credentials (HTTP 401): create a new token"),
        (ApiException(403, "Forbidden"), "access denied (HTTP 403)"),
        (http_error(404), "not found on Kaggle (HTTP 404)"),
        (http_error(429), "HTTP 429 (too many requests)"),
        (ApiException(503, "Service Unavailable"), "HTTP 503 (a fault on Kaggle's side)"),
        (KeyError("token"), "the kaggle client raised KeyError: 'token' (KIT_DEBUG=1 shows its traceback)"),
    ],
    ids=["2.x-offline", "1.6-offline", "timeout", "401", "1.6-403", "404", "429", "1.6-503", "unexpected"],
)
def test_a_client_error_says_what_happened_and_what_to_do(error: Exception, expected: str) -> None:
    with pytest.raises(client.KaggleRequestError) as caught:
        with client.kaggle_request("kernel tester/cross-domain-colorization"):
            raise error
    message = str(caught.value)
    assert message.startswith("kernel tester/cross-domain-colorization: ") and expected in message
    assert "\n" not in message and caught.value.__cause__ is error  # KIT_DEBUG=1 shows the client's traceback
    assert isinstance(caught.value, errors.KaggleSetupError)  # a kit error: a command line prints its one line


def test_a_long_client_message_stays_one_short_line() -> None:
    failure = client.request_failure("search 'x'", RuntimeError("first line " + "x" * 1000 + "\nsecond line"))
    assert "second line" not in str(failure) and len(str(failure)) < 400 and str(failure).endswith("traceback)")


@pytest.mark.parametrize(
    "error", [no_network_2x(), no_network_16(), http_error(500), ValueError("Unexpected answer")],
    ids=["2.x-offline", "1.6-offline", "500", "unexpected"],
)  # fmt: skip
def test_a_dataset_lookup_that_fails_other_than_404_or_403_names_the_handle(error: Exception) -> None:
    with pytest.raises(client.KaggleRequestError, match=r"^dataset 'someone/cartoon-frames': ") as caught:
        client.check_dataset(StubApi2(error=error), "someone/cartoon-frames", needed_images=10)
    assert caught.value.__cause__ is error


@BOTH
def test_a_search_without_network_names_the_search_words(stub) -> None:
    class Offline(stub):
        def dataset_list(self, search: str = "", page: int = 1) -> list:
            raise no_network_2x() if stub is StubApi2 else no_network_16()

    with pytest.raises(client.KaggleRequestError, match=r"^search 'cartoon frames': could not reach kaggle.com"):
        client.search_datasets(Offline(), "cartoon frames")


def test_the_kits_own_bug_is_not_taken_for_a_client_error() -> None:
    """Only the call into the client is wrapped: a bug in reading its answer keeps its own traceback."""
    api = SimpleNamespace(dataset_list=lambda search, page=1: [object()] if page == 1 else [])
    with mock.patch.object(client, "dataset_row", side_effect=ZeroDivisionError("the kit's bug")):
        with pytest.raises(ZeroDivisionError):
            client.search_datasets(api, "cartoon")


@pytest.mark.parametrize("handle", ["OWNER/CARTOON-SLUG", "OWNER/MOVIE-SLUG", "OWNER/SLUG", "someone/SLUG"])
def test_the_docs_placeholder_handle_is_refused_before_any_request(handle: str) -> None:
    api = StubApi2()
    with pytest.raises(client.DatasetUnavailable, match=r"the docs' placeholder, not a dataset") as caught:
        client.check_dataset(api, handle, needed_images=10)
    assert repr(handle) in str(caught.value) and api.calls == []


@pytest.mark.parametrize("handle", ["Cornell-University/arxiv", "someone/cartoon-frames", "owner/slug"])
def test_a_real_handle_is_no_placeholder(handle: str) -> None:
    assert not domains.is_placeholder_handle(handle)  # capitals alone are no placeholder: Kaggle has such owners
