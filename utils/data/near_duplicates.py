"""Near-duplicate groups: a perceptual hash and a thumbnail per image, and the groups that join near-copies.

Frames of one shot, a still and its rescaled or re-encoded copy, are near-copies: if they sat on both sides of the
train/test split, the test would score what training saw. Every image gets a 192-bit perceptual hash of its
content and a small thumbnail of it; images whose hashes differ in at most ``near_duplicate_bits`` bits are joined,
and so are images whose thumbnails agree once aligned (utils/data/thumbnail_check.py: frames a pan moved too far for
the hash), together with their folder groups (a film, a show), and a group goes to one split whole.

The hash (``HASH_SCHEME``): the image is shrunk to fit ``HASH_SIDE`` px and cropped to its content (a flat
background, the white around clip art or a letterbox's black bars, is cut off: it would make unrelated pictures
look alike); then imagehash's pHash, dHash and vertical dHash (64 bits each) of that crop, side by side. The
distance is the number of differing bits of the three together: three hashes each a little noisy for a pan or a
re-encoding add up to a margin one hash alone lacks (benchmarks/bench_near_duplicates.py measures it).

Search (:func:`near_pairs`): multi-index hashing. The 192 bits are cut into m chunks; two hashes within t bits
agree within ``t // m`` bits on at least one chunk (pigeonhole), so each chunk's table is probed with every value
that close, and only the pairs found are compared in full. No pair loop over all n^2 pairs.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

from utils.core.parameters import NEAR_DUPLICATE_HASH_BITS
from utils.data.thumbnail_check import aligned_agreement, neighbour_pairs, thumbnail, thumbnail_array

# part of the prepare's fingerprint
HASH_SCHEME = "content-crop pHash+dHash+vertical dHash, 3x64 bits; 24 px RGB thumbnail, v2"
HASH_SIDE = 128  # px: images are shrunk to fit this square before the crop and the hashes
BACKGROUND_TOLERANCE = 40  # max channel difference from the border's colour that still counts as background
BACKGROUND_BORDER_SHARE = 0.8  # the border pixels that must be background for the image to have one
_HASHES = (imagehash.phash, imagehash.dhash, imagehash.dhash_vertical)
assert len(_HASHES) * 64 == NEAR_DUPLICATE_HASH_BITS


def shrink_to_hash_side(image: Image.Image) -> Image.Image:
    """``image`` as RGB, shrunk (never enlarged) to fit ``HASH_SIDE`` x ``HASH_SIDE``: every source resolution,
    and a JPEG decoded at reduced scale, ends at the same working size."""
    image = image.convert("RGB")
    if max(image.size) > HASH_SIDE:
        image = image.copy()
        image.thumbnail((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return image


def content_box(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of what differs from a flat background; the whole image when its border is not
    mostly one colour (a photograph); None when nothing differs from it (a blank or black frame: no content)."""
    pixels = rgb.astype(np.int16)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    if (np.abs(border - background).max(axis=1) <= BACKGROUND_TOLERANCE).mean() < BACKGROUND_BORDER_SHARE:
        return 0, 0, rgb.shape[1], rgb.shape[0]
    rows, cols = np.nonzero(np.abs(pixels - background).max(axis=2) > BACKGROUND_TOLERANCE)
    if not len(rows):
        return None
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def content_crop(image: Image.Image | np.ndarray) -> Image.Image | None:
    """The image shrunk to ``HASH_SIDE`` and cropped to its content; None for an image without content (flat)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    small = shrink_to_hash_side(image)
    box = content_box(np.asarray(small))
    return None if box is None else small.crop(box)


def crop_hash(content: Image.Image) -> str:
    return "".join(str(hash_function(content)) for hash_function in _HASHES)


def perceptual_hash(image: Image.Image | np.ndarray) -> str:
    """The image's hash as 48 hex digits (``HASH_SCHEME``), or "" for an image without content (flat)."""
    content = content_crop(image)
    return "" if content is None else crop_hash(content)


def near_signature(image: Image.Image | np.ndarray) -> tuple[str, str]:
    """(hash, thumbnail) of the image's content crop (``HASH_SCHEME``), or ("", "") for an image without content."""
    content = content_crop(image)
    return ("", "") if content is None else (crop_hash(content), thumbnail(content))


