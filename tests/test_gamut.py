"""Gamut mapping: predicted colours outside sRGB keep their L and hue, with the largest chroma sRGB shows.

Lightness is measured as a user would: scikit-image's rgb2lab on the written 8-bit PNG. Hue is measured on
the float output (rgb2lab too): 8-bit rounding alone turns a chroma-5 colour's hue by up to 5 degrees.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import kornia.color
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from skimage.color import rgb2lab

from tests.test_colorize import StrongColour
from utils.colorize import save_image
from utils.core import config, errors
from utils.core.parameters import GAMUTS, RunParams
from utils.eval import evaluate
from utils.imaging import color, scoring
from utils.imaging.images import resize_square


def extreme_lab(lightness: float | None = None, n: int = 4, size: int = 48, seed: int = 0) -> torch.Tensor:
    """N x 3 x H x W Lab: L uniform in [0, 100] (or ``lightness``), ab at any hue with chroma 60 to 160."""
    rng = torch.Generator().manual_seed(seed)
    shape = (n, 1, size, size)
    lab_l = torch.rand(shape, generator=rng) * 100 if lightness is None else torch.full(shape, lightness)
    hue = torch.rand(shape, generator=rng) * 2 * torch.pi
    chroma = 60 + torch.rand(shape, generator=rng) * 100
    return torch.cat([lab_l, chroma * torch.cos(hue), chroma * torch.sin(hue)], dim=1)


def random_generator_lab() -> torch.Tensor:
    """An untrained generator's ab on real photographs' L, stretched to the full ab range (untrained, it
    predicts almost no colour): structured predictions, many of them outside sRGB."""
    from utils.nets.models import UNetGenerator

    photos = [resize_square(skimage.data.astronaut(), 64, "crop"), resize_square(skimage.data.chelsea(), 64, "crop")]
    l_norm, _ = color.uint8_to_model_io(torch.from_numpy(np.stack(photos)))
    torch.manual_seed(0)
    with torch.no_grad():
        ab_norm = UNetGenerator(pretrained=False).eval()(l_norm)
    return color.denormalize_lab(l_norm, ab_norm / ab_norm.abs().amax())


CASES = {
    "random L, extreme ab": extreme_lab,
    "white: L = 100, any ab": lambda: extreme_lab(100.0),
    "black: L = 0, any ab": lambda: extreme_lab(0.0),
    "an untrained generator's predictions": random_generator_lab,
}


def written_png(rgb: torch.Tensor, folder: Path) -> np.ndarray:
    """N x 3 x H x W RGB in [0, 1] -> written as 8-bit PNGs by the kit's writer, read back: N x H x W x 3 uint8."""
    images = []
    for i, image in enumerate(color.rgb_to_uint8(rgb).numpy()):
        save_image(image, folder / f"{i}.png", jpeg=False)
        with Image.open(folder / f"{i}.png") as written:
            images.append(np.asarray(written.convert("RGB")))
    return np.stack(images)


def hue_degrees(lab: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))


@pytest.mark.parametrize("case", CASES)
def test_mapped_colours_keep_their_lightness_and_hue(case: str, tmp_path: Path) -> None:
    lab = CASES[case]()
    assert (color.chroma_scale_in_gamut(lab) < 1).float().mean() > 0.1, "too few colours outside sRGB to test on"
    rgb = color.lab_to_rgb(lab)
    assert rgb.min() >= 0 and rgb.max() <= 1
    given = lab.permute(0, 2, 3, 1).double().numpy()
    written = written_png(rgb, tmp_path)
    delta_l = np.abs(rgb2lab(written)[..., 0] - given[..., 0])
    assert np.percentile(delta_l, 99) < 0.5 and delta_l.max() < 1.5, (np.percentile(delta_l, 99), delta_l.max())
    if case.startswith("white"):
        assert (written == 255).all()
    if case.startswith("black"):
        assert (written == 0).all()
    shown = rgb2lab(rgb.permute(0, 2, 3, 1).double().numpy())
    coloured = np.hypot(shown[..., 1], shown[..., 2]) > 5
    turned = np.abs((hue_degrees(shown) - hue_degrees(given) + 180) % 360 - 180)[coloured]
    assert case.startswith(("white", "black")) or coloured.mean() > 0.3, "too few coloured pixels to test hue on"
    assert turned.size == 0 or turned.max() < 1.0, turned.max()


def test_out_of_gamut_colours_keep_the_largest_chroma_srgb_shows() -> None:
    """2% more chroma than the mapping keeps would leave sRGB (kornia's unclipped RGB): less than sRGB could
    show would wash the colours out."""
    lab = extreme_lab()
    outside = color.chroma_scale_in_gamut(lab) < 1
    away_from_black_and_white = (lab[:, 0] > 2) & (lab[:, 0] < 98)  # where 2% of a tiny chroma is a float error
    assert outside.float().mean() > 0.5
    more_chroma = color.map_into_gamut(lab) * torch.tensor([1.0, 1.02, 1.02])[:, None, None]
    rgb = kornia.color.lab_to_rgb(more_chroma, clip=False)
    beyond_srgb = torch.maximum(-rgb.amin(dim=1), rgb.amax(dim=1) - 1)
    assert beyond_srgb[outside & away_from_black_and_white].min() > 1e-5


def every_uint8_colour_every(step: int) -> torch.Tensor:
    """A 1 x 3 x K x 1 RGB image of the uint8 colours on a grid (0 and 255 included)."""
    levels = torch.tensor(sorted({*range(0, 256, step), 255}), dtype=torch.float32) / 255
    grid = torch.stack(torch.meshgrid(levels, levels, levels, indexing="ij"))
    return grid.reshape(1, 3, -1, 1)


