"""A process's place in a torchrun launch, and the few collective steps training takes (DDP).

Trained in-process, a run is rank 0 of 1 and every helper here is a no-op.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from utils.core.parameters import RunParams
from utils.nets.environment import select_device


@dataclass(frozen=True)
class Processes:
    """This process's place in a torchrun launch (rank 0 of 1 when trained in-process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


ONE_PROCESS = Processes()  # trained in-process: rank 0 of 1


def processes_from_env() -> Processes:
    env = os.environ
    return Processes(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def barrier(procs: Processes) -> None:
    if procs.world_size > 1:
        dist.barrier()


def gpu_processes(params: RunParams) -> int:
    """How many training processes to start: one per GPU in use (1 on the CPU)."""
    if select_device(params).type != "cuda":
        return 1
    visible = torch.cuda.device_count()
    return visible if params.gpus == 0 else min(params.gpus, visible)


def training_device(params: RunParams, procs: Processes) -> torch.device:
    device = select_device(params)
    if device.type == "cuda" and procs.world_size > 1:
        device = torch.device("cuda", procs.local_rank)
        torch.cuda.set_device(device)
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def any_process(flag: bool, procs: Processes, device: torch.device) -> bool:
    """Whether ``flag`` holds in any process: one decision that every process takes alike."""
    if procs.world_size == 1:
        return flag
    value = torch.tensor(int(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def sync_point(
    first_bad_step: torch.Tensor, checkpoint_due: bool, out_of_time: bool, procs: Processes
) -> tuple[int, bool, bool]:
    """Every LOG_EVERY steps, one host sync that every process agrees on: the first step with a non-finite
    loss (any process's), whether a checkpoint is due and whether the time budget ran out (any process's clock)."""
    yes_as_zero = torch.tensor([0 if checkpoint_due else 1, 0 if out_of_time else 1], device=first_bad_step.device)
    flags = torch.cat([first_bad_step.view(1), yes_as_zero])
    if procs.world_size > 1:
        dist.all_reduce(flags, op=dist.ReduceOp.MIN)  # any process's bad step, due checkpoint or clock decides
    bad_step, not_due, in_time = flags.tolist()
    return bad_step, not_due == 0, in_time == 0


def mean_over_processes(values: torch.Tensor, procs: Processes) -> torch.Tensor:
    values = values.clone()
    if procs.world_size > 1:
        dist.all_reduce(values)
        values /= procs.world_size
    return values


def start_process_group(procs: Processes, device: torch.device) -> None:
    if procs.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def end_process_group(procs: Processes) -> None:
    if procs.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
