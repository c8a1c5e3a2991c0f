from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import KIT_ROOT, SAME_THREADS, on_accelerator, resumable_copy, run_python, run_with_data
from utils.core import config
from utils.core.config import model_dir
from utils.core.parameters import resumable_parameters
from utils.data import demo
from utils.data.datasets import ShardDataset
from utils.imaging import color, scoring
from utils.nets import distributed, environment
from utils.nets.checkpoints import load_checkpoint
from utils.train import batches, launch, training
from utils.train.gan import batch_to_model_io, build_gan, gan_step, should_compile, train_on_batch


def weights(ckpt: dict) -> dict[str, torch.Tensor]:
    return {f"{net}.{k}": v for net in ("generator", "discriminator") for k, v in ckpt[net].items()}


def assert_same_weights(a: dict, b: dict, what: str) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key, value in wa.items():
        assert torch.equal(value, wb[key]), f"{key} differs: {what}"


def test_a_few_gan_steps_lower_l1_on_a_fixed_batch(tiny_params) -> None:
    frames = np.stack([c.rgb for c in demo.demo_cartoon_frames(2, 32, seed=0)])  # BatchNorm's smallest batch
    l_norm, ab_norm = color.uint8_to_model_io(torch.from_numpy(frames))
    gan = build_gan(tiny_params, torch.device("cpu"))
    losses = [gan_step(gan, l_norm, ab_norm) for _ in range(12)]
    l1 = [float(x[2]) for x in losses]
    assert all(torch.isfinite(x).all() for x in losses)
    assert np.mean(l1[-3:]) < 0.6 * np.mean(l1[:3]), l1


