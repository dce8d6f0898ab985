"""Saving matplotlib figures atomically (training curves, experiment plots, overlays)."""

from __future__ import annotations

import os
from pathlib import Path


def save_figure(fig, path, **savefig_kwargs) -> Path:
    """Write ``fig`` to a temporary PNG beside ``path``, close it, then rename: never a half-written image."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, **savefig_kwargs)
    finally:
        plt.close(fig)
    os.replace(tmp, path)
    return path
