"""Data-parallel training (PyTorch DDP): the process group and the few collectives the trainer needs.

The trainer stays a single-process loop with a handful of ``if ddp:`` lines
(as nanoGPT's does); what those lines call lives here:

* every rank draws the *same* global batches (same seed) as one process would
  and trains on every ``world_size``-th example of each (:func:`rank_parts`),
  so ``train.batch_size`` stays the global batch. Each rank's mean loss is
  scaled by its share of the batch, which makes DDP's gradient average exactly
  the single-process batch mean, also when the last batch does not split
  evenly and with class weights;
* rank 0 evaluates and broadcasts the validation metrics, so every rank takes
  the same early-stopping decisions (:func:`from_rank0`);
* rank 0 reads a checkpoint and broadcasts it; every rank's dropout stream is
  gathered into it (:func:`gather`);
* a rank 0 that finds the model already trained releases the others
  (:func:`skip_training`; they raise :class:`TrainingSkipped`).

Dropout streams differ per rank (``seed + rank``), so results match
single-process training within a tolerance, not bitwise.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import numpy as np

from textclf.core.errors import ConfigError

_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclasses.dataclass(frozen=True)
class DDPContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str


class TrainingSkipped(Exception):
    """Raised by a data-parallel ``fit`` on ranks other than 0 when rank 0 will not train."""


def under_torchrun() -> bool:
    """True in a process started by torchrun (or anything that sets its environment variables)."""
    return all(k in os.environ for k in _TORCHRUN_ENV)


def init_process_group(device: str = "auto") -> DDPContext:
    """Join the process group described by torchrun's environment: gloo on CPU, nccl on CUDA."""
    import torch
    import torch.distributed as dist

    from textclf.training.device import resolve_device

    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    dev = resolve_device(device)
    if dev.type == "mps":
        raise ConfigError("Data-parallel training runs on CPU (gloo) or CUDA (nccl), not on mps. Set train.device=cpu.")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev.index if dev.index is not None else local)  # one GPU per process
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DDPContext(rank=rank, world_size=world, local_rank=local, backend=backend)


def world_size() -> int:
    """Processes training together: the process group's size when one is initialised, else 1."""
    if "torch" not in sys.modules:  # no process group without torch; keeps cached runs torch-free
        return 1
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def group_ready() -> bool:
    """Whether a torch.distributed process group is initialised in this process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank()


def destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def wrap(model, device):
    """The DDP wrapper: it broadcasts rank 0's weights now and averages gradients in backward()."""
    from torch.nn.parallel import DistributedDataParallel

    # No buffer changes in training (the frozen embedding rows, class weights), so
    # re-broadcasting them every step would only cost time.
    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
    )


def from_rank0(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (other ranks pass anything, e.g. None)."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def skip_training() -> None:
    """On rank 0: release the other ranks waiting in ``Trainer.fit`` (they raise :class:`TrainingSkipped`).

    Call it when rank 0 did not train after all (the trained model was in the
    cache). Its message takes the place of the first one ``fit`` broadcasts.
    """
    from_rank0({"skip": True})


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_sum(values: list[float], device) -> list[float]:
    """Element-wise sums over ranks (float64)."""
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_min(value: int, device) -> int:
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def rank_parts(batches: list[np.ndarray], labels: np.ndarray, loss_weights: np.ndarray | None, rank: int, world: int):
    """(this rank's indices per step, loss scale per step, examples per step).

    Every ``world``-th example of each global batch (strided, so all ranks get
    similar lengths and pad alike), and a scale ``world * share`` where
    ``share`` is this rank's part of the batch's loss denominator (its
    examples, or their class weights): DDP averages gradients over ranks, so
    the sum of scaled per-rank means is exactly the global batch mean. A rank
    left without examples (a short last batch) still steps with the group on
    one example scaled by 0, as DDP needs every rank in every backward.
    """
    parts, scales, sizes = [], [], []
    for batch in batches:
        mine = batch[rank::world]
        if len(mine) == 0:
            parts.append(batch[:1])
            scales.append(0.0)
            sizes.append(0)
            continue
        share = len(mine) / len(batch)
        if loss_weights is not None:
            total = loss_weights[labels[batch]].sum()
            share = loss_weights[labels[mine]].sum() / total if total > 0 else share
        parts.append(mine)
        scales.append(world * share)
        sizes.append(len(mine))
    return parts, scales, sizes
