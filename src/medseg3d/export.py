"""Writing self-describing exported models: ONNX (run with ONNX Runtime) and TorchScript.

``medseg3d export MODEL --format onnx|torchscript -o FILE`` writes the network together with the model's
metadata (channels in order, label scheme and values, preprocessing, output kind, size multiple), so the file
alone is enough to segment a case:

* **ONNX** (opset 17): input ``image`` (N, C, *spatial) float32 and output ``logits`` (N, K, *spatial), with
  dynamic batch and spatial axes; the metadata JSON is the ``medseg3d`` entry of ``metadata_props`` (plus a
  few flat, human-readable entries such as ``modalities`` and ``label_values``).
  ``medseg3d predict model.onnx CASE -o out.nii.gz`` runs it with ONNX Runtime through
  :func:`medseg3d.models.load_onnx_model`.
* **TorchScript**: ``torch.jit.script`` of the network, the metadata JSON in the archive's extra file
  ``medseg3d.json`` (``torch.jit.load(path, _extra_files={"medseg3d.json": ""})`` reads it back).

Example:
    >>> from medseg3d.export import export_model
    >>> from medseg3d.models import load_onnx_model
    >>> export_model("runs/brats-fold0", "onnx", "brats.onnx")          # doctest: +SKIP
    >>> loaded = load_onnx_model("brats.onnx")                           # doctest: +SKIP
    >>> loaded.modalities                                                # doctest: +SKIP
    ('flair', 't1', 't1ce', 't2')
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch

from . import __version__
from .checkpoint import MODEL_FORMAT
from .errors import InputError, ModelError
from .io import atomic_write
from .models import LoadedModel, load_model
from .models.exported import (
    META_KEY,
    TORCHSCRIPT_META_FILE,
    OnnxRuntimeNet,
    TorchScriptNet,
    load_onnx_model,
    load_torchscript_model,
)

ONNX_OPSET = 17
FORMATS = ("onnx", "torchscript")


def _export_meta(loaded: LoadedModel, fmt: str, source: str) -> dict:
    meta = loaded.meta.to_dict()
    meta.setdefault("format", MODEL_FORMAT)
    meta["spatial_dims"] = int(getattr(loaded.model, "spatial_dims", 3))
    meta["size_multiple"] = getattr(loaded.model, "size_multiple", None)
    meta["export"] = {"format": fmt, "source": source, "medseg3d": __version__, "torch": torch.__version__}
    if fmt == "onnx":
        meta["export"] |= {"opset": ONNX_OPSET, "input": "image", "output": "logits"}
    return meta


def _example_input(model: torch.nn.Module, channels: int, shape_index: int = 0) -> torch.Tensor:
    """A small input the network accepts; sizes differ per axis so that no size can hide as a constant."""
    sd = int(getattr(model, "spatial_dims", 3))
    m = getattr(model, "size_multiple", None)
    # valid-convolution networks (all 2D here) have no size multiple: a size their receptive fields fit
    sizes = [m * k for k in (2, 3, 4)][:sd] if m else [188] * sd
    if shape_index:
        sizes = [s + (m or 0) for s in sizes[::-1]]
    return torch.randn(1, channels, *sizes, generator=torch.Generator().manual_seed(shape_index))


def export_model(
    model_ref, fmt: str = "onnx", out: str | os.PathLike = "model.onnx", *, verify: bool = True
) -> Path:
    """Write ``model_ref`` (bundled name, run folder, ``.safetensors`` file or :class:`LoadedModel`) as
    ``fmt``.

    Args:
        model_ref: the model to export.
        fmt: ``"onnx"`` or ``"torchscript"``.
        out: output file, written atomically.
        verify: run the exported file once at an input size other than the traced one and compare its
            probabilities with float32 PyTorch's (catches sizes frozen into the graph, ops exported wrongly).

    Returns:
        The path written.

    Raises:
        InputError: an unknown format, an exported model given, an output that cannot be written.
        ModelError: the network cannot be exported, or the export's probabilities differ from PyTorch's.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}'; choose onnx or torchscript")
    if not isinstance(model_ref, LoadedModel) and str(model_ref).endswith(".onnx"):
        raise InputError(
            f"{model_ref}: is an exported ONNX model already; export from the .safetensors model"
        )
    loaded = model_ref if isinstance(model_ref, LoadedModel) else load_model(model_ref, device="cpu")
    if isinstance(loaded.model, (OnnxRuntimeNet, TorchScriptNet)):
        raise InputError("the model is an exported one already; export from the .safetensors model")
    out = Path(out)
    if out.is_dir():
        raise InputError(
            f"{out}: is a folder; give an output file name (e.g. model.{'onnx' if fmt == 'onnx' else 'pt'})"
        )
    model = loaded.model.to("cpu").eval()
    meta = _export_meta(
        loaded, fmt, str(model_ref if not isinstance(model_ref, LoadedModel) else "in-memory")
    )
    in_channels = int(meta["in_channels"])
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out.parent}: cannot create the output folder ({exc.strerror})") from exc
    if not os.access(out.parent, os.W_OK):
        raise InputError(f"{out.parent}: output folder is not writable; choose another -o")
    if fmt == "onnx":
        data = _onnx_bytes(model, meta, in_channels)

        def write(tmp: str) -> None:
            Path(tmp).write_bytes(data)
            if verify:
                _verify(model, load_onnx_model(tmp, device="cpu").model, in_channels, out, loaded.kind)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit announces its deprecation
            try:
                scripted = torch.jit.script(model)
            except Exception as exc:  # scripting errors come in many types
                raise ModelError(
                    f"network '{meta['network']}' cannot be scripted ({str(exc).splitlines()[0][:160]})"
                ) from exc
        extra = {TORCHSCRIPT_META_FILE: json.dumps(meta)}

        def write(tmp: str) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.jit.save(scripted, tmp, _extra_files=extra)
            if verify:
                _verify(model, load_torchscript_model(tmp).model, in_channels, out, loaded.kind)

    # written to a temporary file, checked, then renamed: a failed export leaves nothing behind
    return atomic_write(out, write)