def test_amp_picks_fp16_with_a_scaler_on_a_t4_and_bf16_on_newer_gpus(monkeypatch) -> None:
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # T4
    assert environment.amp_settings(cuda) == (torch.float16, True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # A100
    assert environment.amp_settings(cuda) == (torch.bfloat16, False)
    assert environment.amp_settings(cuda, "fp16") == (torch.float16, True)
    assert environment.amp_settings(cuda, "fp32") == (None, False)
    assert environment.amp_settings(torch.device("cpu"), "bf16") == (None, False)


def test_flips_happen_on_the_batch_where_asked() -> None:
    batch = torch.arange(2 * 4 * 4 * 3, dtype=torch.uint8).view(2, 4, 4, 3)
    l_norm, _ = batch_to_model_io(batch, torch.tensor([True, False]), torch.device("cpu"), torch.channels_last)
    plain, _ = color.uint8_to_model_io(batch)
    assert torch.equal(l_norm[0], plain[0].flip(-1)) and torch.equal(l_norm[1], plain[1])
    assert l_norm.is_contiguous(memory_format=torch.channels_last)


def test_every_process_count_sees_the_same_global_batches_and_flips() -> None:
    images = ShardDataset(np.zeros((22, 1, 1, 3), np.uint8), np.arange(22))
    global_batch = 4
    for epoch in (1, 2):
        single = batches.EpochSampler(images, distributed.Processes(), seed=3, batch_size=global_batch, flip=True)
        single.set_position(epoch, 0)
        one = list(single)
        assert single.batches_per_epoch == 5 and len(one) == 20
        shares = []
        for rank in (0, 1):
            sampler = batches.EpochSampler(images, distributed.Processes(rank, 2, rank), 3, global_batch // 2, True)
            sampler.set_position(epoch, 0)
            shares.append(list(sampler))
            assert sampler.batches_per_epoch == 5
        for s in range(5):
            both = shares[0][2 * s : 2 * s + 2] + shares[1][2 * s : 2 * s + 2]
            assert sorted(both) == sorted(one[4 * s : 4 * s + 4]), f"global batch {s} of epoch {epoch}"
        single.set_position(epoch, 3)  # a resume after 3 batches skips exactly those
        assert list(single) == one[12:]
        assert len(single) == 8
    flips = [f for _, f in one]
    assert 0 < sum(flips) < len(flips)


@pytest.fixture(scope="module")
def trained_twice(tmp_path_factory, prepared_run: Path, tiny_params, two_epochs_straight: Path) -> dict[str, Path]:
    """Two epochs in one go (conftest's); one epoch followed by a resumed second epoch; and the same resume as on
    a GPU, where every tensor the checkpoint load returns sits on the device (tests/helpers.py's stand-in)."""
    params = dataclasses.replace(tiny_params, epochs=2)
    resumed = run_with_data(tmp_path_factory.mktemp("resumed") / "run", prepared_run)
    training.train(dataclasses.replace(params, epochs=1), resumed, "cartoon", show_progress=False)
    on_gpu = tmp_path_factory.mktemp("on_accelerator") / "run"
    shutil.copytree(resumed, on_gpu, symlinks=True)
    training.train(params, resumed, "cartoon", show_progress=False)
    real_load = torch.load
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "load", lambda *a, **k: on_accelerator(real_load(*a, **k)))
        training.train(params, on_gpu, "cartoon", show_progress=False)
    return {"straight": two_epochs_straight, "resumed": resumed, "on_accelerator": on_gpu}


@pytest.mark.slow  # trains two epochs (tests/conftest.py: two_epochs_straight)
def test_train_writes_history_samples_and_checkpoints(two_epochs_straight: Path) -> None:
    out = model_dir(two_epochs_straight, "cartoon", 0)
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == training.HISTORY_COLUMNS
    assert list(history.epoch) == [1, 2] and list(history.phase) == ["gan", "gan"]
    numbers = ["loss_D", "loss_G_GAN", "loss_G_L1", "val_loss_G_L1", "val_ciede2000", "images_per_s"]
    assert np.isfinite(history[numbers].to_numpy()).all()
    assert (history.val_ciede2000 > 0).all()
    assert (out / "samples" / "epoch_01.png").is_file() and (out / "samples" / "epoch_02.png").is_file()
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == int(history.loc[history.val_ciede2000.idxmin(), "epoch"])
    assert best["val_ciede2000"] == pytest.approx(history.val_ciede2000.min())
    last = load_checkpoint(out / "checkpoint_last.pt")
    assert last["epoch"] == 2 and last["step"] == history.step.iloc[-1]
    assert last["position"] == {"epoch": 3, "batch": 0, "world_size": 1, "train_images": 22, "seed": 0}
    assert {"generator", "discriminator", "opt_g", "opt_d", "scaler", "rng", "params"} <= set(last)
    assert not list(out.glob("*.tmp")) and not list(out.glob("checkpoint_epoch_*"))


@pytest.mark.slow  # trains two epochs (tests/conftest.py: two_epochs_straight)
def test_resumed_run_equals_uninterrupted_run(trained_twice: dict[str, Path]) -> None:
    a = load_checkpoint(model_dir(trained_twice["straight"], "cartoon", 0) / "checkpoint_last.pt")
    b = load_checkpoint(model_dir(trained_twice["resumed"], "cartoon", 0) / "checkpoint_last.pt")
    assert_same_weights(a, b, "after an epoch-end resume")
    history = pd.read_csv(model_dir(trained_twice["resumed"], "cartoon", 0) / "history.csv")
    assert list(history.epoch) == [1, 2]


@pytest.mark.slow  # trains two epochs (tests/conftest.py: two_epochs_straight)
def test_a_resume_whose_checkpoint_tensors_sit_on_an_accelerator_equals_the_uninterrupted_run(
    trained_twice: dict[str, Path],
) -> None:
    a = load_checkpoint(model_dir(trained_twice["straight"], "cartoon", 0) / "checkpoint_last.pt")
    b = load_checkpoint(model_dir(trained_twice["on_accelerator"], "cartoon", 0) / "checkpoint_last.pt")
    assert_same_weights(a, b, "after a resume from tensors on the accelerator")


@pytest.mark.slow  # trains three times on the GPU
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CPU stand-in is the test above)")
def test_a_resume_on_a_gpu_continues_the_run_it_stopped(prepared_run: Path, tiny_params, tmp_path: Path) -> None:
    params = dataclasses.replace(tiny_params, epochs=2, device="cuda")
    straight = run_with_data(tmp_path / "straight", prepared_run)
    training.train(params, straight, "cartoon", show_progress=False)
    resumed = run_with_data(tmp_path / "resumed", prepared_run)
    training.train(dataclasses.replace(params, epochs=1), resumed, "cartoon", show_progress=False)
    history = training.train(params, resumed, "cartoon", show_progress=False)
    assert list(history.epoch) == [1, 2]
    a = load_checkpoint(model_dir(straight, "cartoon", 0) / "checkpoint_last.pt")
    b = load_checkpoint(model_dir(resumed, "cartoon", 0) / "checkpoint_last.pt")
    assert b["position"] == a["position"] and b["step"] == a["step"]
    wa, wb = weights(a), weights(b)
    for key, value in wa.items():  # cuDNN's kernels need not repeat bit for bit; the same data and order do
        if value.is_floating_point():
            torch.testing.assert_close(wb[key], value, rtol=0, atol=1e-3, msg=f"{key}: resumed vs straight")
        else:
            assert torch.equal(wb[key], value), key


