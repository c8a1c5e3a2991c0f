"""Profiles, parameter validation and the run directory's stage checks: the one place for defaults.

Every stage (notebook, CLI, test) turns ``profile`` + ``overrides`` into a validated
:class:`RunParams` through :func:`resolve_params`; nothing else holds a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import shlex
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.core.domains import (
    SHORTHAND,
    Domains,
    check_domains,
    check_mix_fractions,
    domain_names,
    fraction_model,
    model_names,
    parse_domains,
    resolve_domains,
)
from utils.core.errors import ParameterError, read_json_file
from utils.core.grouping import group_pattern_problem
from utils.core.run_dir import read_run_record

KIT_ROOT = Path(__file__).resolve().parents[2]  # the kit's checkout: notebooks/, requirements.txt, runs/
SOURCES: tuple[str, ...] = ("demo", "folder", "kaggle")
RESIZE_MODES: tuple[str, ...] = ("crop", "stretch")
STAGES: tuple[str, ...] = ("prepare", "train", "evaluate", "figures")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
GAMUTS: tuple[str, ...] = ("chroma", "clip")  # how out-of-sRGB predicted colours are shown: utils/imaging/color.py
NEAR_DUPLICATE_HASH_BITS = 192  # the perceptual hash's length (utils/data/near_duplicates.py)
NEAR_DUPLICATE_MAX_BITS = 64  # unrelated images' hashes differ in about 96 of the 192 bits
# the encoder's ImageNet weights as timm fetches them (utils/nets/models.py: timm's resnet34), in the Hugging Face cache
ENCODER_WEIGHTS_REPO, ENCODER_WEIGHTS_FILE = "timm/resnet34.a1_in1k", "model.safetensors"
PRETRAINED_IF_CACHED = "cached"  # pretrained=cached: the ImageNet weights when they are cached here, else none


@dataclass(frozen=True)
class RunParams:
    """Every parameter of a run. Profiles below override these defaults; nothing else does."""

    # data
    source: str = "demo"
    # name -> folder (source=folder) or Kaggle "owner/slug" (source=kaggle), in order; empty: the demo's two, or the
    # paper's shorthand (cartoon_dir/movie_dir, cartoon_dataset/movie_dataset): utils/core/domains.py
    domains: Domains = ()
    kaggle_input_root: str = "/kaggle/input"
    kaggle_cache: str = "~/.cache/cross-domain-colorization/kaggle"
    image_size: int = 256
    resize: str = "crop"  # "crop": shorter side then centre square; "stretch": both sides (the tutorial)
    min_colorfulness: float = 10.0  # below: rejected as near-grayscale (0 disables)
    max_pixels: int = 50_000_000  # decompression-bomb guard
    # images whose perceptual hashes differ in at most this many of 192 bits, or whose thumbnails agree once aligned,
    # join one group (with their folder groups) before the split; 0 = folder groups only. bench_near_duplicates.py
    near_duplicate_bits: int = 36
    group_pattern: str = (
        ""  # a regular expression naming a file's group from its path (utils/core/grouping.py); "": off
    )
    prepare_workers: int = 0  # decoding processes; 0 = every CPU core
    decode_timeout_s: float = 60.0  # one file's decode, at most: then its worker is killed and the file rejected
    train_per_domain: int = 8000
    test_per_domain: int = 2000
    val_fraction: float = 0.1
    seed: int = 0  # the data's split; training seed k of ``seeds`` is seed + k
    # model and GAN recipe (pix2pix / the tutorial the paper follows)
    pretrained: bool = True
    epochs: int = 20
    batch_size: int = 16  # the global batch: split evenly across GPU processes
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_l1: float = 100.0
    pretrain_epochs: int = 0  # generator-only L1 epochs before the GAN epochs (the tutorial's recipe)
    flip: bool = True  # random horizontal flip, decided per sample by the seeded data order
    seeds: int = 1  # train each model once per seed (seed, seed + 1, ...): run-to-run variation; all are evaluated
    # training speed and survival
    precision: str = "auto"  # auto: bf16 on GPUs that have it, fp16 + GradScaler otherwise (T4), fp32 on CPU
    channels_last: bool = True
    compile: bool = False  # torch.compile the two networks (first steps slower, later ones faster)
    gpus: int = 0  # processes (one per GPU) when several GPUs are visible; 0 = all of them
    train_concurrency: int = 0  # train notebooks run at once; 0 = auto: one per GPU, on the CPU all
    resume: bool = True
    checkpoint_minutes: float = 0.0  # also checkpoint inside an epoch after this many minutes; 0 = epoch ends only
    keep_every: int = 0  # keep checkpoint_epoch_NNN.pt every k epochs; 0 = keep none
    time_limit_hours: float = 0.0  # from the pipeline's start: then training stops at a checkpoint; 0 = no limit
    # evaluation and figures
    models: tuple[str, ...] = ()  # empty: every domain's model, mixed, and each mix_fractions model
    # two domains only: fractions of the first domain in a model's training images, one model each (0, 0.5 and 1 are
    # the domains' and the mixed model); the mixing curve plots them
    mix_fractions: tuple[float, ...] = ()
    eval_batch_size: int = 32
    n_examples: int = 4
    n_bootstrap: int = 2000  # resamples for the confidence intervals and paired comparisons
    compile_metrics: bool = True  # torch.compile the scoring (pays off from a few thousand images)
    # predicted colours outside sRGB, wherever shown or scored (validation, evaluation, figures, colorize):
    # "chroma" keeps L and hue and reduces chroma; "clip" clips each RGB channel (the paper's; changes L)
    gamut: str = "chroma"
    # execution
    device: str = "auto"
    num_workers: int = 2

    @property
    def domain_names(self) -> tuple[str, ...]:
        return domain_names(self.domains)

    def location(self, domain: str) -> str:
        """Where ``domain``'s images are: a folder or a Kaggle handle ("" for the demo)."""
        return dict(self.domains)[domain]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["domains"] = dict(self.domains)
        d["models"] = list(self.models)
        d["mix_fractions"] = list(self.mix_fractions)
        return d


