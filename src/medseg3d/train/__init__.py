"""Training: ``train(TrainConfig(...))`` or ``medseg3d train DATASET --out RUN``.

- :mod:`~medseg3d.train.config`: presets, :class:`TrainConfig`, ``--resume`` settings, model metadata;
- :mod:`~medseg3d.train.data`: the cases, the split and the samples of each step;
- :mod:`~medseg3d.train.step`: the one training step (forward, loss, backward, optimiser);
- :mod:`~medseg3d.train.loop`: :func:`train`, the epoch loop;
- :mod:`~medseg3d.train.validate`: validation scores;
- :mod:`~medseg3d.train.distributed`: several processes (``torchrun``);
- :mod:`~medseg3d.train.run_files`: the run folder (config, logs, curves, checkpoints, resume state).
"""

from __future__ import annotations

from .config import (
    PRESETS,
    RESUME_FREE,
    TrainConfig,
    default_cache_dir,
    given_settings,
    inference_defaults,
    label_scheme,
    learning_rate,
    model_metadata,
    resume_config,
    software_versions,
)
from .data import label_fractions, plan_global_batch
from .loop import train
from .step import compile_for_training, make_grad_scaler, region_targets, training_step
from .validate import validation_scores

__all__ = [
    "PRESETS",
    "RESUME_FREE",
    "TrainConfig",
    "compile_for_training",
    "default_cache_dir",
    "given_settings",
    "inference_defaults",
    "label_fractions",
    "label_scheme",
    "learning_rate",
    "make_grad_scaler",
    "model_metadata",
    "plan_global_batch",
    "region_targets",
    "resume_config",
    "software_versions",
    "train",
    "training_step",
    "validation_scores",
]