@pytest.mark.slow  # trains two epochs (tests/conftest.py: two_epochs_straight)
def test_a_resume_with_other_training_parameters_is_refused_naming_each(
    two_epochs_straight: Path, prepared_run: Path, tiny_params, tmp_path: Path
) -> None:
    run_dir = resumable_copy(two_epochs_straight, prepared_run, tmp_path / "run")
    last = model_dir(run_dir, "cartoon", 0) / "checkpoint_last.pt"
    before = last.read_bytes()
    params = dataclasses.replace(tiny_params, epochs=3, lr=1e-4, beta1=0.4)
    with pytest.raises(ValueError) as err:
        training.train(params, run_dir, "cartoon", show_progress=False)
    message = str(err.value)
    assert (
        str(last) in message and "lr = 0.0002 there, 0.0001 now" in message and "beta1 = 0.5 there, 0.4 now" in message
    )
    assert "epochs" not in message and "resume=False" in message and "new run directory" in message
    assert last.read_bytes() == before and list(pd.read_csv(last.parent / "history.csv").epoch) == [1, 2]


@pytest.mark.slow  # num_workers=1: DataLoader worker processes
def test_a_resume_may_change_what_does_not_shape_training(
    two_epochs_straight: Path, prepared_run: Path, tiny_params, tmp_path: Path
) -> None:
    run_dir = resumable_copy(two_epochs_straight, prepared_run, tmp_path / "run")
    changed = {"epochs": 3, "num_workers": 1, "checkpoint_minutes": 30.0, "keep_every": 3, "time_limit_hours": 2.0,
               "eval_batch_size": 4, "n_examples": 1, "n_bootstrap": 500, "models": ("cartoon",), "seeds": 2,
               "train_concurrency": 1, "channels_last": False, "device": "cpu", "test_per_domain": 4,
               "prepare_workers": 1, "decode_timeout_s": 5.0, "kaggle_cache": str(tmp_path), "mix_fractions": (0.25,)}  # fmt: skip
    assert set(changed) <= resumable_parameters()
    history = training.train(dataclasses.replace(tiny_params, **changed), run_dir, "cartoon", show_progress=False)
    assert list(history.epoch) == [1, 2, 3]
    assert (
        load_checkpoint(model_dir(run_dir, "cartoon", 0) / "checkpoint_epoch_003.pt")["params"]["lr"] == tiny_params.lr
    )