PROFILES: dict[str, dict[str, Any]] = {
    # CPU, small images, a few hundred images, two epochs: the whole pipeline in minutes.
    "demo": dict(
        source="demo",
        image_size=64,
        train_per_domain=480,
        test_per_domain=64,
        pretrained=False,
        epochs=2,
        batch_size=16,
        eval_batch_size=64,
        num_workers=0,
        compile_metrics=False,  # 640 scores: compiling would take longer than scoring
    ),
    # Your own folders on a CPU: three domains of a few hundred images in minutes (docs/performance.md, "The CPU
    # recipe"); the ImageNet weights when they are cached, since a CPU machine may have no network.
    "quick": dict(
        source="folder",
        image_size=64,
        train_per_domain=400,
        test_per_domain=100,
        pretrained=PRETRAINED_IF_CACHED,
        epochs=4,
        batch_size=16,
        eval_batch_size=64,
        num_workers=0,
        compile_metrics=False,
    ),
    # The paper: 8000 train / 2000 test per domain at 256 px; batch 16, 20 epochs (tutorial recipe).
    "paper": dict(
        source="kaggle",
        image_size=256,
        train_per_domain=8000,
        test_per_domain=2000,
        pretrained=True,
        epochs=20,
        batch_size=16,
        checkpoint_minutes=10.0,  # a ~350 MB checkpoint every 10 minutes: under 1% of the time on any card
    ),
}

# what each profile is for, as the command lines' --help says it
PROFILE_USES: dict[str, str] = {
    "demo": "generated cartoon and movie images on a CPU, the whole pipeline in minutes (make demo)",
    "quick": "your own folders (-p domains=...) on a CPU: a few hundred images per domain in minutes",
    "paper": "the paper's sizes (8000 training images per domain, 256 px, 20 epochs) on a GPU, e.g. Kaggle's T4 x2",
}
# profiles meant for a GPU: on a machine without one they are refused unless device=cpu is given
GPU_PROFILES: frozenset[str] = frozenset({"paper"})
CPU_PROFILE = "quick"  # what a GPU profile's refusal offers instead

_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(RunParams)}
FLOAT_FIELDS: tuple[str, ...] = tuple(name for name, kind in typing.get_type_hints(RunParams).items() if kind is float)

# What a resumed training may change: how fast it runs and how it survives, how long it goes on, where the data is
# read from (the checkpoint's data digest checks the images themselves), and what only evaluation uses. Every other
# parameter shapes what the model learns: a checkpoint resumes only with the values it was trained with.
RESUME_MAY_CHANGE: frozenset[str] = frozenset({
    "kaggle_input_root", "kaggle_cache", "prepare_workers", "decode_timeout_s",
    "test_per_domain", "epochs", "seeds", "models", "channels_last", "compile", "gpus", "train_concurrency",
    "resume", "mix_fractions", "checkpoint_minutes", "keep_every", "time_limit_hours", "eval_batch_size", "n_examples",
    "n_bootstrap", "compile_metrics", "device", "num_workers",
})  # fmt: skip


