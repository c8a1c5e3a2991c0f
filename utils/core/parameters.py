"""Every parameter of a run (:class:`RunParams`), each declared once with its rules, and their validation.

A field's declaration (:class:`Declared`, in the field's metadata) says what the parameter does, the values it
accepts (a range, a multiple or a list of choices) and whether a resumed training may change it. Three readers use
it: :func:`validate` checks every field against it, :func:`changed_training_parameters` compares only the fields not
declared resumable, and docs/running.md's parameter table is rendered from it (utils/core/profiles.py). The rules
that join several fields (the domains and their source, ``group_pattern``, the models) are short functions below.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from utils.core.domains import (
    MAX_DOMAINS,
    MIN_DOMAINS,
    Domains,
    check_domains,
    check_mix_fractions,
    domain_names,
    fraction_model,
    model_names,
)
from utils.core.errors import ParameterError
from utils.core.grouping import group_pattern_problem

SOURCES: tuple[str, ...] = ("demo", "folder", "kaggle")
RESIZE_MODES: tuple[str, ...] = ("crop", "stretch")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
GAMUTS: tuple[str, ...] = ("chroma", "clip")  # how out-of-sRGB predicted colours are shown: utils/imaging/color.py
NEAR_DUPLICATE_HASH_BITS = 192  # the perceptual hash's length (utils/data/near_duplicates.py)
NEAR_DUPLICATE_MAX_BITS = 64  # unrelated images' hashes differ in about 96 of the 192 bits
PRETRAINED_IF_CACHED = "cached"  # pretrained=cached: the ImageNet weights when they are cached here, else none
DECLARATION = "declaration"  # the metadata key of a field's Declared


@dataclass(frozen=True)
class Declared:
    """One parameter's meaning (what docs/running.md's table says it does) and its rules. A bound is inclusive
    (``at_least``, ``at_most``) or exclusive (``above``, ``below``); ``multiple_of`` asks for a positive multiple
    (with ``at_least`` equal to it). A field's kind, integer or float, is its annotation; a float must also be
    finite. ``note`` says why, after the rule, in a refusal.

    ``resumable``: a resumed training may change it, as it changes how fast or how long training runs, where the data
    is read from (the checkpoint's data digest checks the images themselves) or only what evaluation does. Every
    other parameter shapes what the model learns: a checkpoint resumes only with its own value of it."""

    meaning: str
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    multiple_of: int | None = None
    choices: tuple[str, ...] = ()
    note: str = ""
    resumable: bool = False

    def __post_init__(self) -> None:
        if None not in (self.at_least, self.above) or None not in (self.at_most, self.below):
            raise ValueError(f"{self}: one lower and one upper bound at most")
        if self.multiple_of is not None and (self.at_least != self.multiple_of or self.bounds()[1] is not None):
            raise ValueError(f"{self}: a multiple's only bound is at_least, the multiple itself")
        if self.choices and self.bounds() != (None, None):
            raise ValueError(f"{self}: choices or a range, not both")

    def bounds(self) -> tuple[float | None, float | None]:
        lower = self.above if self.at_least is None else self.at_least
        return lower, self.below if self.at_most is None else self.at_most

    def accepts(self) -> str:
        """The values allowed, as a refusal and the docs' table say them (empty: any value of the field's type)."""
        lower, upper = self.bounds()
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.multiple_of is not None:
            return f"a positive multiple of {self.multiple_of}"
        if lower is not None and upper is not None:
            opening, closing = "(" if self.above is not None else "[", ")" if self.below is not None else "]"
            return f"in {opening}{lower:g}, {upper:g}{closing}"
        if lower is not None:
            if lower == 0:
                return "positive" if self.above is not None else "non-negative"
            return f"{'above' if self.above is not None else 'at least'} {lower:g}"
        if upper is not None:
            return f"{'below' if self.below is not None else 'at most'} {upper:g}"
        return ""

    def admits(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        return (
            (self.at_least is None or value >= self.at_least)
            and (self.above is None or value > self.above)
            and (self.at_most is None or value <= self.at_most)
            and (self.below is None or value < self.below)
            and (self.multiple_of is None or value % self.multiple_of == 0)
        )


def declared(default: Any, meaning: str, **rules: Any) -> Any:
    """A RunParams field: its default, and its :class:`Declared` rules in its metadata."""
    return dataclasses.field(default=default, metadata={DECLARATION: Declared(meaning, **rules)})


@dataclass(frozen=True)
class RunParams:
    """Every parameter of a run. Profiles (utils/core/profiles.py) override these defaults; nothing else does."""

    # data
    source: str = declared("demo", "where images come from ([data sources](#data-sources))", choices=SOURCES)
    domains: Domains = declared(
        (),
        "the domains, in order: name -> image folder (`source=folder`) or Kaggle dataset `owner/slug` "
        f"(`source=kaggle`); {MIN_DOMAINS} to {MAX_DOMAINS}; the demo generates cartoon and movie ([your own domains](#your-own-domains)); "
        "the paper's `cartoon_dir`/`movie_dir` and `cartoon_dataset`/`movie_dataset` are its shorthand",
    )
    kaggle_input_root: str = declared(
        "/kaggle/input", "where attached Kaggle datasets are searched for", resumable=True
    )
    kaggle_cache: str = declared(
        "~/.cache/cross-domain-colorization/kaggle", "where datasets are downloaded outside Kaggle", resumable=True
    )
    image_size: int = declared(
        256,
        "square side in pixels (the encoder downsamples 32 times)",
        at_least=32,
        multiple_of=32,
        note="the encoder downsamples 32x",
    )
    resize: str = declared(
        "crop",
        "`crop`: shorter side to `image_size`, then the centre square; `stretch`: both sides",
        choices=RESIZE_MODES,
    )
    min_colorfulness: float = declared(
        10.0,
        "images less colourful than this are rejected as near-grayscale; 0 disables the filter",
        at_least=0,
        note="0 disables the filter",
    )
    max_pixels: int = declared(
        50_000_000, "larger images are rejected before decoding (the decompression-bomb guard)", above=0
    )
    near_duplicate_bits: int = declared(
        36,
        f"images whose {NEAR_DUPLICATE_HASH_BITS}-bit perceptual hashes differ in at most this many bits join one "
        "group, with their folder groups, before the split, as do images whose thumbnails agree once aligned (a pan); "
        "0 = folder groups only (no hash pass, no thumbnail check) ([near-duplicate groups](#near-duplicate-groups))",
        at_least=0,
        at_most=NEAR_DUPLICATE_MAX_BITS,
        note=f"bits of the {NEAR_DUPLICATE_HASH_BITS}-bit perceptual hash; 0 = folder groups only",
    )
    group_pattern: str = declared(
        "",
        "a regular expression searched in each file's path relative to its domain's folder: its first capture group "
        "(or its whole match) names the file's group, and a file it does not match keeps its folder group; "
        "empty = off; folder and Kaggle sources ([grouping by name](#grouping-by-name))",
    )
    prepare_workers: int = declared(
        0,
        "decoding processes; 0 = one per CPU core, 1 = in the notebook's own process",
        at_least=0,
        note="0 = every CPU core",
        resumable=True,
    )
    decode_timeout_s: float = declared(
        60.0,
        "the longest one file may take to decode, in seconds; then its process is killed and the file rejected",
        above=0,
        note="seconds: one file's decode, at most",
        resumable=True,
    )
    train_per_domain: int = declared(8000, "training images per domain (fewer if the data runs out)", at_least=2)
    test_per_domain: int = declared(
        2000, "test images per domain (fewer if the data runs out)", at_least=1, resumable=True
    )
    val_fraction: float = declared(
        0.1, "the share of the training images held out to pick the best epoch", above=0, below=1
    )
    seed: int = declared(0, "fixes every random choice: the split, and the first training seed", at_least=0)
    # model and GAN recipe (pix2pix / the tutorial the paper follows)
    pretrained: bool = declared(
        True,
        "start the encoder from ImageNet weights (downloaded once through timm; the run stops if they cannot be); "
        f"`{PRETRAINED_IF_CACHED}`: the weights when this machine has them cached when the run directory is first "
        "prepared, else an untrained encoder, for every model of that run directory (the plan says which)",
    )
    epochs: int = declared(20, "GAN training epochs", at_least=1, resumable=True)
    batch_size: int = declared(
        16,
        "the global batch, split evenly across GPU processes",
        at_least=2,
        note="BatchNorm needs more than one sample",
    )
    lr: float = declared(2e-4, "Adam's learning rate, both networks", above=0)
    beta1: float = declared(0.5, "Adam's beta1", at_least=0, below=1)
    beta2: float = declared(0.999, "Adam's beta2", at_least=0, below=1)
    lambda_l1: float = declared(100.0, "the weight of the L1 loss beside the GAN loss", at_least=0)
    pretrain_epochs: int = declared(
        0, "generator-only L1 epochs before the GAN epochs; 0 = none", at_least=0, note="0 = off"
    )
    flip: bool = declared(True, "random horizontal flips of training images, decided by the seeded data order")
    seeds: int = declared(
        1,
        "train every model this many times, with training seeds `seed`, `seed + 1`, ... ([seeds](#seeds))",
        at_least=1,
        note="each model is trained once per seed",
        resumable=True,
    )
    # training speed and survival
    precision: str = declared(
        "auto",
        "`auto`: bf16 on GPUs that have it, fp16 with a GradScaler otherwise (T4), fp32 on a CPU; or force `fp32`, "
        "`fp16`, `bf16`",
        choices=PRECISIONS,
    )
    channels_last: bool = declared(True, "the NHWC memory layout for both networks", resumable=True)
    compile: bool = declared(
        False, "`torch.compile` both networks (the first steps compile for a minute or more)", resumable=True
    )
    gpus: int = declared(
        0,
        "training processes when several GPUs are visible; 0 = one per GPU",
        at_least=0,
        note="0 = all",
        resumable=True,
    )
    train_concurrency: int = declared(
        0,
        "train notebooks run at once; 0 = auto: one per GPU, on a CPU all "
        "([several models at once](#several-models-at-once))",
        at_least=0,
        note="0 = auto",
        resumable=True,
    )
    resume: bool = declared(
        True, "resume training from `checkpoint_last.pt` when there is one; `False` starts over", resumable=True
    )
    checkpoint_minutes: float = declared(
        0.0,
        "also checkpoint inside an epoch once this many minutes have passed; 0 = at epoch ends only",
        at_least=0,
        note="0 = off",
        resumable=True,
    )
    keep_every: int = declared(
        0,
        "keep `checkpoint_epoch_NNN.pt` every this many epochs; 0 = none",
        at_least=0,
        note="0 = off",
        resumable=True,
    )
    time_limit_hours: float = declared(
        0.0,
        "stop training at a checkpoint this long after the pipeline started, and end as a partial run; "
        "0 = no limit (the Kaggle kernel sets 11)",
        at_least=0,
        note="0 = no limit",
        resumable=True,
    )
    # evaluation and figures
    models: tuple[str, ...] = declared(
        (),
        "the models to train and evaluate: by default one per domain, then `mixed`, then each `mix_fractions` model",
        resumable=True,
    )
    mix_fractions: tuple[float, ...] = declared(
        (),
        "two domains only: fractions of the first domain in a model's training images, one model each, e.g. "
        "`0,0.25,0.5,0.75,1` (0, 0.5 and 1 are the domains' and the mixed model) "
        "([the mixing curve](#the-mixing-curve))",
        resumable=True,
    )
    eval_batch_size: int = declared(32, "the evaluation batch", at_least=1, resumable=True)
    n_examples: int = declared(4, "example images per model in the figures", at_least=1, resumable=True)
    n_bootstrap: int = declared(
        2000,
        "bootstrap resamples for intervals and paired comparisons",
        at_least=100,
        note="for a 95% interval",
        resumable=True,
    )
    compile_metrics: bool = declared(
        True,
        "score through `torch.compile` (pays off from a few thousand test images); falls back to eager scoring, "
        "saying so",
        resumable=True,
    )
    gamut: str = declared(
        "chroma",
        "how predicted colours a screen cannot show are converted, wherever they are shown or scored: `chroma` keeps "
        "lightness and hue, `clip` clips RGB as the paper did ([colours outside sRGB](results.md#colours-outside-srgb))",
        choices=GAMUTS,
    )
    # execution
    device: str = declared("auto", "`auto` (the GPU if there is one), `cpu` or `cuda`", choices=DEVICES, resumable=True)
    num_workers: int = declared(2, "DataLoader worker processes for training batches", at_least=0, resumable=True)

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


# every field's declaration, by name, in the fields' order: what validate, the resume check and the docs table read
DECLARATIONS: dict[str, Declared] = {field.name: field.metadata[DECLARATION] for field in dataclasses.fields(RunParams)}
FLOAT_FIELDS: frozenset[str] = frozenset(
    name for name, kind in typing.get_type_hints(RunParams).items() if kind is float
)


def resumable_parameters() -> frozenset[str]:
    """The parameters a resumed training may change: those declared ``resumable``."""
    return frozenset(name for name, declaration in DECLARATIONS.items() if declaration.resumable)


def changed_training_parameters(saved: dict[str, Any], params: RunParams) -> dict[str, tuple[Any, Any]]:
    """The parameters that shape training whose value in ``params`` differs from ``saved`` (a checkpoint's
    ``params``): name -> (saved value, value now). A name the checkpoint lacks (an older kit's) is not compared."""
    now, resumable = params.to_dict(), resumable_parameters()
    changed = {
        name: (saved[name], now[name])
        for name in now
        if name not in resumable | {"domains"} and name in saved and saved[name] != now[name]
    }
    # the domains' names and order shape training; where their images are may change (the data digest checks them)
    if "domains" not in resumable and "domains" in saved and list(saved["domains"]) != list(now["domains"]):
        changed["domains"] = (list(saved["domains"]), list(now["domains"]))
    return changed


def refusal(name: str, value: Any, why: str) -> ParameterError:
    """``parameter 'seed' = -1: must be non-negative``."""
    return ParameterError(f"parameter {name!r} = {value!r}: {why}")


def declared_problem(name: str, value: Any) -> str | None:
    """Why ``value`` breaks ``name``'s declaration (a float must also be finite), or None."""
    declaration = DECLARATIONS[name]
    if name in FLOAT_FIELDS and not math.isfinite(value):
        return "must be a finite number"
    if declaration.admits(value):
        return None
    accepts, note = declaration.accepts(), f" ({declaration.note})" if declaration.note else ""
    return f"must {'lie' if accepts.startswith('in ') else 'be'} {accepts}{note}"  # "must lie in [0, 1)"


def check_models(params: RunParams) -> None:
    """``models``: at least one, each a model of the run's domains and mix fractions, every fraction's among them."""
    if not params.models:
        raise refusal("models", params.models, "must name at least one model")
    check_mix_fractions(params.domains, params.mix_fractions)
    untrained = [m for f in params.mix_fractions if (m := fraction_model(params.domains, f)) not in params.models]
    if untrained:
        why = f"leaves out {', '.join(untrained)}, the model of a fraction in 'mix_fractions'"
        raise refusal("models", params.models, why)
    known = model_names(params.domains, params.mix_fractions)
    for model in params.models:
        if model not in known:
            raise refusal("models", params.models, f"unknown model {model!r}; models are {', '.join(known)}")


def validate(params: RunParams) -> RunParams:
    """Reject values no stage can use, naming the parameter: each field against its declaration, then the rules
    between fields (the domains and their source, ``group_pattern`` and the source, the models)."""
    for name in DECLARATIONS:
        if problem := declared_problem(name, value := getattr(params, name)):
            raise refusal(name, value, problem)
    check_domains(params.source, params.domains)
    if problem := group_pattern_problem(params.group_pattern, params.source):
        raise refusal("group_pattern", params.group_pattern, problem)
    check_models(params)
    return params