def test_in_gamut_colours_pass_unchanged() -> None:
    rgb = every_uint8_colour_every(5)
    lab = color.rgb_to_lab(rgb)
    assert (color.chroma_scale_in_gamut(lab) == 1).all()
    mapped = color.lab_to_rgb(lab)
    assert (mapped - rgb).abs().max() < 1e-4
    assert torch.equal(mapped, color.lab_to_rgb(lab, "clip"))


def test_clip_is_todays_conversion_exactly() -> None:
    for lab in (extreme_lab(), color.rgb_to_lab(every_uint8_colour_every(15))):
        assert torch.equal(color.lab_to_rgb(lab, "clip"), kornia.color.lab_to_rgb(lab, clip=True))
        l_norm, ab_norm = color.normalize_lab(lab)
        todays = kornia.color.lab_to_rgb(color.denormalize_lab(l_norm, ab_norm), clip=True)
        assert torch.equal(color.colorized_rgb(l_norm, ab_norm, "clip"), todays)
    assert not torch.equal(color.lab_to_rgb(extreme_lab()), color.lab_to_rgb(extreme_lab(), "clip"))


@pytest.mark.slow
def test_the_mapping_compiles_to_one_graph_with_the_same_result() -> None:
    """Evaluation may ``torch.compile`` its scoring: the mapping must trace without a graph break (fixed
    shapes: no pixel selection, no data-dependent control flow) and give what the eager path gives. The
    eager backend traces as inductor does, in seconds (tests/test_evaluate.py compiles the scoring with inductor)."""
    lab = extreme_lab(n=2, size=24)
    traced = torch._dynamo.explain(color.lab_to_rgb)(lab)
    assert traced.graph_break_count == 0, traced.break_reasons
    compiled = torch.compile(color.lab_to_rgb, backend="eager", dynamic=False)
    assert torch.equal(compiled(lab), color.lab_to_rgb(lab))


def test_the_gamut_parameter_is_checked_recorded_and_reaches_the_scorer() -> None:
    params = config.resolve_params("demo", {"gamut": "clip"})
    assert params.gamut == "clip" and params.to_dict()["gamut"] == "clip"
    assert config.resolve_params("demo").gamut == "chroma"
    with pytest.raises(errors.ParameterError, match=r"parameter 'gamut' = 'hue': must be one of chroma, clip"):
        config.resolve_params("demo", {"gamut": "hue"})
    with pytest.raises(ValueError, match=r"parameter 'gamut' = 'hue'"):
        color.lab_to_rgb(extreme_lab(n=1, size=4), "hue")
    lab = extreme_lab(n=2, size=16)
    l_norm, ab_norm = color.normalize_lab(lab)
    rgb_true = color.lab_to_rgb(color.denormalize_lab(l_norm, 0.2 * ab_norm))
    for gamut in GAMUTS:
        scores = scoring.BatchScorer(compiled=False, batch_size=2, gamut=gamut)(rgb_true, l_norm, ab_norm)
        expected = scoring.score_batch(rgb_true, l_norm, ab_norm, gamut)
        assert torch.equal(scores["ciede2000"], expected["ciede2000"])
    chroma, clip = (scoring.score_batch(rgb_true, l_norm, ab_norm, g)["ciede2000"] for g in GAMUTS)
    assert not torch.equal(chroma, clip)


def test_evaluation_and_validation_show_and_score_with_the_runs_gamut(
    tmp_path: Path, prepared_run: Path, tiny_params: RunParams, monkeypatch
) -> None:
    """A model that predicts strong colour everywhere: evaluation's scores and example images, and
    validation's sample grid, are the one conversion's with the run's ``gamut``."""
    from utils.data.datasets import ShardDataset
    from utils.data.shards import load_shard
    from utils.train import training

    strong = StrongColour((0.9, -0.7))
    monkeypatch.setattr(evaluate, "load_generator", lambda path, device: (strong, {}))
    (tmp_path / "data").symlink_to(prepared_run / "data")
    shard = load_shard(tmp_path, "cartoon", "test")
    l_norm = scoring.truth_and_inputs(torch.from_numpy(np.array(shard)))[1]
    loader = torch.utils.data.DataLoader(ShardDataset(shard, np.arange(len(shard))), batch_size=4)
    gan = SimpleNamespace(generator_module=strong, device=torch.device("cpu"), amp_dtype=None,
                          memory_format=torch.contiguous_format, lambda_l1=1.0)  # fmt: skip
    scores = {}
    for gamut in GAMUTS:
        expected = color.rgb_to_uint8(color.colorized_rgb(l_norm, strong(l_norm), gamut)).numpy()
        params = dataclasses.replace(tiny_params, models=("movie",), gamut=gamut, n_bootstrap=100)
        per_image = evaluate.evaluate_models(params, tmp_path, show_progress=False)
        shown = np.load(tmp_path / "eval" / "examples" / "movie_cartoon.npy")
        np.testing.assert_array_equal(shown, expected[: params.n_examples], err_msg=gamut)
        scores[gamut] = per_image.query("model == 'movie' and test_domain == 'cartoon'").ciede2000.to_numpy()
        grid = training.validate(gan, loader, scoring.BatchScorer(False, 4, gamut), n_samples=2)[2]
        outputs_row = grid[len(grid) // 3 : 2 * len(grid) // 3]  # rows: gray input, output, truth
        np.testing.assert_array_equal(outputs_row, np.concatenate(list(expected[:2]), axis=1), err_msg=gamut)
    assert not np.array_equal(scores["chroma"], scores["clip"])