def changed_training_parameters(saved: dict[str, Any], params: RunParams) -> dict[str, tuple[Any, Any]]:
    """The parameters that shape training whose value in ``params`` differs from ``saved`` (a checkpoint's
    ``params``): name -> (saved value, value now). A name the checkpoint lacks (an older kit's) is not compared."""
    now = params.to_dict()
    changed = {
        name: (saved[name], now[name])
        for name in now
        if name not in RESUME_MAY_CHANGE | {"domains"} and name in saved and saved[name] != now[name]
    }
    if "domains" in saved and list(saved["domains"]) != list(now["domains"]):  # their names and order; not where
        changed["domains"] = (list(saved["domains"]), list(now["domains"]))
    return changed


def _coerce(name: str, value: Any) -> Any:
    """Convert a value (possibly a string from the command line) to the field's type."""
    default = _FIELDS[name].default
    if name == "models":
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(v).strip() for v in items if str(v).strip())
    if name == "domains":
        return parse_domains(value)
    if name == "mix_fractions":
        items = (
            value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
        )
        try:
            return tuple(float(v) for v in items if str(v).strip())
        except (TypeError, ValueError):
            raise ParameterError(f"parameter 'mix_fractions' must be numbers in [0, 1], got {value!r}") from None
    if name == "pretrained" and isinstance(value, str) and value.strip().lower() == PRETRAINED_IF_CACHED:
        return encoder_weights_cached()
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no"):
            return False
        raise ParameterError(
            f"parameter {name!r} must be true or false{' or cached' if name == 'pretrained' else ''}, got {value!r}"
        )
    try:
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter {name!r} must be a {type(default).__name__}, got {value!r}") from None
    return str(value)


def encoder_weights_cached() -> bool:
    """Whether the encoder's ImageNet weights are in the Hugging Face cache (no download, no torch)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(ENCODER_WEIGHTS_REPO, ENCODER_WEIGHTS_FILE), str)


def pretrained_asked(profile: str, overrides: dict[str, Any] | None) -> str:
    """What the run asked of ``pretrained``, as given: ``cached``, or true/false."""
    value = (overrides or {}).get("pretrained", PROFILES.get(profile, {}).get("pretrained", RunParams.pretrained))
    return str(value).strip().lower()


def command_for_profile(profile: str, other: str, run_dir: str | Path, overrides: dict[str, Any]) -> str:
    """The pipeline's command line for the same data under profile ``other``, into ``<run_dir>-<other>`` (the run
    directory given may hold ``profile``'s data): ``profile``'s ``source`` is kept when ``other``'s differs."""
    source = PROFILES[profile].get("source", RunParams.source)
    if "source" not in overrides and PROFILES[other].get("source", RunParams.source) != source:
        overrides = {"source": source, **overrides}
    command = ["python", "-m", "utils.pipeline", "--profile", other, "--run-dir", f"{run_dir}-{other}"]
    command += [arg for name, value in overrides.items() for arg in ("-p", f"{name}={override_text(value)}")]
    return shlex.join(command)


def override_text(value: Any) -> str:
    """A parameter's value as ``-p NAME=VALUE`` gives it (a dict, ``domains``, as JSON)."""
    return json.dumps(value) if isinstance(value, dict) else str(value)