KILL_DRIVER = """
import json, os, signal, sys
from utils.core import config
from utils.train import training
training.LOG_EVERY = 2  # sync points (where a due checkpoint is written) at batches 2 and 4 of each 5
real_step, calls = training.gan_step, 0
def dying_step(*args, **kwargs):
    global calls
    calls += 1
    if calls == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_step(*args, **kwargs)
training.gan_step = dying_step
training.train(config.resolve_params("demo", json.loads(sys.argv[1])), sys.argv[2], "cartoon", show_progress=False)
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(
    tmp_path: Path, prepared_run: Path, tiny_params, two_epochs_straight: Path
) -> None:
    overrides = {**dataclasses.asdict(tiny_params), "models": ",".join(tiny_params.models)}
    overrides |= {"epochs": 2, "checkpoint_minutes": 1e-9, "keep_every": 1}  # due at every sync point
    (tmp_path / "data").symlink_to(prepared_run / "data")
    # 5 batches per epoch: killed inside step 8 (epoch 2, batch 3); the last checkpoint is after step 7
    # at the test process's thread count: the weights are compared, bit for bit, with a run of this process
    killed = run_python(
        "-c", KILL_DRIVER, json.dumps(overrides), str(tmp_path), "8", env={**os.environ, **SAME_THREADS}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    out = model_dir(tmp_path, "cartoon", 0)
    position = load_checkpoint(out / "checkpoint_last.pt")["position"]
    assert (position["epoch"], position["batch"]) == (2, 2), "expected a mid-epoch checkpoint"
    assert list(pd.read_csv(out / "history.csv").epoch) == [1]

    params = config.resolve_params("demo", overrides)
    training.train(params, tmp_path, "cartoon", show_progress=False)
    uninterrupted = model_dir(two_epochs_straight, "cartoon", 0)
    assert_same_weights(
        load_checkpoint(out / "checkpoint_last.pt"),
        load_checkpoint(uninterrupted / "checkpoint_last.pt"),
        "a run killed mid-epoch and resumed differs from an uninterrupted one",
    )
    resumed_history, straight_history = pd.read_csv(out / "history.csv"), pd.read_csv(uninterrupted / "history.csv")
    assert list(resumed_history.epoch) == [1, 2]
    losses = ["loss_D", "loss_G_GAN", "loss_G_L1", "val_loss_G_L1", "val_ciede2000"]
    np.testing.assert_allclose(resumed_history[losses], straight_history[losses], rtol=1e-6)
    # retention: every epoch kept (keep_every=1), each a complete checkpoint of its epoch
    for epoch in (1, 2):
        assert load_checkpoint(out / f"checkpoint_epoch_{epoch:03d}.pt")["epoch"] == epoch
    assert not list(out.glob("*.tmp"))


@pytest.mark.slow  # two epochs: one of pretraining, one GAN
def test_pretraining_trains_the_generator_alone(tmp_path: Path, prepared_run: Path, tiny_params) -> None:
    (tmp_path / "data").symlink_to(prepared_run / "data")
    params = dataclasses.replace(tiny_params, pretrain_epochs=1, epochs=1, keep_every=1)
    history = training.train(params, tmp_path, "movie", show_progress=False)
    assert list(history.phase) == ["pretrain", "gan"]
    assert history.loss_D.isna().tolist() == [True, False]
    assert np.isfinite(history.loss_G_L1).all()
    after_pretraining = load_checkpoint(model_dir(tmp_path, "movie", 0) / "checkpoint_epoch_001.pt")
    fresh = build_gan(params, torch.device("cpu"))
    for key, value in fresh.discriminator_module.state_dict().items():
        assert torch.equal(value, after_pretraining["discriminator"][key]), f"pretraining changed D: {key}"
    changed = [
        k
        for k, v in fresh.generator_module.state_dict().items()
        if not torch.equal(v, after_pretraining["generator"][k])
    ]
    assert changed, "pretraining left the generator unchanged"


def test_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="best.pt: damaged, or not a checkpoint of this kit"):
        load_checkpoint(bad)
    torch.save({"format": "someone-else/9", "generator": {}}, bad)
    with pytest.raises(ValueError, match="checkpoint format 'someone-else/9'"):
        load_checkpoint(bad)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, prepared_run: Path, tiny_params, one_epoch_run, monkeypatch
) -> None:
    run_dir = resumable_copy(one_epoch_run("movie"), prepared_run, tmp_path / "run")  # one epoch done
    last = model_dir(run_dir, "movie", 0) / "checkpoint_last.pt"
    before = last.read_bytes()
    calls = iter(range(100))

    def nan_on_third_step(*args, **kwargs) -> torch.Tensor:
        return torch.tensor([float("nan") if next(calls) == 2 else 0.5, 0.0, 0.0])

    monkeypatch.setattr(training, "gan_step", nan_on_third_step)
    monkeypatch.setattr(training, "LOG_EVERY", 3)
    params = dataclasses.replace(tiny_params, epochs=2, checkpoint_minutes=1e-9)  # a checkpoint at every sync point
    # 5 steps per epoch: epoch 2 runs steps 6-10; the NaN is step 8, found at the sync point of step 8,
    # whose checkpoint is then never written
    with pytest.raises(FloatingPointError, match="epoch 2, step 8"):
        training.train(params, run_dir, "movie", show_progress=False)
    assert last.read_bytes() == before


def test_the_cli_rebuilds_the_same_parameters(tiny_params) -> None:
    args = launch.param_arguments(tiny_params)
    assert config.resolve_params("paper", config.parse_overrides(args[1::2])) == tiny_params
    command = launch.torchrun_command(tiny_params, "runs/x", "mixed", 1, 2)
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert command[command.index("--seed-index") + 1] == "1"
    assert distributed.gpu_processes(tiny_params) == 1  # the CPU trains in-process


def ddp_ranks_agree(out_dir: Path, *mode: str) -> dict[str, torch.Tensor]:
    """tests/scripts/ddp_gan_steps.py under torchrun with 2 CPU processes; both ranks must end identical.
    Returns rank 0's saved tensors."""
    env = {**os.environ, "PYTHONPATH": str(KIT_ROOT), "OMP_NUM_THREADS": "1"}
    run = run_python("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                     str(KIT_ROOT / "tests" / "scripts" / "ddp_gan_steps.py"), str(out_dir), *mode, env=env,
                     timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    rank0, rank1 = torch.load(out_dir / "rank0.pt"), torch.load(out_dir / "rank1.pt")
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), f"ranks disagree on {key}"
    return rank0


