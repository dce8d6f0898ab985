"""The training tests' record of a run, through ``train()``'s ``on_step`` and ``on_end``: each process's final
weights, its logged losses, and its first step's loss and gradient (averaged over processes and
micro-batches), saved as ``DUMP/rank<R>.pt``.

In-process: ``train(cfg, **recorder(DUMP))``. Under torchrun, this file stands in for ``-m medseg3d.cli``:
``python -m torch.distributed.run ... tests/train/dumps.py DUMP train DATASET --out RUN ...`` runs
``medseg3d train ...`` with the recorder on every process."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch


def recorder(folder) -> dict:
    """``on_step`` and ``on_end`` for :func:`medseg3d.train.train` that write ``folder/rank<R>.pt``."""
    folder = Path(folder)
    first_step: dict = {}

    def on_step(iteration: int, loss: float, model) -> None:
        if not first_step:  # this run's first step: its loss and the gradient it applied
            first_step.update(
                loss=loss,
                grads={
                    k: p.grad.detach().cpu().clone()
                    for k, p in model.named_parameters()
                    if p.grad is not None
                },
            )

    def on_end(model, history: list[dict]) -> None:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "losses": [h["train_loss"] for h in history],
                "first_step": first_step,
            },
            folder / f"rank{rank}.pt",
        )

    return {"on_step": on_step, "on_end": on_end}


def main(argv: list[str]) -> int:
    """``DUMP COMMAND ARGS...``: ``medseg3d COMMAND ARGS...`` with every ``train()`` recorded into DUMP."""
    import medseg3d.train
    from medseg3d.cli import main as medseg3d_main

    medseg3d.train.train = functools.partial(medseg3d.train.train, **recorder(argv[0]))  # cli imports it late
    return medseg3d_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
