"""The Kaggle bundle, offline: the kernel notebook runs alone, kaggle's own push validation
accepts it (network stubbed), status/output work against a stub, and no key leaks anywhere."""

from __future__ import annotations

import importlib
import io
import json
import os
import secrets
import shutil
import tarfile
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pandas as pd
import pytest
import torch

from tests.conftest import TINY
from tests.helpers import KIT_ROOT, run_python, run_with_data
from tests.test_kaggle_client import ApiException, StubApi2, StubApi16, http_error, no_network_2x, no_network_16
from utils.core import config, errors
from utils.kaggle import client, kernel
from utils.kaggle import commands as kit_kaggle
from utils.run import scheduler
from utils.train import time_budget, training

DATASETS = {"cartoon_dataset": "someone/cartoon-frames", "movie_dataset": "someone/movie-stills"}
BUDGET_SEAM = (
    time_budget.TEST_BUDGET_EPOCHS_ENV
)  # the test-only environment variable that spends the budget after N epochs


def test_top_level_metadata_is_valid_for_the_kaggle_cli() -> None:
    meta = json.loads((KIT_ROOT / "kernel-metadata.json").read_text())
    owner, _, slug = meta["id"].partition("/")
    assert owner == kit_kaggle.PLACEHOLDER_OWNER and slug
    assert len(meta["title"]) >= 5
    from kaggle.api.kaggle_api_extended import slugify  # the slug Kaggle derives from the title

    assert slugify(meta["title"]) == slug
    assert meta["code_file"] == f"build/kaggle/{kit_kaggle.NOTEBOOK_NAME}"
    assert meta["language"] == "python" and meta["kernel_type"] == "notebook"
    assert meta["is_private"] is True and meta["enable_gpu"] is True and meta["enable_internet"] is True
    assert meta["machine_shape"] == "NvidiaTeslaT4"
    assert isinstance(meta["dataset_sources"], list)


def test_the_kit_archive_is_complete_and_reproducible() -> None:
    archive = kit_kaggle.kit_archive()
    assert archive == kit_kaggle.kit_archive()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert {
        "utils/train/training.py",
        "utils/kaggle/commands.py",
        "notebooks/02_train.ipynb",
        "requirements.txt",
    } <= names
    assert not any("__pycache__" in n for n in names)
    assert not any(r.startswith(("pytest", "ruff")) for r in kit_kaggle.runtime_requirements())


@pytest.fixture(scope="module")
def fake_key() -> str:
    return secrets.token_hex(16)


KERNEL_ID = "tester/cross-domain-colorization"


