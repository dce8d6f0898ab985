"""Saving matplotlib figures atomically (training curves, experiment plots, overlays)."""

from __future__ import annotations

from pathlib import Path

from .io import atomic_write


def save_figure(fig, path, **savefig_kwargs) -> Path:
    """Write ``fig`` to a temporary PNG beside ``path``, close it, then rename: never a half-written image.

    Args:
        fig: the matplotlib figure (closed afterwards, also on failure).
        path: the image file; its suffix sets the format.
        savefig_kwargs: passed to ``fig.savefig``.

    Returns:
        The path.
    """
    import matplotlib.pyplot as plt

    try:
        # the format from the final name: the temporary one ends in .tmp.png
        savefig_kwargs.setdefault("format", Path(path).suffix.lstrip(".") or "png")
        return atomic_write(path, lambda tmp: fig.savefig(tmp, **savefig_kwargs), suffix=".tmp.png")
    finally:
        plt.close(fig)
