"""The thumbnail check: near-duplicates that a pan moved beyond the hash's reach, found and confirmed by thumbnails.

A pan of a few percent of the frame changes the perceptual hash as much as another picture does, so the hash alone
cannot join such frames without joining distinct images too. Every hashed image also keeps a ``THUMBNAIL_SIDE`` px
RGB thumbnail of its content crop (the hash's crop). Two stages then decide:

1. Candidates (:func:`neighbour_pairs`): each image's ``NEIGHBOURS`` nearest images by a blurred 8 x 8 colour
   layout (cosine similarity), which a pan moves little. Images already in one group (a folder, a hash pair) are
   no candidates of each other: their slots go to images that could still be joined.
2. The check (:func:`aligned_agreement`), on thumbnails smoothed by a pixel (:func:`blurred`): the two are aligned
   at the best of every shift up to ``MAX_SHIFT`` px (12.5% of a side) by the correlation of their lightness over
   the overlap. They agree when that correlation is at least ``MIN_CORRELATION``, at most ``MAX_MISMATCH_SHARE`` of
   the overlap differs by more than ``MISMATCH_LEVEL`` in a colour channel, and at most ``MAX_STRAY_SHARE`` of
   either image is stray (:func:`stray_shares`: unlike every pixel around its place in the other). A pan, a rescale
   and a JPEG re-encoding leave almost every pixel in place; distinct photographs do not correlate so well, and two
   distinct cartoon frames with the same sky and ground do, yet their figures are stray.

benchmarks/bench_near_duplicates.py measures both error rates and the speed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

THUMBNAIL_SIDE = 24  # px; 1,728 bytes of RGB, 2,304 characters in the hash pass's journal
NEIGHBOURS = 8  # candidates per image
LAYOUT_SIDE = 8  # the candidates' colour layout: THUMBNAIL_SIDE / 3 blocks a side
LAYOUT_BLUR = 0.75  # px at LAYOUT_SIDE: a shift of up to a block changes the layout little
MAX_SHIFT = 3  # px at THUMBNAIL_SIDE: 12.5% of a side, a pan of 10% and rounding
MIN_CORRELATION = 0.85
MIN_DEVIATION = 2.0  # of 255: an overlap whose lightness varies less is flat, and correlates with nothing
MISMATCH_LEVEL = 40  # of 255, in one channel: a pixel that differs by more is a mismatch
MAX_MISMATCH_SHARE = 0.12  # of the overlap
MAX_STRAY_SHARE = 0.04  # of the overlap, in either image (stray_shares)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_PAIR_BLOCK = 8192  # pairs held in memory at once
_ROW_BLOCK = 2048  # rows of the similarity matrix held in memory at once


def thumbnail(content: Image.Image) -> str:
    """The content crop as a ``THUMBNAIL_SIDE`` px square RGB thumbnail, base64 (the hash pass's journal is JSON)."""
    small = content.convert("RGB").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
    return base64.b64encode(np.asarray(small, dtype=np.uint8).tobytes()).decode("ascii")


def thumbnail_array(thumbnails: Sequence[str]) -> np.ndarray:
    """Base64 thumbnails (none empty) -> an n x side x side x 3 uint8 array."""
    raw = b"".join(base64.b64decode(t) for t in thumbnails)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(thumbnails), THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3)


def colour_layouts(thumbnails: np.ndarray) -> np.ndarray:
    """Each thumbnail's blurred ``LAYOUT_SIDE`` px colour layout, its mean removed, as a unit vector (float32)."""
    from scipy import ndimage  # here: scipy is slow to import, and only the prepare groups

    block = THUMBNAIL_SIDE // LAYOUT_SIDE
    shape = (len(thumbnails), LAYOUT_SIDE, block, LAYOUT_SIDE, block, 3)
    blocks = thumbnails.reshape(shape).sum(axis=(2, 4), dtype=np.float32)  # the scale goes with the normalising
    layout = ndimage.gaussian_filter(blocks, (0, LAYOUT_BLUR, LAYOUT_BLUR, 0))
    layout = (layout - layout.mean(axis=(1, 2), keepdims=True)).reshape(len(layout), -1)
    return layout / np.maximum(np.linalg.norm(layout, axis=1, keepdims=True), 1e-6)


