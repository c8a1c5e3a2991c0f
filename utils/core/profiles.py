"""The profiles: each one's starting values of the parameters, what it is for, and which want a GPU; and
docs/running.md's parameter table, rendered from the profiles and each parameter's declaration."""

from __future__ import annotations

import dataclasses
from typing import Any

from utils.core.domains import model_names, resolve_domains
from utils.core.parameters import DECLARATIONS, PRETRAINED_IF_CACHED, RunParams

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


def profile_values(profile: str) -> RunParams:
    """A profile's values, unvalidated (the paper profile names no dataset), with its default domains and models
    filled in as resolve_params fills them in."""
    params = dataclasses.replace(RunParams(), **PROFILES[profile])
    domains = resolve_domains(params.source, (), {})
    return dataclasses.replace(params, domains=domains, models=model_names(domains))


def shown_value(name: str, value: Any) -> str:
    """A profile's value in the parameter table: the domains by name, a list comma-separated, ``2e-4`` as 0.0002."""
    if name == "domains":
        return ", ".join(dict(value))
    if isinstance(value, tuple):
        return ", ".join(shown_value(name, item) for item in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def parameter_table() -> str:
    """docs/running.md's parameter table: every parameter, its value in each profile, the values it accepts,
    whether a resumed training may change it, and what it does."""
    profiles = [profile_values(profile) for profile in PROFILES]
    header = ["parameter", *PROFILES, "accepts", "on resume", "meaning"]
    rows = [header, ["---"] * len(header)]
    for name, declaration in DECLARATIONS.items():
        values = [shown_value(name, getattr(params, name)) for params in profiles]
        resume = "may change" if declaration.resumable else ""
        rows.append([f"`{name}`", *values, declaration.accepts(), resume, declaration.meaning])
    return "".join(f"| {' | '.join(row)} |\n" for row in rows)
