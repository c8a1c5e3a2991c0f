"""Run the kit on Kaggle: bundle it into one self-contained notebook, push it, watch it, fetch its output.

    python -m utils.kaggle datasets QUERY                      find dataset handles (owner/slug)
    python -m utils.kaggle check OWNER/SLUG [OWNER/SLUG ...]   images, size, enough for a profile?
    python -m utils.kaggle bundle [--id OWNER/SLUG] [--profile paper] [--continue] [-p name=value ...]
    python -m utils.kaggle push   [--id OWNER/SLUG] [--profile paper] [--continue] [--no-check] [-p name=value ...]
    python -m utils.kaggle status [--id OWNER/SLUG] [--interval 60]
    python -m utils.kaggle output [--id OWNER/SLUG]

``kaggle kernels push`` uploads only the file named by ``code_file``, so ``bundle`` embeds the
kit (``utils/``, ``notebooks/``) in that notebook as a compressed archive. Credentials are the
kaggle client's business: this module never reads, prints or writes a key.

A Kaggle session stops after 12 hours: the bundle sets ``time_limit_hours`` (unless given) so that
training stops at a checkpoint in time for the run to finish and Kaggle to save its output; a run
cut short that way is continued in a new version with ``push --continue``, whose kernel reads the
previous version's output (its own kernel, listed in ``kernel_sources``) and resumes from it.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import os
import re
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import nbformat

from utils.core.config import KIT_ROOT, parse_overrides, resolve_params
from utils.core.domains import SHORTHAND
from utils.core.errors import (
    Ending,
    KaggleSetupError,
    ParameterError,
    UnreadableFileError,
    error_line,
    run_command,
)
from utils.core.run_dir import write_text_atomic
from utils.data.sources import kaggle_credentials_present
from utils.kaggle.client import (
    DatasetUnavailable,
    KaggleRequestError,
    check_dataset,
    check_datasets,
    format_dataset_table,
    kaggle_request,
    kernel_failure_message,
    kernel_state,
    last_epoch_line,
    request_failure,
    search_datasets,
)
from utils.nets.environment import git_commit

METADATA_PATH = KIT_ROOT / "kernel-metadata.json"
BUILD_DIR = KIT_ROOT / "build" / "kaggle"
NOTEBOOK_NAME = "cross-domain-colorization.ipynb"
PLACEHOLDER_OWNER = "your-kaggle-username"
RUN_REQUIREMENTS = "requirements.txt"  # what a run needs, all the kernel installs: no test or lint tool
FINISHED = ("complete", "error", "cancel")  # kernel states after which polling stops
KAGGLE_TIME_LIMIT_HOURS = 11.0  # a session stops at 12 h: an hour for evaluation, figures and saving the output
CREDENTIAL_PLACES = (
    "~/.kaggle/kaggle.json (or $KAGGLE_CONFIG_DIR/kaggle.json), ~/.kaggle/access_token, "
    "the KAGGLE_USERNAME + KAGGLE_KEY environment variables, or KAGGLE_API_TOKEN"
)


# --- the bundle ---------------------------------------------------------------------------------


def kit_files() -> list[Path]:
    """What the kernel needs of the kit: the package, the stage notebooks, the requirements."""
    files = sorted((KIT_ROOT / "utils").rglob("*.py")) + sorted((KIT_ROOT / "notebooks").glob("*.ipynb"))
    return [*files, KIT_ROOT / RUN_REQUIREMENTS]


def kit_archive() -> bytes:
    """A reproducible tar.gz of :func:`kit_files` (fixed times and owners: same kit, same bytes)."""
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for path in kit_files():
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(KIT_ROOT).as_posix())
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def runtime_requirements() -> list[str]:
    """requirements.txt's requirements, without its comments: what the kernel installs where its image lacks one."""
    lines = (line.split("#")[0].strip() for line in (KIT_ROOT / RUN_REQUIREMENTS).read_text().splitlines())
    return [line for line in lines if line]


