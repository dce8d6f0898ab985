"""medseg3d: 3D CNN segmentation of medical images (Kayalibay et al. 2017 and neighbours).

Heavy modules (torch) are imported lazily so that ``import medseg3d`` and ``medseg3d --help`` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Volume": "medseg3d.io",
    "read_volume": "medseg3d.io",
    "write_volume": "medseg3d.io",
    "MedsegError": "medseg3d.errors",
    "segment": "medseg3d.predict",
    "load_model": "medseg3d.models",
    "train": "medseg3d.train",
    "evaluate": "medseg3d.evaluate",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medseg3d' has no attribute {name!r}")


__all__ = [
    "MedsegError",
    "Volume",
    "__version__",
    "evaluate",
    "load_model",
    "read_volume",
    "segment",
    "train",
    "write_volume",
]
