"""The run's domains: an ordered mapping from a name to where its images are (a folder for ``source='folder'``,
a Kaggle handle ``owner/slug`` for ``source='kaggle'``; the demo generates its two).

``domains`` is the one representation inside the kit. The paper's two-domain parameters (``cartoon_dir``,
``movie_dir``, ``cartoon_dataset``, ``movie_dataset``) are shorthand that :func:`resolve_domains` turns into it,
so every paper command keeps working. The models are one per domain and ``mixed`` (equal shares of every domain).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from utils.core.errors import ParameterError

MIXED = "mixed"  # the model trained on equal shares of every domain: no domain may take its name
BASELINE_NAMES = ("gray", "truth")  # evaluation's baselines (utils/core/statistics.py), scored beside the models
DEMO_DOMAINS: tuple[str, ...] = ("cartoon", "movie")  # what the demo generates (utils/data/demo.py)
DEMO_MODELS: tuple[str, ...] = (*DEMO_DOMAINS, MIXED)
PAPER_DOMAINS: tuple[str, ...] = ("cartoon", "movie")  # what the paper's claims are about (utils/eval/claims.py)
MIN_DOMAINS, MAX_DOMAINS = 2, 6
NAME = re.compile(r"[a-z][a-z0-9_]*")  # lower-case identifiers: folder, notebook and column names
# the paper's two-domain parameters: shorthand name -> (source, domain)
SHORTHAND: dict[str, tuple[str, str]] = {
    "cartoon_dir": ("folder", "cartoon"),
    "movie_dir": ("folder", "movie"),
    "cartoon_dataset": ("kaggle", "cartoon"),
    "movie_dataset": ("kaggle", "movie"),
}

Domains = tuple[tuple[str, str], ...]  # ((name, location), ...), in the order given
# the docs write a dataset handle as OWNER/SLUG, OWNER/CARTOON-SLUG, ...: a copied command still holds them
PLACEHOLDER_DATASET_OWNER, PLACEHOLDER_DATASET_SLUG = "OWNER", "SLUG"


def _fail(why: str, value: Any) -> ParameterError:
    return ParameterError(f"parameter 'domains' = {value!r}: {why}")


class _Pairs(list):
    """A JSON object's (name, value) pairs, in order: what json.loads gives for an object here."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> _Pairs:
    names = [name for name, _ in pairs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise _fail(f"the name {duplicates[0]!r} is given twice; each domain once", dict(pairs))
    return _Pairs(pairs)


def parse_domains(value: Any) -> Domains:
    """``{"anime": "data/anime", ...}``, its JSON text (the command line's ``-p 'domains={...}'``) or
    ``((name, location), ...)`` -> name/location pairs in the given order. Shape only: :func:`check_domains`
    checks the names and the locations."""
    if isinstance(value, str) and not value.strip():
        return ()  # not given: the demo's two, or the paper's shorthand
    if isinstance(value, str):
        try:
            pairs = json.loads(value, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as err:
            raise _fail(
                f'not a JSON object ({err.msg}); e.g. {{"anime": "data/anime", "photo": "data/photo"}}', value
            ) from None
        if not isinstance(pairs, _Pairs):
            raise _fail('must be a JSON object of name -> location, e.g. {"anime": "data/anime"}', value)
    elif isinstance(value, Mapping):
        pairs = list(value.items())
        if not pairs:
            raise _fail("names no domain; give 2 to 6, or leave it out for the demo's two", value)
    elif isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        pairs = [tuple(p) for p in value]
        _no_duplicate_keys(pairs)
    else:
        raise _fail("must be a mapping of domain name -> folder or Kaggle handle", value)
    if not all(isinstance(name, str) and isinstance(where, str) for name, where in pairs):
        raise _fail("names and locations must be strings", value)
    return tuple((name, where) for name, where in pairs)


def resolve_domains(source: str, domains: Domains, shorthand: dict[str, str]) -> Domains:
    """``domains`` as given, or built from the paper's shorthand, or the demo's two; never both ways at once."""
    given = {name: value for name, value in shorthand.items() if value}
    if domains and given:
        raise ParameterError(
            f"parameters 'domains' and {', '.join(repr(n) for n in given)} both given: 'domains' names every domain; "
            "the paper's cartoon_dir/movie_dir/cartoon_dataset/movie_dataset are its two-domain shorthand"
        )
    if domains:
        return domains
    if source == "demo":
        return tuple((name, "") for name in DEMO_DOMAINS)
    wrong = [name for name in given if SHORTHAND[name][0] != source]
    if wrong:
        raise ParameterError(
            f"parameter {wrong[0]!r} = {given[wrong[0]]!r}: is for source='{SHORTHAND[wrong[0]][0]}', "
            f"not source={source!r}"
        )
    kind = "dir" if source == "folder" else "dataset"
    return tuple((name, shorthand.get(f"{name}_{kind}", "")) for name in PAPER_DOMAINS)


def check_domains(source: str, domains: Domains) -> None:
    """Refuse what no stage can use, naming the parameter: the count, the names, and each location."""
    value = dict(domains)
    if not MIN_DOMAINS <= len(domains) <= MAX_DOMAINS:
        raise _fail(f"{len(domains)} domain(s); a study needs {MIN_DOMAINS} to {MAX_DOMAINS}", value)
    for name in domain_names(domains):
        if name == MIXED:
            raise _fail(f"{MIXED!r} is the model trained on every domain; give the domain another name", value)
        if name in BASELINE_NAMES:
            raise _fail(f"{name!r} is a baseline's name in the evaluation; give the domain another name", value)
        if not NAME.fullmatch(name):
            raise _fail(f"the name {name!r} is not a lower-case identifier (a-z, 0-9, _; a letter first)", value)
    if source == "demo" and tuple(value) != DEMO_DOMAINS:
        raise _fail(
            f"source='demo' generates {' and '.join(DEMO_DOMAINS)} only; for your own domains use "
            "source='folder' or source='kaggle'",
            value,
        )
    for name, where in domains:
        named = f"parameter {location_parameter(source, name)} = {where!r}"
        if source == "folder" and not where:
            raise ParameterError(f"{named}: source='folder' needs one image folder per domain")
        if source == "folder" and not Path(where).is_dir():
            raise ParameterError(f"{named}: is not a directory")
        owner, _, slug = where.partition("/")
        if source == "kaggle" and (not owner or not slug or "/" in slug):
            raise ParameterError(f"{named}: source='kaggle' needs a Kaggle dataset handle 'owner/slug' per domain")
        if source == "kaggle" and is_placeholder_handle(where):
            raise ParameterError(
                f"{named}: the docs' placeholder, not a dataset; put a dataset handle there "
                "(find one with `python -m utils.kaggle datasets WORDS`)"
            )


def is_placeholder_handle(handle: str) -> bool:
    """Whether ``handle`` is the docs' placeholder (``OWNER/CARTOON-SLUG``): its owner ``OWNER``, or its slug
    ``SLUG`` or ``...-SLUG``, in capitals as the docs write them (a real owner may hold capitals:
    ``Cornell-University``)."""
    owner, _, slug = handle.partition("/")
    return (
        owner == PLACEHOLDER_DATASET_OWNER
        or slug == PLACEHOLDER_DATASET_SLUG
        or slug.endswith(f"-{PLACEHOLDER_DATASET_SLUG}")
    )


def location_parameter(source: str, name: str) -> str:
    """How an error names one domain's location: ``domains['anime']``, with the paper's shorthand beside it."""
    kind = {"folder": "dir", "kaggle": "dataset"}.get(source)
    short = f" ('{name}_{kind}')" if kind and name in PAPER_DOMAINS else ""
    return f"domains[{name!r}]{short}"


def domain_names(domains: Domains) -> tuple[str, ...]:
    return tuple(name for name, _ in domains)


def fraction_model(domains: Domains, fraction: float) -> str:
    """The model trained with ``fraction`` of its images from the first of two domains: 1 is the first domain's
    model, 0 the second's, 0.5 the mixed model (equal shares); any other fraction is ``mix<fraction>``."""
    first, second = domain_names(domains)
    return {1.0: first, 0.0: second, 0.5: MIXED}.get(float(fraction), f"mix{float(fraction):g}")


def mix_fraction(model: str) -> float | None:
    """The share of the first domain in a ``mix<f>`` model's training images (None for any other model)."""
    if model == MIXED or not model.startswith("mix"):
        return None
    try:
        return float(model[3:])
    except ValueError:
        return None


def check_mix_fractions(domains: Domains, fractions: tuple[float, ...]) -> None:
    """``mix_fractions``: for exactly two domains, each fraction in [0, 1], each once."""
    if not fractions:
        return
    named = f"parameter 'mix_fractions' = {list(fractions)!r}"
    if len(domains) != 2:
        raise ParameterError(
            f"{named}: fractions of the first domain need exactly two domains; this run has "
            f"{len(domains)} ({', '.join(domain_names(domains))})"
        )
    outside = [f for f in fractions if not 0.0 <= f <= 1.0]  # not <=: NaN fails too
    if outside:
        raise ParameterError(f"{named}: {outside[0]!r} is outside [0, 1] (the share of {domains[0][0]} images)")
    names = [fraction_model(domains, f) for f in fractions]
    if len(set(names)) != len(names):
        raise ParameterError(f"{named}: a fraction is given twice (fractions equal to 6 significant digits are one)")


def model_names(domains: Domains, fractions: tuple[float, ...] = ()) -> tuple[str, ...]:
    """Every model a run can train: one per domain, then ``mixed``, then each ``mix_fractions`` model that is
    not one of those."""
    models = (*domain_names(domains), MIXED)
    if len(domains) != 2:  # check_mix_fractions refuses fractions here
        return models
    return (*models, *dict.fromkeys(m for f in fractions if (m := fraction_model(domains, f)) not in models))


def paper_domains_present(names: tuple[str, ...] | list[str]) -> bool:
    """Whether the paper's claims can be checked: its two domains are among the run's."""
    return set(PAPER_DOMAINS) <= set(names)