UNPACK_CELL = """\
# Unpack the kit embedded below (utils/ and notebooks/) and install only what this image lacks.
import base64, importlib.metadata, io, os, re, subprocess, sys, tarfile

KIT_DIR = os.path.abspath("kit")
KIT_ARCHIVE = "{archive}"
REQUIREMENTS = {requirements!r}

with tarfile.open(fileobj=io.BytesIO(base64.b64decode(KIT_ARCHIVE)), mode="r:gz") as archive:
    extract = {{"filter": "data"}} if hasattr(tarfile, "data_filter") else {{}}
    archive.extractall(KIT_DIR, **extract)
missing = []
for requirement in REQUIREMENTS:
    try:
        importlib.metadata.version(re.split(r"[<>=!~;\\[ ]", requirement, maxsplit=1)[0])
    except importlib.metadata.PackageNotFoundError:
        missing.append(requirement)
if missing:
    print("installing what this image lacks:", ", ".join(missing))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)
else:
    print("every requirement is already installed")
sys.path.insert(0, KIT_DIR)
print("kit unpacked into", KIT_DIR)
"""

INTRO = """\
# Cross-domain colorization on Kaggle

This notebook carries the whole kit: its first cell unpacks `utils/` and the stage notebooks into
`kit/` and installs only what the image lacks. It then runs the pipeline (prepare, train one model
per domain and the mixed model, evaluate each on every domain, figures) with papermill into the
working directory and keeps, for the output: the rendered stage notebooks, figures, CSVs,
`report.md`, `run.json` and each model's `best.pt`. The data shards and the resumable checkpoints
are removed at the end (Kaggle keeps at most 20 GB of output), except when the time budget
(`time_limit_hours`) stopped training: then each model's `checkpoint_last.pt` stays, and
`python -m utils.kaggle push --continue` runs a new version that resumes from this one's output.

Bundled from commit `{commit}` with profile `{profile}`."""

RUN_CELL = """import utils
from utils.kaggle import kernel
from utils.pipeline import run_pipeline

print("kit:", os.path.dirname(utils.__file__))
if continue_previous:  # resume from the previous version's output, attached under the input root
    kernel.seed_from_previous_output(run_dir, kernel_id, profile, overrides)
rendered = run_pipeline(profile, run_dir, overrides, progress=False)  # one line per epoch of each model"""