@pytest.mark.slow
def test_two_cpu_processes_equal_one_process_averaging_two_half_batches(tmp_path: Path, request) -> None:
    from tests.scripts import ddp_gan_steps as script

    rank0 = ddp_ranks_agree(tmp_path)

    # the reference: one process, plain modules, each half-batch's gradients averaged by hand. One
    # thread, as in each rank: Adam's first steps move every weight by +-lr whatever its gradient's
    # size, so summation-order noise in near-zero gradients would otherwise show as lr-sized differences.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    params = config.resolve_params(
        "demo", {"image_size": script.SIZE, "batch_size": script.GLOBAL_BATCH, "channels_last": False}
    )
    gan = build_gan(params, torch.device("cpu"))
    g, d = gan.generator_module, gan.discriminator_module
    bce = F.binary_cross_entropy_with_logits
    for batch in script.global_batches():
        halves = [color.uint8_to_model_io(half) for half in batch.chunk(2)]
        fakes = [g(l_norm) for l_norm, _ in halves]
        d.requires_grad_(True)
        gan.opt_d.zero_grad()
        for (l_norm, ab_norm), fake in zip(halves, fakes):
            fake_logits, real_logits = d(l_norm, fake.detach()), d(l_norm, ab_norm)
            loss = 0.5 * (
                bce(fake_logits, torch.zeros_like(fake_logits)) + bce(real_logits, torch.ones_like(real_logits))
            )
            (loss / 2).backward()
        gan.opt_d.step()
        d.requires_grad_(False)
        gan.opt_g.zero_grad()
        for (l_norm, ab_norm), fake in zip(halves, fakes):
            logits = d(l_norm, fake)
            loss = bce(logits, torch.ones_like(logits)) + F.l1_loss(fake, ab_norm) * params.lambda_l1
            (loss / 2).backward()
        gan.opt_g.step()
    reference = {f"generator.{k}": v for k, v in g.named_parameters()}
    reference |= {f"discriminator.{k}": v for k, v in d.named_parameters()}
    assert reference.keys() == rank0.keys()
    worst = max(float((reference[k].detach() - rank0[k]).abs().max()) for k in reference)
    assert worst < 2e-5, f"DDP weights differ from the averaged half-batches by {worst}"

    # and the full batch through one process is a different computation (BatchNorm sees 8, not 4)
    full = build_gan(params, torch.device("cpu"))
    for batch in script.global_batches():
        gan_step(full, *color.uint8_to_model_io(batch))
    full_worst = max(
        float((p.detach() - rank0[f"generator.{k}"]).abs().max()) for k, p in full.generator_module.named_parameters()
    )
    assert full_worst > 10 * worst