def _onnx_bytes(model: torch.nn.Module, meta: dict, in_channels: int) -> bytes:
    try:
        import onnx
    except ImportError:
        raise ModelError("ONNX export needs the onnx package: pip install 'medseg3d[onnx]'") from None
    x = _example_input(model, in_channels)
    spatial = {i + 2: name for i, name in enumerate("xyz"[: x.ndim - 2])}
    axes = {0: "batch", **spatial}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy (TorchScript-based) exporter announces its deprecation
        torch.onnx.export(
            model,
            (x,),
            buffer,
            opset_version=ONNX_OPSET,
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    labels = meta["labels"]
    flat = {
        META_KEY: json.dumps(meta),
        "modalities": ",".join(meta["modalities"]),
        "label_values": ",".join(str(v) for v in labels["values"]),
        "kind": meta.get("kind", "multiclass"),
        "network": str(meta["network"]),
    }
    del proto.metadata_props[:]
    for key, value in flat.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "medseg3d"
    proto.producer_version = __version__
    proto.doc_string = (
        f"medseg3d {meta['network']}: channels {','.join(meta['modalities'])} -> "
        f"{meta.get('kind', 'multiclass')} logits for labels {labels['name']} {labels['values']}"
    )
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _verify(
    reference: torch.nn.Module,
    exported: torch.nn.Module,
    in_channels: int,
    path: Path,
    kind: str = "multiclass",
) -> None:
    """Compare the export with the float32 PyTorch network on an input of another size.

    Like with like: PyTorch runs in float32 whatever the machine (no autocast: a CPU with native bfloat16 must
    not check a float32 export against a bfloat16 run), and outputs are compared as what they mean, the
    probabilities (sigmoid for ``kind`` ``"region"``, softmax over the classes otherwise). Raw logits are not:
    an ensemble's outputs are logits of probabilities clamped to [eps, 1 - eps], where one float32 rounding
    step of 1 - eps (6e-8) moves the logit by hundredths while the probability hardly moves (measured:
    docs/results.md, "Figures quoted by the code").
    """
    x = _example_input(reference, in_channels, shape_index=1)
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        expected = reference.float()(x).float()
        actual = exported(x).float()
    if actual.shape != expected.shape:
        raise ModelError(
            f"{path}: the export gives shape {tuple(actual.shape)} instead of {tuple(expected.shape)}"
        )
    to_probs = torch.sigmoid if kind == "region" else (lambda t: torch.softmax(t, dim=1))
    diff = float((to_probs(actual) - to_probs(expected)).abs().max())
    if not diff <= EXPORT_TOLERANCE:  # also refuses NaN
        raise ModelError(
            f"{path}: the export's probabilities differ from PyTorch's (float32) by up to {diff:.3g} "
            f"(tolerance {EXPORT_TOLERANCE:g}); please report this network"
        )


# float32 networks computed by two libraries differ by summation order: ~1e-4 in the logits here (measured
# 6.3e-5 for one bundled member), which moves a probability by at most a quarter of that
EXPORT_TOLERANCE = 1e-3
