"""Everything about finding and loading a model, and what a model file says about itself.

* :mod:`~medseg3d.models.meta`: :class:`ModelMeta`, the typed metadata every model file carries;
* :mod:`~medseg3d.models.loaded`: :class:`LoadedModel`, the bundled models and their cards;
* :mod:`~medseg3d.models.loading`: bundled names, run folders, ``.safetensors`` files -> :class:`LoadedModel`;
* :mod:`~medseg3d.models.exported`: ONNX (ONNX Runtime) and TorchScript exports -> :class:`LoadedModel`;
* :mod:`~medseg3d.models.describe`: the text of ``medseg3d models``.

Example::

    loaded = load_model("brats")            # the bundled model
    loaded.meta.modalities                  # ('flair', 't1', 't1ce', 't2')
    loaded.card["held_out_scores"]          # its cross-validated scores
"""

from .describe import describe_models
from .exported import load_onnx_model, load_torchscript_model, onnx_providers
from .loaded import WEIGHTS_DIR, LoadedModel, bundled_models, loaded_model, model_aliases, model_card
from .loading import as_loaded, load_model, resolve_model_path, with_refiner
from .meta import ModelMeta

__all__ = [
    "WEIGHTS_DIR",
    "LoadedModel",
    "ModelMeta",
    "as_loaded",
    "bundled_models",
    "describe_models",
    "load_model",
    "load_onnx_model",
    "load_torchscript_model",
    "loaded_model",
    "model_aliases",
    "model_card",
    "onnx_providers",
    "resolve_model_path",
    "with_refiner",
]
