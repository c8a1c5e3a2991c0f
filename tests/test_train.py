from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from utils import color, sources, train
from utils.models import GANLoss, PatchDiscriminator, UNetGenerator


def test_a_few_gan_steps_lower_l1_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    frames = np.stack([c.rgb for c in sources.demo_cartoon_frames(4, 32, seed=0)])
    l_norm, ab_norm = color.uint8_to_model_io(torch.from_numpy(frames))
    generator, discriminator, gan_loss = UNetGenerator(), PatchDiscriminator(), GANLoss()
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses = [
        train.gan_step(generator, discriminator, gan_loss, opt_g, opt_d, scaler, l_norm, ab_norm, 100.0, nullcontext())
        for _ in range(25)
    ]
    l1 = [float(x[2]) for x in losses]
    assert all(torch.isfinite(x).all() for x in losses)
    assert np.mean(l1[-3:]) < 0.6 * np.mean(l1[:3]), l1


@pytest.fixture(scope="module")
def trained_twice(tmp_path_factory, prepared_run: Path, tiny_params) -> dict[str, Path]:
    """Two epochs in one go, and one epoch followed by a resumed second epoch."""
    params = dataclasses.replace(tiny_params, epochs=2)
    straight = tmp_path_factory.mktemp("straight")
    resumed = tmp_path_factory.mktemp("resumed")
    for run in (straight, resumed):
        (run / "data").symlink_to(prepared_run / "data")
    train.train(params, straight, "cartoon", show_progress=False)
    train.train(dataclasses.replace(params, epochs=1), resumed, "cartoon", show_progress=False)
    train.train(params, resumed, "cartoon", show_progress=False)
    return {"straight": straight, "resumed": resumed}


def test_train_writes_history_samples_and_checkpoints(trained_twice: dict[str, Path]) -> None:
    out = trained_twice["straight"] / "models" / "cartoon"
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == train.HISTORY_COLUMNS
    assert list(history.epoch) == [1, 2]
    assert np.isfinite(history[["loss_D", "loss_G_GAN", "loss_G_L1", "val_loss_G_L1"]].to_numpy()).all()
    assert (out / "samples" / "epoch_01.png").is_file() and (out / "samples" / "epoch_02.png").is_file()
    best = train.load_checkpoint(out / "best.pt")
    assert best["epoch"] == int(history.loc[history.val_loss_G_L1.idxmin(), "epoch"])
    last = train.load_checkpoint(out / "checkpoint_last.pt")
    assert last["epoch"] == 2 and last["step"] == history.step.iloc[-1]
    assert {"generator", "discriminator", "opt_g", "opt_d", "scaler", "rng", "params"} <= set(last)
    assert not list(out.glob("*.tmp"))


def test_resumed_run_equals_uninterrupted_run(trained_twice: dict[str, Path]) -> None:
    a = train.load_checkpoint(trained_twice["straight"] / "models" / "cartoon" / "checkpoint_last.pt")
    b = train.load_checkpoint(trained_twice["resumed"] / "models" / "cartoon" / "checkpoint_last.pt")
    for name in ("generator", "discriminator"):
        for key, value in a[name].items():
            assert torch.equal(value, b[name][key]), f"{name}.{key} differs after resume"
    history = pd.read_csv(trained_twice["resumed"] / "models" / "cartoon" / "history.csv")
    assert list(history.epoch) == [1, 2]


def test_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="best.pt: not a readable checkpoint"):
        train.load_checkpoint(bad)
    torch.save({"format": "someone-else/9", "generator": {}}, bad)
    with pytest.raises(ValueError, match="checkpoint format 'someone-else/9'"):
        train.load_checkpoint(bad)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, prepared_run: Path, tiny_params, monkeypatch
) -> None:
    (tmp_path / "data").symlink_to(prepared_run / "data")
    train.train(tiny_params, tmp_path, "movie", show_progress=False)
    last = tmp_path / "models" / "movie" / "checkpoint_last.pt"
    before = last.read_bytes()
    monkeypatch.setattr(train, "gan_step", lambda *a, **k: torch.tensor([float("nan"), 0.0, 0.0]))
    with pytest.raises(FloatingPointError, match="epoch 2"):
        train.train(dataclasses.replace(tiny_params, epochs=2), tmp_path, "movie", show_progress=False)
    assert last.read_bytes() == before
