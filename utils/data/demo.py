"""The demo's images, made without a download: seeded cel-style cartoon frames, and crops of the colour photographs
that scikit-image and matplotlib ship ("movie" domain), split by photograph (``DEMO_MOVIE_TEST_PHOTOS``).

Each generator yields :class:`utils.data.sources.Candidate` images, filtered as decoded files are.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator

import numpy as np
import skimage.data
from PIL import Image, ImageDraw

from utils.core.domains import DEMO_DOMAINS
from utils.core.parameters import RunParams
from utils.data.near_duplicates import perceptual_hash
from utils.data.sources import SPLITS, Candidate, near_grayscale_reason
from utils.imaging.images import resize_square

# The demo's "movie" photographs: the colour photographs that scikit-image and matplotlib ship inside their
# packages (checked with scikit-image 0.26, matplotlib 3.11), so nothing is downloaded; name -> the package.
# Left out: scikit-image's hubble_deep_field (black sky with small galaxies: at the demo's 64 px half its crops
# are near-gray, rejected by min_colorfulness, and the rest teach little colour), colorwheel and logo (synthetic
# drawings), cat (the same photograph as chelsea), camera, coins and its other gray images, skin, lily, eagle and
# the other colour images it downloads on first use; matplotlib's logo2.png (a logo) and
# Minduka_Present_Blue_Pack.png (a 128 px drawing).
DEMO_PHOTOS: dict[str, str] = {
    "astronaut": "scikit-image",
    "chelsea": "scikit-image",
    "coffee": "scikit-image",
    "rocket": "scikit-image",
    "stereo_motorcycle": "scikit-image",  # its left view: the right one is the same scene
    "grace_hopper": "matplotlib",
    # photographs, though not of everyday scenes (a fundus camera's, a microscope's): train only, for variety
    "retina": "scikit-image",
    "immunohistochemistry": "scikit-image",
}
# Split by photograph, as a real dataset is split by film: the test crops come from these photographs only,
# the train crops from the others. Both splits hold everyday scenes.
DEMO_MOVIE_TEST_PHOTOS: tuple[str, ...] = ("chelsea", "coffee")
DEMO_CANDIDATES_PER_IMAGE = 4  # crops offered per image wanted: rejected ones are replaced, yet the stream ends


def demo_movie_photos(split: str) -> tuple[str, ...]:
    """The photographs whose crops make the demo's movie ``split``, in a fixed order."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: must be one of {', '.join(SPLITS)}")
    return tuple(name for name in DEMO_PHOTOS if (name in DEMO_MOVIE_TEST_PHOTOS) == (split == "test"))


@functools.cache
def load_demo_photo(name: str) -> np.ndarray:
    """One of ``DEMO_PHOTOS`` as H x W x 3 uint8 (read-only: it is cached), loaded from its package's files."""
    if name not in DEMO_PHOTOS:
        raise ValueError(f"demo photograph {name!r}: must be one of {', '.join(DEMO_PHOTOS)}")
    try:
        if DEMO_PHOTOS[name] == "matplotlib":
            from matplotlib.cbook import get_sample_data

            with Image.open(get_sample_data(f"{name}.jpg")) as image:
                photo = np.asarray(image.convert("RGB"))
        else:
            photo = getattr(skimage.data, name)()
    except Exception as err:  # noqa: BLE001 - whatever the package raises, the message names the photograph
        raise RuntimeError(
            f"demo photograph {name!r} ({DEMO_PHOTOS[name]}) cannot be loaded ({type(err).__name__}: {err}); the "
            "demo's split names it, so it is needed: install the package's full data, or use source='folder'"
        ) from err
    photo = np.ascontiguousarray(photo[0] if isinstance(photo, tuple) else photo, dtype=np.uint8)
    photo.flags.writeable = False
    return photo


def demo_photos(names: Iterable[str] = tuple(DEMO_PHOTOS)) -> dict[str, np.ndarray]:
    """Photographs of ``DEMO_PHOTOS`` by name, in the order given."""
    return {name: load_demo_photo(name) for name in names}


def skimage_photos() -> dict[str, np.ndarray]:
    """The everyday scenes among scikit-image's photographs: the benchmarks' test images."""
    return demo_photos(("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle"))


