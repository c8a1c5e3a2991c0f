"""The torch side of the shards: a shard's selected rows as a Dataset, and each model's training and
validation sets (the rows :func:`~utils.data.shards.model_rows` picks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from utils.core.parameters import RunParams
from utils.data.shards import load_shard, model_rows


class ShardDataset(torch.utils.data.Dataset):
    """Selected rows of a shard, as H x W x 3 uint8 tensors; Lab conversion happens per batch."""

    def __init__(self, images: np.ndarray, indices: np.ndarray) -> None:
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.images[self.indices[i]]))


def training_sets(
    run_dir: str | Path,
    model: str,
    params: RunParams,
) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """(train, validation) datasets for one model: the rows :func:`~utils.data.shards.model_rows` picks."""
    shards = {domain: load_shard(run_dir, domain, "train") for domain in params.domain_names}
    rows = model_rows({domain: len(shard) for domain, shard in shards.items()}, model, params)
    if model in shards:
        return ShardDataset(shards[model], rows.train[model]), ShardDataset(shards[model], rows.val[model])
    train = [ShardDataset(shards[domain], indices) for domain, indices in rows.train.items()]
    val = [ShardDataset(shards[domain], indices) for domain, indices in rows.val.items()]
    return torch.utils.data.ConcatDataset(train), torch.utils.data.ConcatDataset(val)
