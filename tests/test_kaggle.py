"""The Kaggle bundle, offline: the kernel notebook runs alone, kaggle's own push validation
accepts it (network stubbed), status/output work against a stub, and no key leaks anywhere."""

from __future__ import annotations

import importlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import TINY
from utils import kaggle as kit_kaggle

ROOT = Path(__file__).resolve().parent.parent
DATASETS = {"cartoon_dataset": "someone/cartoon-frames", "movie_dataset": "someone/movie-stills"}


def test_top_level_metadata_is_valid_for_the_kaggle_cli() -> None:
    meta = json.loads((ROOT / "kernel-metadata.json").read_text())
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
    assert {"utils/train.py", "utils/kaggle.py", "notebooks/02_train.ipynb", "requirements.txt"} <= names
    assert not any("__pycache__" in n for n in names)
    assert not any(r.startswith(("pytest", "ruff")) for r in kit_kaggle.runtime_requirements())


@pytest.fixture(scope="module")
def fake_key() -> str:
    return secrets.token_hex(16)


@pytest.fixture(scope="module")
def kernel_run(tmp_path_factory, fake_key: str) -> dict[str, Path]:
    """The bundled notebook executed by papermill in an empty directory, by a process that cannot
    import the repository, with a fake Kaggle key in its environment."""
    base = tmp_path_factory.mktemp("kernel")
    overrides = {**TINY, "models": "mixed"}  # one model: the pipeline test covers all three
    bundle_dir = kit_kaggle.bundle("demo", overrides, "tester/cross-domain-colorization", base / "bundle")
    work, rendered = base / "work", base / "rendered.ipynb"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"KAGGLE_USERNAME": "tester", "KAGGLE_KEY": fake_key}
    run = subprocess.run(
        [sys.executable, "-m", "papermill", str(bundle_dir / kit_kaggle.NOTEBOOK_NAME), str(rendered),
         "--no-progress-bar", "-p", "profile", "demo"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return {"bundle": bundle_dir, "work": work, "rendered": rendered}


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


def test_no_output_or_rendered_notebook_contains_the_key(kernel_run: dict[str, Path], fake_key: str) -> None:
    files = [p for root in ("bundle", "work") for p in kernel_run[root].rglob("*") if p.is_file()]
    files.append(kernel_run["rendered"])
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

    kernel_id = kit_kaggle.push("paper", DATASETS, api=api, out_dir=tmp_path / "bundle")

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
    with pytest.raises(kit_kaggle.ParameterError, match="cartoon_dataset"):
        kit_kaggle.bundle("paper", {}, None, tmp_path)


def test_missing_credentials_name_where_the_client_looks(tmp_path: Path, monkeypatch, capsys) -> None:
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kit_kaggle.main(["output", "--id", "tester/cross-domain-colorization"]) == 2
    message = capsys.readouterr().err
    assert "no Kaggle credentials" in message and "~/.kaggle/kaggle.json" in message and "KAGGLE_KEY" in message


def test_a_placeholder_owner_without_a_username_asks_for_an_id() -> None:
    with pytest.raises(kit_kaggle.KaggleSetupError, match="--id yourname/cross-domain-colorization"):
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