def hash_array(hashes: Sequence[str]) -> np.ndarray:
    """Hex hashes (none empty, all of one length) -> an n x words uint64 array (3 words: the kit's hash)."""
    raw = b"".join(bytes.fromhex(h) for h in hashes)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(hashes), -1)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Differing bits between rows of two k x 3 uint64 arrays (broadcast)."""
    return np.bitwise_count(a ^ b).sum(axis=-1, dtype=np.int64)


# --- multi-index search ------------------------------------------------------------------------

MAX_CHUNK_BITS = 22  # a chunk's table has 2**bits entries
PROBE_BLOCK = 1 << 21  # probes held in memory at once


@functools.cache
def flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit mask with at most ``radius`` bits set: XORed with a value, every value that close."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << i for i in combo) for combo in itertools.combinations(range(bits), r)]
    return np.array(masks, dtype=np.int64)


def chunk_bounds(chunks: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, NEAR_DUPLICATE_HASH_BITS, chunks + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def search_cost(n: int, threshold: int, chunks: int) -> float:
    """Probes plus expected candidates (as if chunk values were uniform) of a search with ``chunks`` chunks."""
    radius = threshold // chunks
    cost = 0.0
    for lo, hi in chunk_bounds(chunks):
        probes = sum(math.comb(hi - lo, r) for r in range(radius + 1))
        cost += n * probes * (1.0 + n / 2 ** (hi - lo))
    return cost


def best_chunk_count(n: int, threshold: int) -> int:
    """The chunk count of the cheapest search (``search_cost``) whose chunk tables stay small."""
    counts = [
        m for m in range(1, NEAR_DUPLICATE_HASH_BITS + 1) if math.ceil(NEAR_DUPLICATE_HASH_BITS / m) <= MAX_CHUNK_BITS
    ]
    return min(counts, key=lambda m: search_cost(n, threshold, m))


def chunk_values(bit_rows: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The integer value of bits lo..hi of each row (rows of 0/1 from np.unpackbits)."""
    weights = np.left_shift(np.int64(1), np.arange(hi - lo, dtype=np.int64))
    return bit_rows[:, lo:hi].astype(np.int64) @ weights