def demo_candidate(
    source: str, group: str, image: np.ndarray, size: int, min_colorfulness: float, hashed: bool = False
) -> Candidate:
    """A generated image resized to ``size``, then filtered as a decoded file is (near-grayscale); ``hashed``:
    with the perceptual hash of the generated image, as a file's is of the decoded file.

    Measured on the resized image, what the model would learn from: a crop of black sky with a few
    galaxies is near-gray at 64 px even where its full-resolution noise counts as colour.
    """
    rgb = resize_square(image, size)
    reason = near_grayscale_reason(rgb, min_colorfulness)
    if reason is not None:
        return Candidate(source, group, None, reason)
    return Candidate.accepted(source, group, rgb, image.shape, perceptual_hash(image) if hashed else "")


def demo_movie_stills(
    count: int, size: int, seed: int, photos: Iterable[str], min_colorfulness: float = 0.0, hashed: bool = False
) -> Iterator[Candidate]:
    """Random crops, scales and horizontal flips of ``photos`` ("movie" domain), one photograph after the
    other in turn; same seed, same images. Each candidate's group is its photograph's name."""
    photos = demo_photos(photos)
    names = list(photos)
    rng = np.random.default_rng(seed)
    for i in range(count):
        name = names[i % len(names)]
        photo = photos[name]
        height, width = photo.shape[:2]
        side = int(rng.uniform(0.35, 1.0) * min(height, width))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crop = photo[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        source = f"{DEMO_PHOTOS[name]}:{name}[{top}:{top + side},{left}:{left + side}]"
        yield demo_candidate(source, name, np.ascontiguousarray(crop), size, min_colorfulness, hashed)


_SKIES = [(120, 190, 250), (250, 170, 90), (250, 150, 190), (30, 40, 110), (170, 220, 250)]
_GROUNDS = [(70, 170, 60), (230, 200, 120), (120, 120, 130), (40, 120, 60), (200, 110, 60)]
_PALETTE = [
    (230, 40, 40),
    (250, 140, 20),
    (250, 220, 40),
    (60, 180, 60),
    (40, 90, 220),
    (150, 60, 200),
    (250, 120, 180),
    (40, 200, 220),
    (140, 80, 30),
    (245, 245, 245),
]
_SKIN = [(255, 214, 170), (230, 170, 120), (160, 100, 60), (120, 220, 120)]
_OUTLINE = (25, 25, 25)


def draw_cartoon_frame(rng: np.random.Generator, size: int) -> np.ndarray:
    """One cel-style frame: flat sky and ground, outlined flat shapes, a small saturated palette."""
    canvas = 2 * size  # drawn at twice the size, then downsampled: clean antialiased outlines
    image = Image.new("RGB", (canvas, canvas), _SKIES[rng.integers(len(_SKIES))])
    draw = ImageDraw.Draw(image)
    line = max(2, canvas // 80)

    def colour() -> tuple[int, ...]:
        return _PALETTE[rng.integers(len(_PALETTE))]

    def ellipse(cx: float, cy: float, rx: float, ry: float, fill: tuple[int, ...]) -> None:
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill, outline=_OUTLINE, width=line)

    horizon = int(canvas * rng.uniform(0.5, 0.75))
    draw.rectangle((0, horizon, canvas, canvas), fill=_GROUNDS[rng.integers(len(_GROUNDS))])
    draw.line((0, horizon, canvas, horizon), fill=_OUTLINE, width=line)

    # sun or moon, clouds
    ellipse(
        rng.uniform(0.1, 0.9) * canvas,
        rng.uniform(0.08, 0.3) * canvas,
        canvas * 0.08,
        canvas * 0.08,
        ((250, 210, 30), (250, 120, 20), (240, 240, 220))[rng.integers(3)],
    )
    for _ in range(rng.integers(0, 3)):
        cx, cy = rng.uniform(0, canvas), rng.uniform(0.05, 0.35) * canvas
        ellipse(cx, cy, canvas * rng.uniform(0.08, 0.15), canvas * 0.04, (250, 250, 250))

    # houses: wall, roof, door, window
    for _ in range(rng.integers(0, 3)):
        w = canvas * rng.uniform(0.18, 0.3)
        h = w * rng.uniform(0.6, 1.0)
        x0 = rng.uniform(0, canvas - w)
        y1 = horizon + rng.uniform(0, 0.1) * canvas
        draw.rectangle((x0, y1 - h, x0 + w, y1), fill=colour(), outline=_OUTLINE, width=line)
        roof = [(x0 - w * 0.1, y1 - h), (x0 + w * 1.1, y1 - h), (x0 + w / 2, y1 - h - w * 0.5)]
        draw.polygon(roof, fill=colour(), outline=_OUTLINE, width=line)
        draw.rectangle((x0 + w * 0.4, y1 - h * 0.45, x0 + w * 0.6, y1), fill=colour(), outline=_OUTLINE, width=line)
        draw.rectangle(
            (x0 + w * 0.1, y1 - h * 0.8, x0 + w * 0.3, y1 - h * 0.55),
            fill=(170, 220, 250),
            outline=_OUTLINE,
            width=line,
        )

    # trees: trunk and crown
    for _ in range(rng.integers(0, 4)):
        cx = rng.uniform(0, canvas)
        base = horizon + rng.uniform(0, 0.15) * canvas
        tw, th = canvas * 0.03, canvas * rng.uniform(0.1, 0.2)
        draw.rectangle((cx - tw, base - th, cx + tw, base), fill=(140, 80, 30), outline=_OUTLINE, width=line)
        crown = ((60, 180, 60), (30, 130, 50), (250, 140, 20), (230, 40, 40))[rng.integers(4)]
        ellipse(cx, base - th, canvas * rng.uniform(0.06, 0.1), canvas * rng.uniform(0.06, 0.12), crown)

    # characters: body, head, eyes
    for _ in range(rng.integers(1, 3)):
        cx = rng.uniform(0.15, 0.85) * canvas
        base = rng.uniform(0.8, 0.98) * canvas
        scale = canvas * rng.uniform(0.1, 0.18)
        ellipse(cx, base - scale * 0.6, scale * 0.45, scale * 0.6, colour())
        head_y = base - scale * 1.45
        ellipse(cx, head_y, scale * 0.38, scale * 0.38, _SKIN[rng.integers(len(_SKIN))])
        for dx in (-0.14, 0.14):
            ellipse(cx + dx * scale, head_y - 0.05 * scale, scale * 0.09, scale * 0.11, (255, 255, 255))
            r = scale * 0.04
            draw.ellipse((cx + dx * scale - r, head_y - r, cx + dx * scale + r, head_y + r), fill=_OUTLINE)

    return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def demo_cartoon_frames(
    count: int, size: int, seed: int, min_colorfulness: float = 0.0, hashed: bool = False
) -> Iterator[Candidate]:
    """Seeded procedural cel-style frames ("cartoon" domain): same seed, same images; each its own group."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        frame = draw_cartoon_frame(rng, size)
        group = f"seed{seed}:frame{i}"
        yield demo_candidate(f"procedural:seed{seed}:{i}", group, frame, size, min_colorfulness, hashed)


def demo_stream(params: RunParams, domain: str, split: str, start: int = 0) -> Iterator[Candidate]:
    """The demo source: one seeded generator per domain and split; ``start`` skips that many.

    It offers ``DEMO_CANDIDATES_PER_IMAGE`` candidates per image wanted, so near-grayscale ones can be
    replaced; the prepare stops taking them when the split is full. Accepted candidates carry their perceptual
    hash unless ``near_duplicate_bits`` is 0.
    """
    seed = (params.seed * 1000 + DEMO_DOMAINS.index(domain)) * 2 + SPLITS.index(split)
    count = (params.test_per_domain if split == "test" else params.train_per_domain) * DEMO_CANDIDATES_PER_IMAGE
    hashed = params.near_duplicate_bits > 0
    if domain == "cartoon":
        stream = demo_cartoon_frames(count, params.image_size, seed, params.min_colorfulness, hashed)
    else:
        photos = demo_movie_photos(split)
        stream = demo_movie_stills(count, params.image_size, seed, photos, params.min_colorfulness, hashed)
    yield from itertools.islice(stream, start, None)