@pytest.mark.slow
def test_with_several_processes_training_runs_under_torchrun_and_rank_zero_writes(
    tmp_path: Path, prepared_run: Path, tiny_params, monkeypatch, capfd
) -> None:
    """The notebook's launcher, made to start two CPU processes (gloo) in place of two GPUs."""
    (tmp_path / "data").symlink_to(prepared_run / "data")
    monkeypatch.setattr(training, "gpu_processes", lambda params: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    history = training.run_training(dataclasses.replace(tiny_params, device="cpu"), tmp_path, "mixed")
    streamed = capfd.readouterr().out
    assert "torchrun --nproc_per_node=2" in streamed and "mixed epoch 1/1 (gan)" in streamed
    assert list(history.epoch) == [1] and np.isfinite(history.val_ciede2000).all()
    out = model_dir(tmp_path, "mixed", 0)
    last = load_checkpoint(out / "checkpoint_last.pt")
    assert last["position"]["world_size"] == 2 and last["step"] == 5  # 22 images, global batch 4
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "checkpoint_last.pt", "history.csv", "samples"]


@pytest.mark.slow
def test_a_failing_launch_is_an_error_naming_the_model(tmp_path: Path, tiny_params, monkeypatch) -> None:
    monkeypatch.setattr(training, "gpu_processes", lambda params: 2)
    with pytest.raises(RuntimeError, match="torchrun training of model movie failed"):
        training.run_training(dataclasses.replace(tiny_params, device="cpu"), tmp_path / "no-data", "movie")


def test_the_mixed_precision_step_runs_with_a_grad_scaler(tiny_params) -> None:
    """The GPU recipe's mechanics on the CPU: autocast (bf16 here, fp16 on a T4) and a live
    GradScaler, whose state a checkpoint carries."""
    frames = np.stack([c.rgb for c in demo.demo_cartoon_frames(2, 32, seed=0)])  # BatchNorm's smallest batch
    l_norm, ab_norm = color.uint8_to_model_io(torch.from_numpy(frames))
    gan = build_gan(tiny_params, torch.device("cpu"))
    gan.amp_dtype, gan.scaler = torch.bfloat16, torch.amp.GradScaler("cpu", init_scale=2.0**10)
    before = [p.detach().clone() for p in gan.generator_module.parameters()]
    losses = torch.stack([gan_step(gan, l_norm, ab_norm) for _ in range(6)])
    assert torch.isfinite(losses).all() and losses.dtype == torch.float32
    assert losses[-3:, 2].mean() < losses[:3, 2].mean()
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.generator_module.parameters()))
    state = gan.state()["scaler"]
    assert state["scale"] > 0
    fresh = build_gan(tiny_params, torch.device("cpu"))
    fresh.scaler = torch.amp.GradScaler("cpu")
    fresh.load_state({**gan.state()})
    assert fresh.scaler.get_scale() == gan.scaler.get_scale()


def demo_batch(n: int = 4, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    frames = np.stack([c.rgb for c in demo.demo_cartoon_frames(n, size, seed=0)])
    return torch.from_numpy(frames), torch.zeros(n, dtype=torch.bool)


def test_an_inf_gradient_makes_both_optimizers_skip_and_halves_the_scale(tiny_params) -> None:
    batch, flips = demo_batch()
    gan = build_gan(tiny_params, torch.device("cpu"))
    gan.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)  # on fp32 losses: the same skip and backoff
    train_on_batch(gan, batch, flips)  # a clean step first: Adam's state exists, the scale is settled
    scale = gan.scaler.get_scale()
    networks = {"G": gan.generator_module, "D": gan.discriminator_module}
    before = {f"{n}.{k}": p.detach().clone() for n, net in networks.items() for k, p in net.named_parameters()}
    gan.discriminator_module.requires_grad_(True)  # a step leaves D frozen; a hook needs a tensor with grad
    poisoned = [next(net.parameters()).register_hook(lambda grad: torch.full_like(grad, float("inf"))) for net in
                networks.values()]  # fmt: skip
    train_on_batch(gan, batch, flips)
    for hook in poisoned:
        hook.remove()
    after = {f"{n}.{k}": p.detach() for n, net in networks.items() for k, p in net.named_parameters()}
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert not moved, f"a step with an inf gradient changed {moved[:3]}"
    assert gan.scaler.get_scale() == scale / 2
    train_on_batch(gan, batch, flips)  # and the next clean step trains both networks again
    for name, net in networks.items():
        changed = [k for k, p in net.named_parameters() if not torch.equal(before[f"{name}.{k}"], p.detach())]
        assert changed, f"{name} did not train after the skipped step"
    assert gan.scaler.get_scale() == scale / 2


