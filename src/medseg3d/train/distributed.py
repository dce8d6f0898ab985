"""Running on several processes: joining ``torchrun``'s process group, agreeing across processes, and what
a killed process leaves behind.

Training (``WORLD_SIZE`` > 1; docs/distributed.md): every process joins one process group and uses its own
device; :func:`all_agree` and :func:`mean_across` are the few collectives the loop needs besides
DistributedDataParallel's gradient averaging.


Outputs are written atomically (``medseg3d.io.write_volume``: a temporary folder ``.NAME.XXXX.tmp`` beside
the target, then a rename), so a process killed mid-write (a preempted Slurm task, an out-of-memory kill)
never leaves a partial ``NAME``, but can leave that temporary folder. The next process that takes the same
case (a rerun of the same shard: shards are disjoint) removes it before deciding whether the case is done.
"""

from __future__ import annotations

import datetime
import os

import torch

from ..inference import pick_device


def join_process_group(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the ``torchrun`` process group: NCCL for CUDA devices, else gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        # rank 0 validates while the others wait in a collective: allow long validations
        minutes = float(os.environ.get("MEDSEG3D_DIST_TIMEOUT_MIN", "120"))
        torch.distributed.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(minutes=minutes)
        )
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def process_device(name: str, world: int) -> torch.device:
    """The device of this process: under torchrun, CUDA process k uses GPU ``LOCAL_RANK``.

    Args:
        name: "auto", "cpu", "cuda" or a torch device name.
        world: the number of processes; above 1 on CUDA, this process's GPU is selected.

    Returns:
        The device.
    """
    device = pick_device(name)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def all_agree(flag: bool, world: int) -> bool:
    """True on every process once any process says True (time budgets differ slightly between ranks).

    Args:
        flag: this process's answer.
        world: the number of processes (1: ``flag`` as it is, no communication).
    """
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_across(values: list[float], world: int) -> list[float]:
    """Element-wise mean of a few numbers over all processes.

    Args:
        values: this process's numbers (the same length on every process).
        world: the number of processes (1: ``values`` as they are).
    """
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return (t / world).tolist()