def chunk_neighbours(values: np.ndarray, bits: int, radius: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs (i, j), i < j, whose chunk values differ in at most ``radius`` bits, block by block: (i's, j's)."""
    n = len(values)
    order = np.argsort(values, kind="stable")
    starts = np.searchsorted(values[order], np.arange(2**bits + 1))  # the table: value -> its rows in ``order``
    masks = flip_masks(bits, radius)
    block = max(1, PROBE_BLOCK // len(masks))
    for first in range(0, n, block):
        items = np.arange(first, min(n, first + block))
        probes = (values[items, None] ^ masks[None, :]).ravel()
        begin, end = starts[probes], starts[probes + 1]
        sizes = end - begin
        owners = np.repeat(np.repeat(items, len(masks)), sizes)
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        partners = order[np.repeat(begin, sizes) + offsets]
        keep = partners > owners
        yield owners[keep], partners[keep]


def near_pairs(hashes: np.ndarray, threshold: int) -> np.ndarray:
    """Every pair (i, j), i < j, of rows of ``hashes`` (n x 3 uint64) within ``threshold`` bits: a k x 2 array,
    sorted."""
    n = len(hashes)
    if n < 2:
        return np.empty((0, 2), np.int64)
    chunks = best_chunk_count(n, threshold)
    radius = threshold // chunks
    bit_rows = np.unpackbits(hashes.astype(">u8").view(np.uint8).reshape(n, -1), axis=1)
    words = [np.ascontiguousarray(hashes[:, k]) for k in range(hashes.shape[1])]
    found = [np.empty(0, np.int64)]
    for lo, hi in chunk_bounds(chunks):
        for first, second in chunk_neighbours(chunk_values(bit_rows, lo, hi), hi - lo, radius):
            distance = sum(np.bitwise_count(word[first] ^ word[second]).astype(np.int16) for word in words)
            close = distance <= threshold  # a pair close on several chunks is found once per chunk
            found.append(first[close] * n + second[close])
    pairs = np.sort(np.concatenate(found))
    pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])] if len(pairs) else pairs
    return np.stack([pairs // n, pairs % n], axis=1)


# --- groups ------------------------------------------------------------------------------------


def merged_name(folder_groups: list[str]) -> str:
    """A group's name: its folder group's, or, for folder groups joined by near-duplicates, the first one's and
    how many more (``show/ep1+2``: three folder groups)."""
    first, *others = sorted(folder_groups)
    return f"{first}+{len(others)}" if others else first


@dataclass(frozen=True)
class NearPairs:
    """The pairs of images the search found close, by image index (``first`` < ``second``), with their hash
    distance in ``bits`` and whether they were ``joined``: every pair within the hash threshold (joined), every
    pair of thumbnail neighbours (joined when their thumbnails agree), and each copy of an identical hash with the
    first image of that hash (0 bits, joined)."""

    first: np.ndarray
    second: np.ndarray
    bits: np.ndarray
    joined: np.ndarray

    @classmethod
    def none(cls) -> NearPairs:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool))

    def __len__(self) -> int:
        return len(self.first)


def connected(rows: list[np.ndarray], cols: list[np.ndarray], size: int) -> np.ndarray:
    """The connected component of each of ``size`` nodes, joined by the edges (rows[k][i], cols[k][i])."""
    from scipy.sparse import coo_matrix  # here: scipy is slow to import, and only the prepare groups
    from scipy.sparse.csgraph import connected_components

    row, col = np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)
    graph = coo_matrix((np.ones(len(row), np.int8), (row, col)), shape=(size, size))
    return connected_components(graph, directed=False)[1]


def thumbnail_matches(
    thumbnails: Sequence[str], representative: np.ndarray, component: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The thumbnail check on distinct hashes (``representative``: the image of each; ``component``: the group of
    each so far): the candidate pairs of hashes, and whether each agreed (utils/data/thumbnail_check.py)."""
    with_thumbnail = np.array([k for k, image in enumerate(representative) if thumbnails[image]], dtype=np.int64)
    if len(with_thumbnail) < 2:
        return np.empty((0, 2), np.int64), np.zeros(0, bool)
    thumbs = thumbnail_array([thumbnails[image] for image in representative[with_thumbnail]])
    candidates = neighbour_pairs(thumbs, component[with_thumbnail])
    return with_thumbnail[candidates], aligned_agreement(thumbs, candidates)


def pair_table(
    table: np.ndarray,
    representative: np.ndarray,
    hash_of: np.ndarray,
    hashed: np.ndarray,
    pairs: np.ndarray,
    joined: np.ndarray,
) -> NearPairs:
    """``pairs`` of distinct hashes (with ``joined``) as pairs of their first images, and every other image of a
    hash as a pair with its first one."""
    copy = hashed != representative[hash_of]
    copies, copy_of = hashed[copy], representative[hash_of[copy]]
    ends = np.sort(representative[pairs], axis=1)
    return NearPairs(
        np.concatenate([copy_of, ends[:, 0]]),
        np.concatenate([copies, ends[:, 1]]),
        np.concatenate([np.zeros(len(copies), np.int64), hamming(table[pairs[:, 0]], table[pairs[:, 1]])]),
        np.concatenate([np.ones(len(copies), bool), joined]),
    )


def near_duplicate_grouping(
    folder_groups: Sequence[str], hashes: Sequence[str], threshold: int, thumbnails: Sequence[str] | None = None
) -> tuple[list[str], NearPairs]:
    """Each image's group, and the pairs the search found close (:class:`NearPairs`).

    The groups are the connected components (union-find's result) of the graph that joins every image to its
    folder group, images whose hashes lie within ``threshold`` bits to each other and, with ``thumbnails`` (one
    per image, "" for none), images whose thumbnails pass the thumbnail check. Images without a hash ("") keep
    their folder group's links only. ``threshold`` 0: the folder groups, unchanged, and no pairs."""
    n = len(folder_groups)
    if threshold == 0 or n == 0:
        return list(folder_groups), NearPairs.none()
    names, folder_index = np.unique(np.asarray(folder_groups, dtype=object), return_inverse=True)
    hashed = np.array([i for i, h in enumerate(hashes) if h], dtype=np.int64)
    # identical hashes (copies) are searched once: nodes for the distinct hashes, each image joined to its own
    distinct, first, hash_of = np.unique([hashes[i] for i in hashed], return_index=True, return_inverse=True)
    representative = hashed[first].astype(np.int64)
    table = hash_array(distinct.tolist()) if len(distinct) else np.empty((0, 3), np.uint64)
    pairs = near_pairs(table, threshold) if len(distinct) else np.empty((0, 2), np.int64)
    # nodes: images 0..n-1, folder groups n..n+g-1, distinct hashes n+g..
    first_hash = n + len(names)
    rows = [np.arange(n), hashed, first_hash + pairs[:, 0]]
    cols = [n + folder_index, first_hash + hash_of, first_hash + pairs[:, 1]]
    size = first_hash + len(distinct)
    component = connected(rows, cols, size)
    checked, agree = np.empty((0, 2), np.int64), np.zeros(0, bool)
    if thumbnails is not None:
        checked, agree = thumbnail_matches(thumbnails, representative, component[first_hash:])
        component = connected([*rows, first_hash + checked[agree, 0]], [*cols, first_hash + checked[agree, 1]], size)
    members: dict[int, list[str]] = {}
    for g, name in enumerate(names):
        members.setdefault(int(component[n + g]), []).append(str(name))
    component_name = {c: merged_name(groups) for c, groups in members.items()}
    all_pairs = np.concatenate([pairs, checked]).astype(np.int64)
    near = pair_table(
        table, representative, hash_of, hashed, all_pairs, np.concatenate([np.ones(len(pairs), bool), agree])
    )
    return [component_name[int(c)] for c in component[:n]], near


def near_duplicate_groups(
    folder_groups: Sequence[str], hashes: Sequence[str], threshold: int, thumbnails: Sequence[str] | None = None
) -> list[str]:
    """Each image's group (:func:`near_duplicate_grouping`, without the pairs)."""
    return near_duplicate_grouping(folder_groups, hashes, threshold, thumbnails)[0]