def bundled_notebook(
    profile: str, overrides: dict[str, Any], kernel_id: str = "", continue_previous: bool = False
) -> nbformat.NotebookNode:
    """The self-contained kernel notebook; ``profile`` and ``overrides`` fill its parameters cell;
    ``continue_previous``: seed the run from the previous version's output first."""
    archive = base64.b64encode(kit_archive()).decode()
    cells = [
        nbformat.v4.new_markdown_cell(INTRO.format(commit=git_commit() or "unknown", profile=profile)),
        nbformat.v4.new_code_cell(UNPACK_CELL.format(archive=archive, requirements=runtime_requirements())),
        nbformat.v4.new_code_cell(
            f"profile = {profile!r}  # demo or paper\n"
            f"overrides = {overrides!r}  # any kit parameter, as in utils/core/parameters.py\n"
            'run_dir = "."  # the working directory: what Kaggle keeps as output\n'
            f"kernel_id = {kernel_id!r}  # this kernel\n"
            f"continue_previous = {continue_previous!r}  # resume from the previous version's output (push --continue)",
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_markdown_cell("## Run every stage"),
        nbformat.v4.new_code_cell(RUN_CELL),
        nbformat.v4.new_markdown_cell("## Keep what is worth reading (and each model's best checkpoint)"),
        nbformat.v4.new_code_cell("kernel.prune_for_output(run_dir)"),
        nbformat.v4.new_markdown_cell("## Results"),
        nbformat.v4.new_code_cell("kernel.show_results(run_dir)"),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def read_metadata() -> dict[str, Any]:
    return json.loads(METADATA_PATH.read_text())


def kernel_metadata(
    kernel_id: str, profile: str, overrides: dict[str, Any], continue_previous: bool = False
) -> dict[str, Any]:
    """The top-level kernel-metadata.json, for the bundle: its id, its notebook, the run's datasets, and
    when continuing, the kernel itself as a source (Kaggle then attaches its latest version's output)."""
    params = resolve_params(profile, overrides)
    meta = read_metadata() | {"id": kernel_id, "code_file": NOTEBOOK_NAME}
    if params.source == "kaggle":
        meta["dataset_sources"] = [params.location(domain) for domain in params.domain_names]
    if continue_previous:
        meta["kernel_sources"] = [*meta.get("kernel_sources", []), kernel_id]
    return meta


def kernel_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The run's overrides in the kernel: a time budget that ends training before the session does."""
    return {"time_limit_hours": KAGGLE_TIME_LIMIT_HOURS, **overrides}


def bundle(
    profile: str = "paper",
    overrides: dict[str, Any] | None = None,
    kernel_id: str | None = None,
    out_dir: Path | None = None,
    continue_previous: bool = False,
) -> Path:
    """Write ``out_dir/kernel-metadata.json`` and the self-contained notebook (default ``build/kaggle/``); returns
    ``out_dir``.

    Parameters are validated first (the paper profile needs its two dataset handles).
    """
    overrides = kernel_overrides(dict(overrides or {}))
    kernel_id = kernel_id or read_metadata()["id"]
    check_kernel_id(kernel_id)
    meta = kernel_metadata(kernel_id, profile, overrides, continue_previous)
    if kernel_id.split("/")[0] == PLACEHOLDER_OWNER:
        print(f"note: the kernel id is still the placeholder {kernel_id!r}; push fills in your username")
    out_dir = Path(out_dir) if out_dir is not None else BUILD_DIR
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    nbformat.write(bundled_notebook(profile, overrides, kernel_id, continue_previous), str(out_dir / NOTEBOOK_NAME))
    write_text_atomic(out_dir / "kernel-metadata.json", json.dumps(meta, indent=2) + "\n")
    size = (out_dir / NOTEBOOK_NAME).stat().st_size
    print(f"bundled {kernel_id} (profile {profile}) into {out_dir}: {NOTEBOOK_NAME}, {size / 1024:.0f} KiB")
    return out_dir


def images_needed(profile: str, overrides: dict[str, Any]) -> int:
    """What ``check`` asks of each dataset: one domain's images at ``profile`` with ``overrides``
    (``train_per_domain + test_per_domain``)."""
    # The data source is what is being checked: its handles need not be set yet, so the run's source is set
    # aside (a source without handles or folders); every other parameter is validated as for a run.
    kept = {k: v for k, v in overrides.items() if k not in {"domains", "models", "mix_fractions", *SHORTHAND}}
    params = resolve_params(profile, {**kept, "source": "demo"})
    return params.train_per_domain + params.test_per_domain


def check_kernel_id(kernel_id: str) -> str:
    owner, _, slug = kernel_id.partition("/")
    if not owner or not re.fullmatch(r"[a-z0-9][a-z0-9-]{4,}", slug or ""):
        raise ParameterError(
            f"kernel id {kernel_id!r}: expected 'owner/slug', the slug 5+ lowercase letters, digits, -"
        )
    return kernel_id


# --- talking to Kaggle --------------------------------------------------------------------------


def kaggle_api() -> Any:
    """An authenticated ``KaggleApi``; without credentials, an error naming where the client looks."""
    if not kaggle_credentials_present():
        raise KaggleSetupError(f"no Kaggle credentials found; the kaggle client looks in {CREDENTIAL_PLACES}")
    # imported here: `import kaggle` authenticates as a side effect
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    try:
        with kaggle_request("signing in"):  # a token is checked with kaggle.com
            api.authenticate()
    except SystemExit:
        raise KaggleSetupError(f"the kaggle client rejected the credentials it found in {CREDENTIAL_PLACES}") from None
    return api


def resolve_kernel_id(explicit: str | None, api: Any | None = None) -> str:
    """--id, else kernel-metadata.json's id, with the placeholder owner replaced by the API's username."""
    kernel_id = explicit or read_metadata()["id"]
    owner, _, slug = kernel_id.partition("/")
    if owner == PLACEHOLDER_OWNER:
        username = api.config_values.get("username") if api is not None else None
        if not username:
            raise KaggleSetupError(
                f"kernel id {kernel_id!r} still has the placeholder owner: pass --id yourname/{slug} "
                "or set id in kernel-metadata.json"
            )
        kernel_id = f"{username}/{slug}"
    return check_kernel_id(kernel_id)


def push(
    profile: str,
    overrides: dict[str, Any],
    kernel_id: str | None = None,
    api: Any | None = None,
    out_dir: Path | None = None,
    check: bool = True,
    continue_previous: bool = False,
) -> str:
    """Check every domain's dataset (unless ``check`` is False), bundle, then push (and so run) the kernel;
    returns its id. ``continue_previous``: the new version resumes from the last version's output."""
    params = resolve_params(profile, overrides)  # a bad parameter is named before Kaggle is asked anything
    api = api if api is not None else kaggle_api()
    kernel_id = resolve_kernel_id(kernel_id, api)
    if check and params.source == "kaggle":
        for checked in check_datasets(api, params):  # a bad handle raises here, before any upload
            print(checked.summary())
    folder = bundle(profile, overrides, kernel_id, out_dir, continue_previous)
    with kaggle_request(f"kernel {kernel_id}"):
        response = api.kernels_push(str(folder))
    error = getattr(response, "error", None)
    if error:
        raise KaggleSetupError(f"Kaggle refused the push of {kernel_id}: {error}")
    print(f"pushed {kernel_id} (version {getattr(response, 'version_number', '?')}): {getattr(response, 'url', '')}")
    print(f"watch it with `python -m utils.kaggle status --id {kernel_id}`")
    return kernel_id


def wait_for_kernel(kernel_id: str, api: Any | None = None, interval: float = 60.0, timeout: float = 13 * 3600) -> str:
    """Poll until the kernel completes, fails or is cancelled; print each state change, and while it runs the
    last epoch line of its log (clients with a logs call); return the last state."""
    api = api if api is not None else kaggle_api()
    started, last, last_line = time.monotonic(), None, None
    while True:
        with kaggle_request(f"kernel {kernel_id}"):
            response = api.kernels_status(kernel_id)
        state = kernel_state(response)
        minutes = f"[{(time.monotonic() - started) / 60:5.1f} min]"
        if state != last:
            print(f"{minutes} {kernel_id}: {state}", flush=True)
            last = state
        if state == "running":
            line = last_epoch_line(api, kernel_id)
            if line and line != last_line:
                print(f"{minutes}   {line}", flush=True)
                last_line = line
        if any(state.startswith(done) for done in FINISHED):
            message = kernel_failure_message(response)
            if message:
                print(f"failure message: {message}")
            return state
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{kernel_id} still {state} after {timeout / 3600:.1f} h")
        time.sleep(interval)


def fetch_output(kernel_id: str, api: Any | None = None, dest: Path | None = None) -> Path:
    """Download the kernel's output into ``runs/kaggle-<slug>/``: a run directory, ready to read.

    Every file the client reports must lie inside that folder once resolved: the names come from the kernel's
    output, and a client that joins them as given (kaggle 1.6) writes ``../`` and absolute names outside it.
    Such files are deleted (when this fetch wrote them) and named in a KaggleSetupError; a client that refuses
    them itself (kaggle 2.x) gives the same error.
    """
    api = api if api is not None else kaggle_api()
    dest = Path(dest) if dest is not None else KIT_ROOT / "runs" / f"kaggle-{kernel_id.split('/')[1]}"
    dest.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        reported = api.kernels_output(kernel_id, str(dest), force=True, quiet=True)
    except ValueError as err:  # 2.x: a file name that leads outside dest (or a kernel these credentials cannot read)
        raise KaggleSetupError(
            f"output of {kernel_id}: the kaggle client refused it ({err}); what it wrote before stopping is in {dest}"
        ) from None
    except Exception as err:
        raise request_failure(f"kernel {kernel_id}", err) from err
    files = reported[0] if isinstance(reported, tuple) else reported  # 1.7+: (files, next page token); 1.6: files
    outside = [remove_if_written(Path(dest, name), started) for name in files if not lies_inside(dest, name)]
    if outside:
        raise KaggleSetupError(
            f"output of {kernel_id}: refused {len(outside)} file(s) whose names lead outside {dest}: "
            f"{'; '.join(outside)}; the other {len(files) - len(outside)} file(s) are in {dest}"
        )
    print(f"{len(files)} files into {dest}")
    if (dest / "report.md").is_file():
        print(f"start with {dest / 'report.md'} and the rendered notebooks in {dest / 'notebooks'}")
    return dest


def lies_inside(folder: Path, name: str) -> bool:
    """Whether ``name`` (relative to ``folder``, or absolute) resolves, links followed, to a path inside ``folder``."""
    return Path(os.path.realpath(Path(folder, name))).is_relative_to(Path(os.path.realpath(folder)))


def remove_if_written(path: Path, since: float) -> str:
    """Delete the file ``path`` resolves to if it was written at or after ``since``; says what became of it."""
    written = Path(os.path.realpath(path))
    if written.is_file() and written.stat().st_mtime >= since - 2.0:  # 2 s: coarse file system clocks
        written.unlink()
        return f"{path} (written to {written}: deleted)"
    return f"{path} (not written)"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m utils.kaggle``."""
    parser = argparse.ArgumentParser(prog="python -m utils.kaggle", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("datasets", "check", "bundle", "push", "status", "output"))
    parser.add_argument("terms", nargs="*", help="datasets: the search words; check: dataset handles owner/slug")
    parser.add_argument("--id", default=None, help="owner/slug of the kernel (default: kernel-metadata.json)")
    parser.add_argument("--profile", default="paper", help="bundle/push/check: the kit profile the kernel runs")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--interval", type=float, default=60.0, help="status: seconds between polls")
    parser.add_argument("--no-check", action="store_true", help="push: skip checking the datasets first")
    parser.add_argument(
        "--continue",
        dest="continue_previous",
        action="store_true",
        help="bundle/push: a new version that resumes from the last version's output (after the time limit)",
    )
    return parser


KIT_ERRORS = (ParameterError, KaggleSetupError, DatasetUnavailable, UnreadableFileError)


def in_command(command: str) -> dict[type[BaseException], Ending]:
    """Kaggle's answer about a handle as the command line reports it, the command first (``check: dataset
    'owner/slug': ...``); with ``KIT_DEBUG=1``, the error's traceback and the client's error it was raised from."""
    return {KaggleRequestError: error_line(2, command), DatasetUnavailable: error_line(2, command)}


def work(args: argparse.Namespace) -> int:
    """``python -m utils.kaggle``'s work, once its arguments are parsed."""
    overrides = parse_overrides(args.param)
    if args.command in ("datasets", "check") and not args.terms:
        raise ParameterError(
            f"{args.command}: give {'search words' if args.command == 'datasets' else 'owner/slug handles'}"
        )
    if args.command == "datasets":
        print(format_dataset_table(search_datasets(kaggle_api(), " ".join(args.terms))))
    elif args.command == "check":
        needed = images_needed(args.profile, overrides)
        api = kaggle_api()
        checks = [check_dataset(api, handle, needed) for handle in args.terms]
        for checked in checks:
            print(checked.summary())
        return 0 if all(c.enough for c in checks) else 1
    elif args.command == "bundle":
        bundle(args.profile, overrides, args.id, continue_previous=args.continue_previous)
    elif args.command == "push":
        push(args.profile, overrides, args.id, check=not args.no_check, continue_previous=args.continue_previous)
    elif args.command == "status":
        api = kaggle_api()
        state = wait_for_kernel(resolve_kernel_id(args.id, api), api, args.interval)
        return 0 if state == "complete" else 1
    else:
        api = kaggle_api()
        fetch_output(resolve_kernel_id(args.id, api), api)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: work(args), KIT_ERRORS, in_command(args.command))
