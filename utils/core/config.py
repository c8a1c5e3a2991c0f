"""From a profile and overrides to a run's parameters, and the run directory's stage checks.

Every stage (notebook, CLI, test) turns ``profile`` + ``overrides`` into a validated :class:`RunParams`
(utils/core/parameters.py) through :func:`resolve_params`: the profile's values (utils/core/profiles.py) over the
declared defaults, then the overrides, converted from the command line's strings and checked.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import shlex
from pathlib import Path
from typing import Any

from utils.core.domains import SHORTHAND, model_names, parse_domains, resolve_domains
from utils.core.errors import ParameterError, read_json_file
from utils.core.parameters import PRETRAINED_IF_CACHED, RunParams, validate
from utils.core.profiles import PROFILES
from utils.core.run_dir import read_run_record

KIT_ROOT = Path(__file__).resolve().parents[2]  # the kit's checkout: notebooks/, requirements.txt, runs/
STAGES: tuple[str, ...] = ("prepare", "train", "evaluate", "figures")
# the encoder's ImageNet weights as timm fetches them (utils/nets/models.py: timm's resnet34), in the Hugging Face cache
ENCODER_WEIGHTS_REPO, ENCODER_WEIGHTS_FILE = "timm/resnet34.a1_in1k", "model.safetensors"
_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(RunParams)}


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
