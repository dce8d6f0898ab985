"""Segmenting new cases with a trained model (``medseg3d predict``) and the in-memory API :func:`segment`.

A model is named by a bundled name (``brats``), a run folder (its ``model.safetensors``), or a
``.safetensors`` file. Its metadata says which channels it needs, how to preprocess and which label values
to write. The package reads as the prediction does:

- :mod:`.options`: :class:`PredictOptions`, one frozen object built and checked once (``resolve``);
- :mod:`.pipeline`: one case, as its stages: align (raw scans -> the model's grid) -> preprocess -> infer ->
  undo -> native grid -> labels -> post-process (:func:`segment_volumes`); nothing is written there;
- :mod:`.outputs`: the only writer of files beside a segmentation;
- :mod:`.dataset`: one case or a dataset folder, output names, shards, skipping (:func:`predict`).
"""

from .dataset import output_path_for, predict, predict_case
from .options import Passes, PredictOptions
from .outputs import member_spread, uncertainty_record, write_case_outputs
from .pipeline import (
    CaseResult,
    GridPrediction,
    background_fill,
    grid_prediction,
    grid_probabilities,
    member_volumes,
    probabilities_to_labels,
    resolve_passes,
    segment,
    segment_arrays,
    segment_volumes,
)

__all__ = [
    "CaseResult",
    "GridPrediction",
    "Passes",
    "PredictOptions",
    "background_fill",
    "grid_prediction",
    "grid_probabilities",
    "member_spread",
    "member_volumes",
    "output_path_for",
    "predict",
    "predict_case",
    "probabilities_to_labels",
    "resolve_passes",
    "segment",
    "segment_arrays",
    "segment_volumes",
    "uncertainty_record",
    "write_case_outputs",
]