def settle_pretrained(profile: str, run_dir: str | Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with ``pretrained=cached`` decided once for the run directory: what its run.json recorded at
    the first prepare, else what this machine has now. A later run of it, after the weights were fetched, keeps
    the first decision: its models resume, and every model of the run starts alike."""
    if pretrained_asked(profile, overrides) != PRETRAINED_IF_CACHED:
        return dict(overrides)
    recorded = read_run_record(run_dir).get("parameters", {}).get("pretrained")
    return {**overrides, "pretrained": recorded if isinstance(recorded, bool) else encoder_weights_cached()}


def unknown_name(kind: str, name: str, known: list[str]) -> ParameterError:
    """``unknown parameter 'epoch'; did you mean 'epochs'?`` (the known names when none is close)."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        return ParameterError(f"unknown {kind} {name!r}; did you mean {' or '.join(map(repr, close))}?")
    return ParameterError(f"unknown {kind} {name!r}; {kind}s are {', '.join(known)}")


def validate(params: RunParams) -> RunParams:
    """Reject values no stage can use, naming the parameter."""

    def fail(name: str, why: str) -> None:
        raise ParameterError(f"parameter {name!r} = {getattr(params, name)!r}: {why}")

    for name in FLOAT_FIELDS:
        if not math.isfinite(getattr(params, name)):
            fail(name, "must be a finite number")
    if params.seed < 0:
        fail("seed", "must be non-negative")
    if params.source not in SOURCES:
        fail("source", f"must be one of {', '.join(SOURCES)}")
    check_domains(params.source, params.domains)
    if params.resize not in RESIZE_MODES:
        fail("resize", f"must be one of {', '.join(RESIZE_MODES)}")
    if params.min_colorfulness < 0:
        fail("min_colorfulness", "must be non-negative (0 disables the filter)")
    if params.max_pixels < 1:
        fail("max_pixels", "must be positive")
    if not 0 <= params.near_duplicate_bits <= NEAR_DUPLICATE_MAX_BITS:
        fail(
            "near_duplicate_bits",
            f"must lie in 0 .. {NEAR_DUPLICATE_MAX_BITS} (bits of the {NEAR_DUPLICATE_HASH_BITS}-bit "
            "perceptual hash; 0 = folder groups only)",
        )
    if problem := group_pattern_problem(params.group_pattern, params.source):
        fail("group_pattern", problem)
    if params.prepare_workers < 0:
        fail("prepare_workers", "must be non-negative (0 = every CPU core)")
    if params.decode_timeout_s <= 0:
        fail("decode_timeout_s", "must be a positive, finite number of seconds (one file's decode, at most)")
    if params.image_size < 32 or params.image_size % 32:
        fail("image_size", "must be a positive multiple of 32 (the encoder downsamples 32x)")
    if params.train_per_domain < 2:
        fail("train_per_domain", "must be at least 2")
    if params.test_per_domain < 1:
        fail("test_per_domain", "must be at least 1")
    if not 0.0 < params.val_fraction < 1.0:
        fail("val_fraction", "must lie strictly between 0 and 1")
    if params.epochs < 1:
        fail("epochs", "must be at least 1")
    if params.seeds < 1:
        fail("seeds", "must be at least 1 (each model is trained once per seed)")
    for name in ("batch_size", "eval_batch_size"):
        if getattr(params, name) < 1:
            fail(name, "must be at least 1")
    if params.batch_size < 2:
        fail("batch_size", "must be at least 2 (BatchNorm needs more than one sample)")
    if params.lr <= 0:
        fail("lr", "must be positive")
    for name in ("beta1", "beta2"):
        if not 0.0 <= getattr(params, name) < 1.0:
            fail(name, "must lie in [0, 1)")
    if params.lambda_l1 < 0:
        fail("lambda_l1", "must be non-negative")
    zero_means = {
        "pretrain_epochs": "off",
        "checkpoint_minutes": "off",
        "keep_every": "off",
        "gpus": "all",
        "train_concurrency": "auto",
        "time_limit_hours": "no limit",
    }
    for name, meaning in zero_means.items():
        if not getattr(params, name) >= 0:  # not >=: NaN fails too
            fail(name, f"must be non-negative (0 = {meaning})")
    if params.precision not in PRECISIONS:
        fail("precision", f"must be one of {', '.join(PRECISIONS)}")
    if params.gamut not in GAMUTS:
        fail("gamut", f"must be one of {', '.join(GAMUTS)}")
    if not params.models:
        fail("models", "must name at least one model")
    check_mix_fractions(params.domains, params.mix_fractions)
    untrained = [m for f in params.mix_fractions if (m := fraction_model(params.domains, f)) not in params.models]
    if untrained:
        fail("models", f"leaves out {', '.join(untrained)}, the model of a fraction in 'mix_fractions'")
    known = model_names(params.domains, params.mix_fractions)
    for model in params.models:
        if model not in known:
            fail("models", f"unknown model {model!r}; models are {', '.join(known)}")
    if params.n_examples < 1:
        fail("n_examples", "must be at least 1")
    if params.n_bootstrap < 100:
        fail("n_bootstrap", "must be at least 100 for a 95% interval")
    if params.device not in DEVICES:
        fail("device", f"must be one of {', '.join(DEVICES)}")
    if params.num_workers < 0:
        fail("num_workers", "must be non-negative")
    return params


def resolve_params(profile: str, overrides: dict[str, Any] | None = None) -> RunParams:
    """Profile defaults, then overrides; unknown names and bad values raise ParameterError.

    Args:
        profile: a key of PROFILES (``"demo"`` or ``"paper"``).
        overrides: parameter name -> value; strings are converted to the field's type.

    Returns:
        The validated parameters.
    """
    if profile not in PROFILES:
        raise unknown_name("profile", profile, list(PROFILES))
    values, shorthand = dict(PROFILES[profile]), {}
    for name, value in (overrides or {}).items():
        if name in SHORTHAND:
            shorthand[name] = str(value).strip()
        elif name not in _FIELDS:
            raise unknown_name("parameter", name, sorted([*_FIELDS, *SHORTHAND]))
        else:
            values[name] = value
    values = {name: _coerce(name, value) for name, value in values.items()}
    values["domains"] = resolve_domains(values.get("source", RunParams.source), values.get("domains", ()), shorthand)
    values["models"] = values.get("models") or model_names(values["domains"], values.get("mix_fractions", ()))
    return validate(RunParams(**values))


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["epochs=3", "pretrained=false"]`` -> a dict; values are converted by resolve_params."""
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"override {pair!r}: expected NAME=VALUE")
        overrides[name.strip()] = value.strip()
    return overrides


def check_domain(domain: str, params: RunParams) -> str:
    """The train stage's ``domain`` parameter: one of the run's models (a domain, or mixed)."""
    known = model_names(params.domains, params.mix_fractions)
    if domain not in known:
        raise ParameterError(f"parameter 'domain' = {domain!r}: must be one of {', '.join(known)}")
    return domain


def training_seeds(params: RunParams) -> tuple[int, ...]:
    """The training seeds, one per trained copy of each model: ``seed``, ``seed + 1``, ... (``seeds`` of them).
    A seed sets the initial weights, the batch order and the flips; the data's split stays ``seed``'s."""
    return tuple(params.seed + k for k in range(params.seeds))


def training_seed(params: RunParams, seed_index: int) -> int:
    """The train stage's ``seed_index`` parameter (0 .. seeds - 1) -> its training seed."""
    if not 0 <= seed_index < params.seeds:
        raise ParameterError(
            f"parameter 'seed_index' = {seed_index!r}: must lie in 0 .. {params.seeds - 1} ('seeds' = {params.seeds})"
        )
    return params.seed + seed_index


def trained_models(params: RunParams) -> list[tuple[str, int]]:
    """Every (model, training seed) the run trains and evaluates, seed by seed."""
    return [(model, seed) for seed in training_seeds(params) for model in params.models]


def model_dir(run_dir: str | Path, model: str, seed: int) -> Path:
    """One trained model's directory: each training seed's models in a folder of their own."""
    return Path(run_dir) / "models" / f"seed{seed}" / model


def trained_name(model: str, seed: int) -> str:
    """How notebooks, logs and run.json name one trained model: ``mixed_seed0``."""
    return f"{model}_seed{seed}"


def check_prepared_domains(run_dir: Path, params: RunParams) -> None:
    """The domains a run directory was prepared with (data/prepared.json) are the run's, in the same order."""
    record = run_dir / "data" / "prepared.json"
    prepared = read_json_file(record, "prepare the run directory again") if record.is_file() else {}
    fingerprint = prepared.get("fingerprint") if isinstance(prepared, dict) else None
    domains = fingerprint.get("domains") if isinstance(fingerprint, dict) else None
    if isinstance(domains, dict) and list(domains) != list(params.domain_names):
        raise ParameterError(
            f"parameter 'domains' names {', '.join(params.domain_names)}; '{run_dir}' was prepared with "
            f"{', '.join(domains)}: give those domains, or prepare a new run directory"
        )


def check_stage_inputs(run_dir: str | Path, stage: str, params: RunParams) -> Path:
    """Fail before any work when an earlier stage's output is missing from ``run_dir``."""
    if stage not in STAGES:
        raise ParameterError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    run_dir = Path(run_dir)
    if stage == "prepare":
        return run_dir
    if not run_dir.is_dir():
        raise ParameterError(f"parameter 'run_dir' = '{run_dir}': no such run directory; run the prepare stage first")
    manifest = run_dir / "data" / "manifest.csv"
    if not manifest.is_file():
        raise ParameterError(f"parameter 'run_dir' = '{run_dir}': {manifest} is missing; run the prepare stage first")
    check_prepared_domains(run_dir, params)
    if stage in ("evaluate", "figures"):
        missing = [
            f"{m} (seed {s})" for m, s in trained_models(params) if not (model_dir(run_dir, m, s) / "best.pt").is_file()
        ]
        if missing:
            raise ParameterError(
                f"parameter 'models': no trained model {', '.join(missing)} in '{run_dir}/models'; "
                "train them first, or drop them from 'models' (or lower 'seeds')"
            )
    if stage == "figures" and not (run_dir / "eval" / "summary.csv").is_file():
        raise ParameterError(f"parameter 'run_dir' = '{run_dir}': eval/summary.csv is missing; run evaluate first")
    return run_dir


def stage_params(
    stage: str,
    profile: str,
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
) -> RunParams:
    """What every notebook calls first: validated parameters and a run directory fit for ``stage``."""
    params = resolve_params(profile, overrides)
    check_stage_inputs(run_dir, stage, params)
    return params