@pytest.mark.parametrize("amp_dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_multichannel_layers_get_channels_last_inputs_in_the_autocast_dtype(tiny_params, amp_dtype) -> None:
    """L (one channel) is converted once; what matters is where it is concatenated with many channels:
    the discriminator's input and the generator's last, full-resolution decoder block."""
    gan = build_gan(tiny_params, torch.device("cpu"))
    gan.amp_dtype = amp_dtype
    seen: dict[str, list[torch.Tensor]] = {"D input": [], "G last block": []}
    layers = {
        "D input": gan.discriminator_module.model[0],
        "G last block": gan.generator_module.decoder[-1].convs[0][0],
    }
    for name, layer in layers.items():
        layer.register_forward_pre_hook(lambda module, args, name=name: seen[name].append(args[0]))
    train_on_batch(gan, *demo_batch())
    assert len(seen["D input"]) == 3 and len(seen["G last block"]) == 1
    for name, inputs in seen.items():
        for x in inputs:
            assert x.shape[1] > 1
            assert x.is_contiguous(memory_format=torch.channels_last), f"{name}: NCHW strides {x.stride()}"
            assert x.dtype == (amp_dtype or torch.float32), f"{name}: {x.dtype}"


@pytest.mark.slow  # trains two epochs (tests/conftest.py: two_epochs_straight)
def test_validation_scores_exactly_as_evaluation_does(
    tmp_path: Path, prepared_run: Path, tiny_params, two_epochs_straight: Path
) -> None:
    from utils.data.shards import load_shard
    from utils.eval import evaluate

    (tmp_path / "data").symlink_to(prepared_run / "data")
    (tmp_path / "models").symlink_to(two_epochs_straight / "models")
    params = dataclasses.replace(tiny_params, models=("cartoon",))
    per_image = evaluate.evaluate_models(params, tmp_path, show_progress=False)
    scored = per_image[(per_image.model == "cartoon") & (per_image.test_domain == "movie")]

    gan = build_gan(params, torch.device("cpu"))
    gan.generator_module.load_state_dict(load_checkpoint(model_dir(tmp_path, "cartoon", 0) / "best.pt")["generator"])
    shard = load_shard(tmp_path, "movie", "test")
    loader = torch.utils.data.DataLoader(ShardDataset(shard, np.arange(len(shard))), batch_size=3)  # other batches
    _, val_ciede2000, _ = training.validate(gan, loader, scoring.BatchScorer(False, 3), n_samples=2)
    assert val_ciede2000 == pytest.approx(scored.ciede2000.mean(), rel=1e-6)
    assert scored.ciede2000.mean() > 1.0


@pytest.mark.slow
def test_compiled_ddp_training_with_autocast_and_a_grad_scaler(tmp_path: Path) -> None:
    """compile + bf16 autocast + a live GradScaler + DDP (2 CPU processes): the ranks stay identical,
    the graphs are captured once (no recompilation per step), the scaler lives."""
    rank0 = ddp_ranks_agree(tmp_path, "compiled")
    assert 0 < int(rank0["graphs"]) <= 8, f"{int(rank0['graphs'])} graphs for 3 steps: recompiling"
    assert float(rank0["scale"]) == 2.0**10
    fresh = build_gan(config.resolve_params("demo", {"image_size": 32}), torch.device("cpu"))
    changed = [k for k, p in fresh.generator_module.named_parameters() if not torch.equal(p, rank0[f"generator.{k}"])]
    assert changed, "the compiled steps left the generator unchanged"


def test_compile_is_skipped_with_a_warning_under_sync_batchnorm(tiny_params) -> None:
    asked = dataclasses.replace(tiny_params, compile=True)
    cuda = torch.device("cuda", 0)
    with pytest.warns(UserWarning, match="SyncBatchNorm"):
        assert not should_compile(asked, distributed.Processes(0, 2, 0), cuda)
    assert should_compile(asked, distributed.Processes(), cuda)  # one GPU: plain BatchNorm compiles
    assert should_compile(asked, distributed.Processes(0, 2, 0), torch.device("cpu"))  # no SyncBatchNorm on the CPU
    assert not should_compile(tiny_params, distributed.Processes(), cuda)