def run_bundled_kernel(bundle_dir: Path, work: Path, fake_key: str, extra_env: dict[str, str]) -> Path:
    """The bundled notebook executed by papermill in the empty folder ``work`` (Kaggle's working directory),
    by a process that cannot import the repository, with a fake Kaggle key in its environment; returns
    the rendered notebook."""
    work.mkdir(parents=True)
    rendered = work.parent / f"{work.name}_rendered.ipynb"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"KAGGLE_USERNAME": "tester", "KAGGLE_KEY": fake_key, **extra_env}
    run = run_python("-m", "papermill", str(bundle_dir / kit_kaggle.NOTEBOOK_NAME), str(rendered),
                     "--no-progress-bar", env=env, cwd=work, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return rendered


@pytest.fixture(scope="module")
def kernel_run(tmp_path_factory, fake_key: str) -> dict[str, Path]:
    """Two versions of the bundled kernel on a fake /kaggle tree. Version 1 runs out of its time budget after
    epoch 1 of a 2-epoch run (the budget's test seam); version 2, pushed with --continue, finds version 1's
    pruned output attached as its own kernel's input and continues the run to its end."""
    base = tmp_path_factory.mktemp("kernel")
    input_root = base / "kaggle" / "input"
    overrides = {**TINY, "models": "mixed", "epochs": 2, "kaggle_input_root": str(input_root)}
    first = kit_kaggle.bundle("demo", overrides, KERNEL_ID, base / "bundle_v1")
    rendered_first = run_bundled_kernel(first, base / "v1", fake_key, {BUDGET_SEAM: "1"})
    # Kaggle mounts the kernel's last output under the input root, e.g. /kaggle/input/notebooks/<user>/<slug>/
    shutil.copytree(base / "v1", input_root / "notebooks" / "tester" / KERNEL_ID.split("/")[1])
    second = kit_kaggle.bundle("demo", overrides, KERNEL_ID, base / "bundle_v2", continue_previous=True)
    rendered = run_bundled_kernel(second, base / "v2", fake_key, {})
    return {"bundle": second, "work": base / "v2", "rendered": rendered, "first": base / "v1",
            "rendered_first": rendered_first, "overrides": overrides}  # fmt: skip


@pytest.mark.slow
def test_the_bundled_kernel_runs_alone_and_keeps_the_run_directory(kernel_run: dict[str, Path]) -> None:
    work = kernel_run["work"]
    text = kernel_run["rendered"].read_text()
    assert f"kit: {work / 'kit' / 'utils'}" in text, "the kernel imported a kit other than the unpacked one"
    assert "every requirement is already installed" in text
    for stage in ("01_prepare_data", "02_train_mixed_seed0", "03_evaluate", "04_figures", "05_colorize"):
        assert (work / "notebooks" / f"{stage}.ipynb").is_file()
    assert (work / "report.md").is_file() and (work / "eval" / "summary.csv").is_file()
    assert (work / "data" / "manifest.csv").is_file() and (work / "figures" / "ciede2000.png").is_file()
    # the output keeps each model's best checkpoint, not the shards or the resumable checkpoints
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*.pt")) == ["models/seed0/mixed/best.pt"]
    assert (work / "colorized" / "camera_colorized.png").is_file()
    assert not list((work / "data").glob("*.npy"))
    assert "CIEDE2000 (lower is better)" in text  # the report, shown inline
    assert "without encryption" not in text  # no ipykernel warning per stage notebook
    assert " epoch 2/2 done in " in text  # one line per epoch and model in the kernel's log


@pytest.mark.slow
def test_a_run_out_of_time_keeps_what_a_new_version_resumes_from(kernel_run: dict[str, Path]) -> None:
    first = kernel_run["first"]
    record = json.loads((first / "run.json").read_text())
    assert record["partial"], "the budget ran out: run.json says the run is partial"
    assert "push --continue" in (first / "report.md").read_text()
    assert not (first / "notebooks" / "03_evaluate.ipynb").exists()  # evaluation waits for finished models
    kept = sorted(p.relative_to(first).as_posix() for p in first.rglob("*.pt"))
    assert kept == ["models/seed0/mixed/best.pt", "models/seed0/mixed/checkpoint_last.pt"]
    assert len(pd.read_csv(first / "models" / "seed0" / "mixed" / "history.csv")) == 1


@pytest.mark.slow
def test_the_continued_version_ends_with_the_weights_of_an_uninterrupted_run(
    kernel_run: dict[str, Path], prepared_run: Path, tmp_path: Path
) -> None:
    work = kernel_run["work"]
    assert "continuing from" in kernel_run["rendered"].read_text()
    assert not json.loads((work / "run.json").read_text()).get("partial")
    first_epoch, continued_epochs = (pd.read_csv(config.model_dir(d, "mixed", 0) / "history.csv")
                                     for d in (kernel_run["first"], work))  # fmt: skip
    # epoch 1 was trained by version 1 alone: its row, timing included, came with the checkpoint
    pd.testing.assert_frame_equal(continued_epochs.iloc[:1], first_epoch)
    params = config.resolve_params("demo", kernel_run["overrides"])
    run_with_data(tmp_path, prepared_run)  # the demo data at TINY sizes: the data the kernel prepared
    threads = torch.get_num_threads()
    torch.set_num_threads(scheduler.cpu_cores())  # the pipeline's one train notebook gets every core
    try:
        training.train(params, tmp_path, "mixed", show_progress=False)  # both epochs, uninterrupted
    finally:
        torch.set_num_threads(threads)
    ours, continued = (
        torch.load(config.model_dir(d, "mixed", 0) / "best.pt", weights_only=True) for d in (tmp_path, work)
    )
    assert ours["epoch"] == continued["epoch"]
    assert all(torch.equal(ours["generator"][k], continued["generator"][k]) for k in ours["generator"])
    losses = ["epoch", "loss_D", "loss_G_GAN", "loss_G_L1", "val_ciede2000"]
    history, straight = (pd.read_csv(config.model_dir(d, "mixed", 0) / "history.csv")[losses] for d in (work, tmp_path))
    pd.testing.assert_frame_equal(history, straight)


@pytest.mark.slow
def test_no_output_or_rendered_notebook_contains_the_key(kernel_run: dict[str, Path], fake_key: str) -> None:
    files = [p for root in ("bundle", "work", "first") for p in kernel_run[root].rglob("*") if p.is_file()]
    files += [kernel_run["rendered"], kernel_run["rendered_first"]]
    assert len(files) > 30
    leaking = [str(p) for p in files if fake_key.encode() in p.read_bytes()]
    assert not leaking, f"the Kaggle key was written into {leaking}"


class RecordingClient:
    """Stands in for kagglesdk's client: records the save_kernel request instead of sending it."""

    def __init__(self, requests: list) -> None:
        self.kernels = SimpleNamespace(kernels_api_client=SimpleNamespace(save_kernel=self.save_kernel))
        self.requests = requests

    def save_kernel(self, request):
        self.requests.append(request)
        return SimpleNamespace(error=None, url="https://www.kaggle.com/code/tester/x", version_number=1)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def test_push_passes_kaggles_own_validation_and_sends_the_notebook(
    tmp_path: Path, monkeypatch, capsys, fake_key: str
) -> None:
    monkeypatch.setenv("KAGGLE_KEY", fake_key)
    extended = importlib.import_module("kaggle.api.kaggle_api_extended")
    api = extended.KaggleApi()
    api.config_values = {"username": "tester"}
    requests: list = []
    monkeypatch.setattr(api, "build_kaggle_client", lambda: RecordingClient(requests))

    kernel_id = kit_kaggle.push("paper", DATASETS, api=api, out_dir=tmp_path / "bundle", check=False)

    assert kernel_id == "tester/cross-domain-colorization"  # the placeholder owner replaced
    (request,) = requests
    assert request.slug == kernel_id and request.new_title == "Cross-domain colorization"
    assert request.language == "python" and request.kernel_type == "notebook"
    assert request.enable_gpu is True and request.enable_internet is True and request.is_private is True
    assert request.machine_shape == "NvidiaTeslaT4"
    assert list(request.dataset_data_sources) == list(DATASETS.values())
    notebook = json.loads(request.text)
    sources = [cell["source"] for cell in notebook["cells"]]
    assert any("KIT_ARCHIVE = " in s for s in sources) and any("profile = 'paper'" in s for s in sources)
    assert fake_key not in request.text
    assert "watch it with" in capsys.readouterr().out


def test_push_checks_both_datasets_and_refuses_a_bad_handle_before_any_upload(tmp_path: Path, monkeypatch) -> None:
    import requests

    extended = importlib.import_module("kaggle.api.kaggle_api_extended")
    api = extended.KaggleApi()
    api.config_values = {"username": "tester"}
    uploads: list = []
    monkeypatch.setattr(api, "build_kaggle_client", lambda: RecordingClient(uploads))
    frames = SimpleNamespace(files=[SimpleNamespace(name=f"show/{i}.png", total_bytes=10) for i in range(9000)],
                             next_page_token="")  # fmt: skip

    def dataset_list_files(handle, page_token=None, page_size=20):
        if handle == DATASETS["movie_dataset"]:
            raise requests.exceptions.HTTPError("404 Client Error", response=SimpleNamespace(status_code=404))
        return frames

    monkeypatch.setattr(api, "dataset_list_files", dataset_list_files)
    with pytest.raises(client.DatasetUnavailable, match="someone/movie-stills"):
        kit_kaggle.push("paper", DATASETS, api=api, out_dir=tmp_path / "bundle")
    assert uploads == [] and not (tmp_path / "bundle").exists()  # nothing bundled, nothing sent


def test_a_continued_push_lists_the_kernel_itself_as_a_source(tmp_path: Path) -> None:
    folder = kit_kaggle.bundle("paper", DATASETS, KERNEL_ID, tmp_path, continue_previous=True)
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    assert meta["kernel_sources"] == [KERNEL_ID] and meta["dataset_sources"] == list(DATASETS.values())
    notebook = json.loads((folder / kit_kaggle.NOTEBOOK_NAME).read_text())
    parameters = next("".join(c["source"]) for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "continue_previous = True" in parameters and "'time_limit_hours': 11.0" in parameters
    plain = kit_kaggle.bundle("paper", {**DATASETS, "time_limit_hours": 5}, KERNEL_ID, tmp_path / "plain")
    assert json.loads((plain / "kernel-metadata.json").read_text())["kernel_sources"] == []
    parameters = next("".join(c["source"]) for c in json.loads((plain / kit_kaggle.NOTEBOOK_NAME).read_text())["cells"]
                      if "parameters" in c["metadata"].get("tags", []))  # fmt: skip
    assert "continue_previous = False" in parameters and "'time_limit_hours': 5" in parameters


def test_the_bundle_lists_every_domains_dataset_as_a_source(tmp_path: Path) -> None:
    domains = {"anime": "someone/anime-frames", "photo": "someone/photos", "painting": "other/paintings"}
    folder = kit_kaggle.bundle("paper", {"domains": domains}, KERNEL_ID, tmp_path)
    assert json.loads((folder / "kernel-metadata.json").read_text())["dataset_sources"] == list(domains.values())
    notebook = json.loads((folder / kit_kaggle.NOTEBOOK_NAME).read_text())
    parameters = next("".join(c["source"]) for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert "'painting': 'other/paintings'" in parameters  # the kernel's run gets every domain


def test_the_previous_output_is_found_in_either_layout(tmp_path: Path) -> None:
    for layout in ("cross-domain-colorization", "notebooks/tester/cross-domain-colorization"):
        root = tmp_path / layout.replace("/", "_") / "input"
        (root / layout / "models").mkdir(parents=True)
        (root / layout / "run.json").write_text("{}")
        (root / "someone-cartoon-frames" / "frames").mkdir(parents=True)  # an attached dataset beside it
        assert kernel.find_previous_output(root, KERNEL_ID) == root / layout
    with pytest.raises(errors.KaggleSetupError, match="no output of tester/cross-domain-colorization"):
        kernel.find_previous_output(tmp_path / "empty", KERNEL_ID)


def test_kaggles_validation_rejects_a_bad_bundle(tmp_path: Path, monkeypatch) -> None:
    """The stubbed push still runs kaggle's checks: a short title fails before any request."""
    extended = importlib.import_module("kaggle.api.kaggle_api_extended")
    api = extended.KaggleApi()
    requests: list = []
    monkeypatch.setattr(api, "build_kaggle_client", lambda: RecordingClient(requests))
    folder = kit_kaggle.bundle("demo", {}, "tester/cross-domain-colorization", tmp_path)
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    (folder / "kernel-metadata.json").write_text(json.dumps(meta | {"title": "abc"}))
    with pytest.raises(ValueError, match="Title must be at least five characters"):
        api.kernels_push(str(folder))
    assert requests == []


def test_the_paper_profile_needs_its_dataset_handles(tmp_path: Path) -> None:
    with pytest.raises(errors.ParameterError, match="cartoon_dataset"):
        kit_kaggle.bundle("paper", {}, None, tmp_path)


def test_missing_credentials_name_where_the_client_looks(tmp_path: Path, monkeypatch, capsys) -> None:
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kit_kaggle.main(["output", "--id", "tester/cross-domain-colorization"]) == 2
    message = capsys.readouterr().err
    assert "no Kaggle credentials" in message and "~/.kaggle/kaggle.json" in message and "KAGGLE_KEY" in message


def test_a_placeholder_owner_without_a_username_asks_for_an_id() -> None:
    with pytest.raises(errors.KaggleSetupError, match="--id yourname/cross-domain-colorization"):
        kit_kaggle.resolve_kernel_id(None, SimpleNamespace(config_values={}))


def test_status_polls_until_the_kernel_finishes(capsys) -> None:
    states = iter(["KernelWorkerStatus.QUEUED", "KernelWorkerStatus.RUNNING", "KernelWorkerStatus.RUNNING",
                   "KernelWorkerStatus.COMPLETE"])  # fmt: skip
    api = SimpleNamespace(kernels_status=lambda kernel: SimpleNamespace(status=next(states), failure_message=""))
    assert kit_kaggle.wait_for_kernel("tester/cross-domain-colorization", api, interval=0) == "complete"
    printed = capsys.readouterr().out
    assert [line.split(": ")[-1] for line in printed.splitlines()] == ["queued", "running", "complete"]

    failed = SimpleNamespace(status="KernelWorkerStatus.ERROR", failure_message="CUDA out of memory")
    api = SimpleNamespace(kernels_status=lambda kernel: failed)
    assert kit_kaggle.wait_for_kernel("tester/cross-domain-colorization", api, interval=0) == "error"
    assert "CUDA out of memory" in capsys.readouterr().out


def test_output_lands_in_a_run_directory_ready_to_read(tmp_path: Path, monkeypatch, capsys) -> None:
    calls = []

    def kernels_output(kernel, path, force, quiet):
        calls.append((kernel, path))
        (Path(path) / "report.md").write_text("# results\n")
        return [str(Path(path) / "report.md")], None

    monkeypatch.setattr(kit_kaggle, "KIT_ROOT", tmp_path)
    dest = kit_kaggle.fetch_output("tester/cross-domain-colorization", SimpleNamespace(kernels_output=kernels_output))
    assert dest == tmp_path / "runs" / "kaggle-cross-domain-colorization"
    assert calls == [("tester/cross-domain-colorization", str(dest))] and (dest / "report.md").is_file()
    assert "start with" in capsys.readouterr().out


class Output16(StubApi16):
    """kaggle 1.6's kernels_output: each name the kernel's output lists is joined to the folder as given and
    written, and the list of paths returned."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def kernels_output(self, kernel: str, path: str, force: bool = False, quiet: bool = True) -> list[str]:
        outfiles = []
        for name in self.names:
            outfile = os.path.join(path, name)
            outfiles.append(outfile)
            with open(outfile, "wb") as out:
                out.write(b"from the kernel")
        return outfiles


class Output2(StubApi2):
    """kaggle 2.x's kernels_output: a name that resolves outside the folder is refused with a ValueError, once
    the files listed before it are written; returns (paths, next page token)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def kernels_output(self, kernel: str, path: str, force: bool = False, quiet: bool = True) -> tuple[list, None]:
        outfiles = []
        for name in self.names:
            outfile = os.path.join(path, name)
            if not Path(os.path.realpath(outfile)).is_relative_to(os.path.realpath(path)):
                raise ValueError(f"Refusing to download '{name}': resolves outside destination '{path}'")
            outfiles.append(outfile)
            Path(outfile).write_bytes(b"from the kernel")
        return outfiles, None


@pytest.mark.parametrize("client", [Output16, Output2], ids=["kaggle-1.6", "kaggle-2.x"])
def test_output_stays_inside_its_folder(client: type, tmp_path: Path, monkeypatch, capsys) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    names = ["report.md", "../../escape.txt", str(elsewhere / "absolute.txt")]
    api = client(names)
    monkeypatch.setattr(kit_kaggle, "kaggle_api", lambda: api)
    monkeypatch.setattr(kit_kaggle, "KIT_ROOT", tmp_path / "kit")
    dest = tmp_path / "kit" / "runs" / "kaggle-cross-domain-colorization"

    assert kit_kaggle.main(["output", "--id", "tester/cross-domain-colorization"]) == 2
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err and len(printed.err.strip().splitlines()) == 1
    assert printed.err.startswith("error: output of tester/cross-domain-colorization: ")
    assert "../../escape.txt" in printed.err and "files into" not in printed.out
    if client is Output16:  # written outside by the client, then deleted and named
        assert str(elsewhere / "absolute.txt") in printed.err and "deleted" in printed.err
    assert not (tmp_path / "kit" / "escape.txt").exists() and not (elsewhere / "absolute.txt").exists()
    assert (dest / "report.md").read_bytes() == b"from the kernel"


def test_the_datasets_and_check_commands(monkeypatch, capsys) -> None:
    found = [SimpleNamespace(ref="someone/cartoon-frames", title="Cartoon frames", total_bytes=2 * 2**30,
                             last_updated="2023-05-01", download_count=1234, file_count=10000)]  # fmt: skip
    few = SimpleNamespace(
        files=[SimpleNamespace(name=f"{i}.jpg", total_bytes=10) for i in range(30)], next_page_token=""
    )
    api = SimpleNamespace(dataset_list=lambda search, page=1, **kw: found if page == 1 else [],
                          dataset_list_files=lambda handle, page_token=None, page_size=20: few)  # fmt: skip
    monkeypatch.setattr(kit_kaggle, "kaggle_api", lambda: api)
    assert kit_kaggle.main(["datasets", "cartoon", "frames"]) == 0
    out = capsys.readouterr().out
    assert "someone/cartoon-frames" in out and "Cartoon frames" in out and "1234" in out
    assert kit_kaggle.main(["check", "someone/cartoon-frames", "--profile", "demo"]) == 1  # 30 images, demo needs 544
    assert "someone/cartoon-frames" in capsys.readouterr().out
    assert kit_kaggle.main(["check", "someone/cartoon-frames", "--profile", "demo", "-p", "train_per_domain=20",
                            "-p", "test_per_domain=5"]) == 0  # fmt: skip
    assert kit_kaggle.main(["check"]) == 2 and "owner/slug" in capsys.readouterr().err


def test_check_needs_only_the_image_count_of_a_profile(monkeypatch, capsys) -> None:
    """`check OWNER/SLUG` with the default profile (paper), whose dataset handles are not set: the handles are
    what is being checked, so only train_per_domain + test_per_domain is read of the profile."""
    frames = SimpleNamespace(
        files=[SimpleNamespace(name=f"show/{i}.png", total_bytes=10) for i in range(10_000)], next_page_token=""
    )
    api = SimpleNamespace(dataset_list_files=lambda handle, page_token=None, page_size=20: frames)
    monkeypatch.setattr(kit_kaggle, "kaggle_api", lambda: api)
    assert kit_kaggle.main(["check", "someone/cartoon-frames"]) == 0
    assert "10000 images" in capsys.readouterr().out
    assert kit_kaggle.main(["check", "someone/cartoon-frames", "-p", "test_per_domain=2001"]) == 1
    assert "NOT ENOUGH: 10000 images against the 10001 the profile needs" in capsys.readouterr().out
    assert kit_kaggle.main(["check", "someone/cartoon-frames", "-p", "epoch=3"]) == 2  # a typo is still named
    assert "unknown parameter 'epoch'" in capsys.readouterr().err


# --- every failure of the client: one error line naming the command and what it asked about ---------------------


class FailingClient:
    """A client (with credentials) whose every request raises ``error``: no network, an HTTP error, anything."""

    config_values = {"username": "tester"}

    def __init__(self, error: Exception) -> None:
        self.error = error

    def fail(self, *args, **kwargs):
        raise self.error

    dataset_list = dataset_list_files = kernels_push = kernels_status = kernels_output = kernels_logs = fail


FAILURES = {
    "2.x-offline": (no_network_2x, "could not reach kaggle.com (ConnectionError): check the network"),
    "1.6-offline": (no_network_16, "could not reach kaggle.com (MaxRetryError)"),
    "2.x-http-500": (lambda: http_error(500), "Kaggle answered HTTP 500 (a fault on Kaggle's side)"),
    "1.6-http-404": (lambda: ApiException(404, "Not Found"), "not found on Kaggle (HTTP 404)"),
    "unexpected": (lambda: AttributeError("'NoneType' object has no attribute 'text'"), "raised AttributeError"),
}
FAILING_COMMANDS = {  # argv -> what the error line names
    "datasets": (["datasets", "cartoon", "frames"], "search 'cartoon frames'"),
    "check": (["check", "someone/cartoon-frames"], "dataset 'someone/cartoon-frames'"),
    "push": (["push", "-p", "cartoon_dataset=someone/cartoon-frames", "-p", "movie_dataset=someone/movie-stills"],
             "'someone/cartoon-frames'"),
    "push-unchecked": (["push", "--no-check", "-p", "cartoon_dataset=someone/cartoon-frames",
                        "-p", "movie_dataset=someone/movie-stills"], f"kernel {KERNEL_ID}"),
    "status": (["status", "--id", KERNEL_ID], f"kernel {KERNEL_ID}"),
    "output": (["output", "--id", KERNEL_ID], f"kernel {KERNEL_ID}"),
}  # fmt: skip


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("command", FAILING_COMMANDS)
def test_a_failing_client_gives_one_error_line(command: str, failure: str, tmp_path: Path, monkeypatch, capsys) -> None:
    argv, named = FAILING_COMMANDS[command]
    make_error, expected = FAILURES[failure]
    monkeypatch.setattr(kit_kaggle, "kaggle_api", lambda: FailingClient(make_error()))
    monkeypatch.setattr(kit_kaggle, "BUILD_DIR", tmp_path / "build")
    if command == "output":  # into a scratch runs/, not the repository's
        monkeypatch.setattr(kit_kaggle, "KIT_ROOT", tmp_path)
    monkeypatch.delenv(errors.DEBUG_ENV, raising=False)

    assert kit_kaggle.main(argv) == 2
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err and len(printed.err.strip().splitlines()) == 1, printed.err
    assert printed.err.startswith(f"error: {argv[0]}: ") and named in printed.err
    if failure == "1.6-http-404" and argv[:2] == ["push", "-p"]:  # a missing dataset: named with its parameter
        assert (
            "parameter domains['cartoon'] ('cartoon_dataset')" in printed.err and "someone/movie-stills" in printed.err
        )
    assert expected in printed.err


def test_signing_in_without_network_gives_one_error_line(monkeypatch, capsys) -> None:
    """kaggle 2.x checks an API token with kaggle.com while it authenticates."""
    extended = importlib.import_module("kaggle.api.kaggle_api_extended")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "not-a-real-token")
    monkeypatch.setattr(extended.KaggleApi, "authenticate", lambda self: FailingClient(no_network_2x()).fail())
    assert kit_kaggle.main(["status", "--id", KERNEL_ID]) == 2
    printed = capsys.readouterr().err
    assert printed.startswith("error: status: signing in: could not reach kaggle.com") and "Traceback" not in printed
    assert len(printed.strip().splitlines()) == 1


def test_with_the_debug_switch_the_clients_traceback_comes_first(monkeypatch, capsys) -> None:
    monkeypatch.setattr(kit_kaggle, "kaggle_api", lambda: FailingClient(no_network_2x()))
    monkeypatch.setenv(errors.DEBUG_ENV, "1")
    assert kit_kaggle.main(["status", "--id", KERNEL_ID]) == 2
    printed = capsys.readouterr().err
    assert "Traceback" in printed and "requests.exceptions.ConnectionError" in printed
    assert printed.strip().splitlines()[-1].startswith(f"error: status: kernel {KERNEL_ID}: could not reach")


def test_a_bug_of_the_kit_still_shows_its_traceback(monkeypatch) -> None:
    """Only calls into the client are taken for Kaggle's failures: the kit's own code raising is a bug."""
    api = StubApi2()
    monkeypatch.setattr(kit_kaggle, "kaggle_api", lambda: api)
    monkeypatch.setattr(kit_kaggle, "kernel_state", mock.Mock(side_effect=ZeroDivisionError("the kit's bug")))
    with pytest.raises(ZeroDivisionError):
        kit_kaggle.main(["status", "--id", KERNEL_ID])


# --- the docs' placeholder handles ---------------------------------------------------------------------------


PLACEHOLDERS = {
    "shorthand": (["-p", "cartoon_dataset=OWNER/CARTOON-SLUG", "-p", "movie_dataset=OWNER/MOVIE-SLUG"],
                  "domains['cartoon'] ('cartoon_dataset') = 'OWNER/CARTOON-SLUG'"),
    "one-of-two": (["-p", "cartoon_dataset=someone/cartoon-frames", "-p", "movie_dataset=OWNER/MOVIE-SLUG"],
                   "domains['movie'] ('movie_dataset') = 'OWNER/MOVIE-SLUG'"),
    "domains": (["-p", "source=kaggle", "-p", 'domains={"anime": "someone/anime-frames", "photo": "OWNER/SLUG"}'],
                "domains['photo'] = 'OWNER/SLUG'"),
}  # fmt: skip


@pytest.mark.parametrize("given", PLACEHOLDERS)
@pytest.mark.parametrize("command", ["bundle", "push"])
def test_the_docs_placeholder_handles_are_refused(
    command: str, given: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    params, named = PLACEHOLDERS[given]
    asked = []
    monkeypatch.setattr(kit_kaggle, "kaggle_api", lambda: asked.append("kaggle_api") or StubApi2())
    monkeypatch.setattr(kit_kaggle, "BUILD_DIR", tmp_path / "build")
    assert kit_kaggle.main([command, *params]) == 2
    printed = capsys.readouterr().err
    assert printed.startswith(f"error: parameter {named}: the docs' placeholder") and "Traceback" not in printed
    assert "python -m utils.kaggle datasets" in printed and len(printed.strip().splitlines()) == 1
    assert asked == [] and not (tmp_path / "build").exists()  # refused before Kaggle is asked, nothing bundled


def test_placeholder_like_folders_are_still_folders(tmp_path: Path) -> None:
    folders = {name: tmp_path / "OWNER" / f"{name.upper()}-SLUG" for name in ("cartoon", "movie")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    params = config.resolve_params("demo", {"source": "folder", "domains": {k: str(v) for k, v in folders.items()}})
    assert params.location("cartoon") == str(folders["cartoon"])