def neighbour_pairs(thumbnails: np.ndarray, component: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Pairs (i, j), i < j, where j is among i's ``neighbours`` nearest by colour layout or i among j's, and
    ``component`` (a group label per thumbnail) differs: a k x 2 array, sorted."""
    import torch  # here: the search is the only user; its top-k is several times numpy's argpartition

    n = len(thumbnails)
    if n < 2:
        return np.empty((0, 2), np.int64)
    layouts = torch.from_numpy(colour_layouts(thumbnails))
    labels = torch.from_numpy(np.asarray(component, dtype=np.int64))
    found = []
    for first in range(0, n, _ROW_BLOCK):
        rows = slice(first, min(n, first + _ROW_BLOCK))
        similarity = layouts[rows] @ layouts.T
        similarity[labels[rows, None] == labels[None, :]] = -torch.inf  # itself, and images already joined to it
        values, partners = similarity.topk(min(neighbours, n - 1), dim=1)
        owners = torch.arange(rows.start, rows.stop)[:, None].expand_as(partners)
        keep = values > -torch.inf
        found.append(torch.stack([owners[keep], partners[keep]], dim=1).numpy())
    pairs = np.sort(np.concatenate(found), axis=1)
    return np.unique(pairs, axis=0)


def _overlap_bounds() -> tuple[np.ndarray, np.ndarray]:
    """For each shift -MAX_SHIFT..MAX_SHIFT, where the first image's overlap starts and ends along one axis."""
    shifts = np.arange(-MAX_SHIFT, MAX_SHIFT + 1)
    return np.maximum(0, shifts), THUMBNAIL_SIDE + np.minimum(0, shifts)


def overlap_sums(images: np.ndarray) -> np.ndarray:
    """n x s x s: the sum of each image (n x side x side) over its overlap as the first image of a pair, for every
    shift (dy, dx); as the second image, its overlap for (dy, dx) is the first's for (-dy, -dx)."""
    start, end = _overlap_bounds()
    pixel = np.arange(THUMBNAIL_SIDE)
    inside = ((pixel >= start[:, None]) & (pixel < end[:, None])).astype(np.float32).T  # side x s
    n, side, shifts = len(images), THUMBNAIL_SIDE, len(start)
    by_column = (images.reshape(n * side, side) @ inside).reshape(n, side, shifts)  # rows x dx
    return (by_column.transpose(0, 2, 1).reshape(n * shifts, side) @ inside).reshape(n, shifts, shifts).swapaxes(1, 2)


def blurred(images: np.ndarray) -> np.ndarray:
    """``images`` (n x side x side x 3 uint8) smoothed by the binomial filter [1, 2, 1] / 4 along each axis (a
    Gaussian of sigma 0.71 px), edges repeated, rounded to uint8: a rescale's resampling and a sub-pixel
    misalignment stop counting as differences."""
    smooth = images.astype(np.uint16)  # 16 x 255 at most: integer sums stay exact
    for axis in (1, 2):
        edge_first, edge_last = smooth.take([0], axis=axis), smooth.take([-1], axis=axis)
        padded = np.concatenate([edge_first, smooth, edge_last], axis=axis)
        side = smooth.shape[axis]
        smooth = padded.take(range(side), axis=axis) + padded.take(range(2, side + 2), axis=axis) + 2 * smooth
    return ((smooth + 8) >> 4).astype(np.uint8)


def best_shifts(lightness: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the highest correlation of the two images' lightness over their overlap among every shift up to
    ``MAX_SHIFT``, and that shift's index into the (2 MAX_SHIFT + 1)^2 shifts, row-major (dy, dx). A flat overlap
    (a standard deviation under ``MIN_DEVIATION``) correlates with nothing."""
    import scipy.fft  # here: scipy is slow to import, and only the prepare groups

    side = scipy.fft.next_fast_len(THUMBNAIL_SIDE + MAX_SHIFT, real=True)  # no wrap-around within MAX_SHIFT
    centred = lightness - lightness.mean(axis=(1, 2), keepdims=True)  # small sums: float32 stays exact enough
    spectra = scipy.fft.rfft2(centred, s=(side, side))
    sums, squares = overlap_sums(centred), overlap_sums(centred**2)
    start, end = _overlap_bounds()
    pixels = np.outer(end - start, end - start).astype(np.float32)
    lags = np.arange(-MAX_SHIFT, MAX_SHIFT + 1) % side
    correlation = np.empty(len(pairs), np.float32)
    shift = np.empty(len(pairs), np.int64)
    for block in range(0, len(pairs), _PAIR_BLOCK):
        a, b = pairs[block : block + _PAIR_BLOCK, 0], pairs[block : block + _PAIR_BLOCK, 1]
        # sum over the overlap of a(y, x) * b(y - dy, x - dx), for every shift at once
        cross = scipy.fft.irfft2(spectra[a] * np.conj(spectra[b]), s=(side, side))[:, lags][:, :, lags]
        sum_b, square_b = sums[b][:, ::-1, ::-1], squares[b][:, ::-1, ::-1]  # b's overlap at (dy, dx)
        variance_a = np.maximum(squares[a] - sums[a] ** 2 / pixels, MIN_DEVIATION**2 * pixels)
        variance_b = np.maximum(square_b - sum_b**2 / pixels, MIN_DEVIATION**2 * pixels)
        r = ((cross - sums[a] * sum_b / pixels) / np.sqrt(variance_a * variance_b)).reshape(len(a), -1)
        shift[block : block + len(a)] = r.argmax(axis=1)
        correlation[block : block + len(a)] = np.take_along_axis(r, shift[block : block + len(a), None], 1)[:, 0]
    return correlation, shift


def shift_groups(
    pairs: np.ndarray, shift: np.ndarray
) -> Iterator[tuple[np.ndarray, tuple[slice, slice], tuple[slice, slice]]]:
    """Shift by shift: the pairs aligned at it (row numbers), and the first and the second image's overlap there."""
    start, end = _overlap_bounds()
    size = 2 * MAX_SHIFT + 1
    for index in np.unique(shift):
        row, col = divmod(int(index), size)
        first = (slice(start[row], end[row]), slice(start[col], end[col]))
        second = (slice(start[size - 1 - row], end[size - 1 - row]), slice(start[size - 1 - col], end[size - 1 - col]))
        yield np.nonzero(shift == index)[0], first, second


def mismatch_shares(colours: np.ndarray, pairs: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Per pair, the share of the overlap at its shift where a channel differs by more than ``MISMATCH_LEVEL``
    (colours: n x side x side x 3 uint8)."""
    shares = np.ones(len(pairs), np.float64)
    for mine, (first_rows, first_cols), (second_rows, second_cols) in shift_groups(pairs, shift):
        first = colours[pairs[mine, 0], first_rows, first_cols]
        second = colours[pairs[mine, 1], second_rows, second_cols]
        difference = np.maximum(first, second)
        difference -= np.minimum(first, second)
        shares[mine] = (difference > MISMATCH_LEVEL).any(axis=3).mean(axis=(1, 2))
    return shares


def stray_shares(colours: np.ndarray, pairs: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Per pair, the larger of the two images' shares of stray pixels over the overlap at its shift: pixels that
    differ by more than ``MISMATCH_LEVEL`` in a channel from all nine pixels around their place in the other image.
    A misaligned edge is no stray; a figure the other image lacks is."""
    from scipy import ndimage  # here: scipy is slow to import, and only the prepare groups

    used, pairs = np.unique(pairs, return_inverse=True)  # the envelopes of these images only
    pairs = pairs.reshape(-1, 2)
    values = colours[used].astype(np.int16)
    highest = ndimage.maximum_filter(values, size=(1, 3, 3, 1), mode="nearest") + MISMATCH_LEVEL
    lowest = ndimage.minimum_filter(values, size=(1, 3, 3, 1), mode="nearest") - MISMATCH_LEVEL
    shares = np.ones(len(pairs), np.float64)
    for mine, first, second in shift_groups(pairs, shift):
        ends = []
        for mine_end, other_end, here, there in ((0, 1, first, second), (1, 0, second, first)):
            mine_images, other_images = pairs[mine, mine_end], pairs[mine, other_end]
            pixel = values[mine_images, here[0], here[1]]
            outside = (pixel > highest[other_images, there[0], there[1]]) | (
                pixel < lowest[other_images, there[0], there[1]]
            )
            ends.append(outside.any(axis=3).mean(axis=(1, 2)))
        shares[mine] = np.maximum(*ends)
    return shares


def aligned_agreement(thumbnails: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Per pair of ``thumbnails`` (n x side x side x 3 uint8): whether the two agree once aligned (see the module)."""
    if not len(pairs):
        return np.zeros(0, bool)
    used, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(pairs.shape)
    colours = blurred(thumbnails[used])
    lightness = (colours.reshape(-1, 3).astype(np.float32) @ _LUMA).reshape(colours.shape[:3])
    correlation, shift = best_shifts(lightness, local)
    agree = correlation >= MIN_CORRELATION
    close = mismatch_shares(colours, local[agree], shift[agree]) <= MAX_MISMATCH_SHARE
    close[close] = stray_shares(colours, local[agree][close], shift[agree][close]) <= MAX_STRAY_SHARE
    agree[agree] = close
    return agree
