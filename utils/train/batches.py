"""The order a model sees its training images in: a seeded per-epoch order with a flip per image, shared across
processes and resumable mid-epoch, and the loader that batches it (uint8, pinned for the GPU)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from utils.core.parameters import RunParams
from utils.nets.distributed import Processes

FLIP_SEED_OFFSET = 7_919  # the flips' generator is seeded apart from the order's


class FlippableImages(torch.utils.data.Dataset):
    """``dataset[(index, flip)]`` -> (H x W x 3 uint8, flip): the flip itself happens on the batch."""

    def __init__(self, images: torch.utils.data.Dataset) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, bool]:
        index, flip = key
        return self.images[index], flip


class EpochSampler(torch.utils.data.DistributedSampler):
    """This process's share of a seeded per-epoch order, from ``start_batch`` on, with a flip per image.

    The order and the flips are functions of (seed, epoch): the global batch ``s`` of an epoch is
    the same images for any process count (process ``r`` of ``W`` holds its ``r``-th interleaved
    share), and a resumed run skips exactly the batches its checkpoint had trained on.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, procs: Processes, seed: int, batch_size: int, flip: bool):
        super().__init__(
            dataset, num_replicas=procs.world_size, rank=procs.rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = batch_size
        self.flip = flip
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // self.batch_size

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.set_epoch(epoch)
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        share = list(super().__iter__())[self.start_batch * self.batch_size : self.batches_per_epoch * self.batch_size]
        flips = torch.zeros(len(self.dataset), dtype=torch.bool)
        if self.flip:
            generator = torch.Generator().manual_seed(self.seed + self.epoch + FLIP_SEED_OFFSET)
            flips = torch.rand(len(self.dataset), generator=generator) < 0.5
        return iter([(index, bool(flips[index])) for index in share])

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


def training_loader(
    train_set: torch.utils.data.Dataset, params: RunParams, procs: Processes, device: torch.device
) -> tuple[torch.utils.data.DataLoader, EpochSampler]:
    """uint8 batches in the seeded per-epoch order, pinned for the GPU; flips and Lab happen on the device."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels once
    sampler = EpochSampler(train_set, procs, params.seed, params.batch_size // procs.world_size, params.flip)
    loader = torch.utils.data.DataLoader(
        FlippableImages(train_set),
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=params.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=params.num_workers > 0,
        generator=torch.Generator().manual_seed(params.seed),  # worker seeds never draw on the global RNG
    )
    return loader, sampler
