"""Self-describing exported models: ONNX (run with ONNX Runtime) and TorchScript.

``medseg3d export MODEL --format onnx|torchscript -o FILE`` writes the network together with the model's
metadata (channels in order, label scheme and values, preprocessing, output kind, size multiple), so the file
alone is enough to segment a case:

* **ONNX** (opset 17): input ``image`` (N, C, *spatial) float32 and output ``logits`` (N, K, *spatial), with
  dynamic batch and spatial axes; the metadata JSON is the ``medseg3d`` entry of ``metadata_props`` (plus a
  few flat, human-readable entries such as ``modalities`` and ``label_values``).
  ``medseg3d predict model.onnx CASE -o out.nii.gz`` runs it with ONNX Runtime through
  :func:`load_onnx_model`.
* **TorchScript**: ``torch.jit.script`` of the network, the metadata JSON in the archive's extra file
  ``medseg3d.json`` (``torch.jit.load(path, _extra_files={"medseg3d.json": ""})`` reads it back).

Example:
    >>> from medseg3d.export import export_model, load_onnx_model
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

import numpy as np
import torch

from . import __version__
from .checkpoint import MODEL_FORMAT, _atomic, check_metadata, validate_model
from .errors import InputError, ModelError
from .labels import LabelScheme
from .predict import LoadedModel, load_model
from .preprocess import PrepConfig

ONNX_OPSET = 17
META_KEY = "medseg3d"
TORCHSCRIPT_META_FILE = "medseg3d.json"
FORMATS = ("onnx", "torchscript")


class OnnxRuntimeNet(torch.nn.Module):
    """An ONNX Runtime session behind the interface of a medseg3d network.

    ``forward`` takes and returns torch tensors (on the CPU), so :func:`medseg3d.inference.predict_probabilities`
    (whole volume or MONAI sliding windows) runs it unchanged. It has no parameters: ``eval()``/``to()`` are
    no-ops.
    """

    def __init__(self, session, spatial_dims: int, size_multiple: int | None, network_name: str = "onnx"):
        super().__init__()
        self.session = session
        self.spatial_dims = spatial_dims
        self.size_multiple = size_multiple
        self.network_name = network_name
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        out = self.session.run([self.output_name], {self.input_name: array})[0]
        return torch.from_numpy(out).to(x.device)


class TorchScriptNet(torch.nn.Module):
    """A loaded TorchScript network with the ``size_multiple``/``spatial_dims`` attributes inference reads."""

    def __init__(self, scripted: torch.jit.ScriptModule, spatial_dims: int, size_multiple: int | None):
        super().__init__()
        self.net = scripted
        self.spatial_dims = spatial_dims
        self.size_multiple = size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _export_meta(loaded: LoadedModel, fmt: str, source: str) -> dict:
    meta = dict(loaded.meta)
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


def export_model(model_ref, fmt: str = "onnx", out: str | os.PathLike = "model.onnx", *, verify: bool = True) -> Path:
    """Write ``model_ref`` (bundled name, run folder, ``.safetensors`` file or :class:`LoadedModel`) as ``fmt``.

    Args:
        model_ref: the model to export.
        fmt: ``"onnx"`` or ``"torchscript"``.
        out: output file, written atomically.
        verify: run the exported file once at an input size other than the traced one and compare with
            PyTorch (catches sizes frozen into the graph); raises :class:`ModelError` if they disagree.

    Returns:
        The path written.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}'; choose onnx or torchscript")
    if not isinstance(model_ref, LoadedModel) and str(model_ref).endswith(".onnx"):
        raise InputError(f"{model_ref}: is an exported ONNX model already; export from the .safetensors model")
    loaded = model_ref if isinstance(model_ref, LoadedModel) else load_model(model_ref, device="cpu")
    if isinstance(loaded.model, (OnnxRuntimeNet, TorchScriptNet)):
        raise InputError("the model is an exported one already; export from the .safetensors model")
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{out}: is a folder; give an output file name (e.g. model.{'onnx' if fmt == 'onnx' else 'pt'})")
    model = loaded.model.to("cpu").eval()
    meta = _export_meta(loaded, fmt, str(model_ref if not isinstance(model_ref, LoadedModel) else "in-memory"))
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
                _verify(model, load_onnx_model(tmp, device="cpu").model, in_channels, out)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit announces its deprecation
            try:
                scripted = torch.jit.script(model)
            except Exception as exc:  # scripting errors come in many types
                raise ModelError(f"network '{meta['network']}' cannot be scripted ({str(exc).splitlines()[0][:160]})") from exc
        extra = {TORCHSCRIPT_META_FILE: json.dumps(meta)}

        def write(tmp: str) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.jit.save(scripted, tmp, _extra_files=extra)
            if verify:
                _verify(model, load_torchscript_model(tmp).model, in_channels, out)

    # written to a temporary file, checked, then renamed: a failed export leaves nothing behind
    return _atomic(out, write)


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
        torch.onnx.export(model, (x,), buffer, opset_version=ONNX_OPSET, dynamo=False, input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": axes, "logits": axes},
                          do_constant_folding=True)
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
    proto.doc_string = (f"medseg3d {meta['network']}: channels {','.join(meta['modalities'])} -> "
                        f"{meta.get('kind', 'multiclass')} logits for labels {labels['name']} {labels['values']}")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _verify(reference: torch.nn.Module, exported: torch.nn.Module, in_channels: int, path: Path) -> None:
    x = _example_input(reference, in_channels, shape_index=1)
    with torch.no_grad():
        expected = reference(x)
        actual = exported(x)
    if actual.shape != expected.shape:
        raise ModelError(f"{path}: the export gives shape {tuple(actual.shape)} instead of {tuple(expected.shape)}")
    diff = float((actual - expected).abs().max())
    scale = float(expected.abs().max()) + 1e-6
    if diff > 1e-3 * max(scale, 1.0):
        raise ModelError(f"{path}: the export differs from PyTorch by up to {diff:.3g}; please report this network")


def _check_meta(raw: str | None, path: Path) -> dict:
    return check_metadata(raw, path, "export it with `medseg3d export`")


def _loaded(model: torch.nn.Module, meta: dict, path: Path, device: torch.device) -> LoadedModel:
    scheme = LabelScheme.from_dict(meta["labels"])
    if scheme.n_outputs != int(meta["n_outputs"]):
        raise ModelError(f"{path}: label scheme has {scheme.n_outputs} outputs but the network {meta['n_outputs']}")
    return LoadedModel(model, meta, scheme, PrepConfig.from_dict(meta["preprocess"]), device)


def onnx_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime providers for ``device``: CUDA first when asked for (or ``auto``) and available."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if str(device).startswith(("auto", "cuda")) and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_onnx_model(path: str | os.PathLike, device: str = "auto", threads: int | None = None) -> LoadedModel:
    """An exported ONNX model as a :class:`LoadedModel` whose ``.model`` runs ONNX Runtime.

    Args:
        path: ``.onnx`` file written by :func:`export_model`.
        device: ``"auto"``/``"cuda"`` use ONNX Runtime's CUDA provider when it is installed, else the CPU.
        threads: intra-op threads (default: ``torch.get_num_threads()``, so one setting governs both).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("running ONNX models needs onnxruntime: pip install 'medseg3d[onnx]'") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=onnx_providers(device))
    except Exception as exc:  # onnxruntime raises its own error types for unreadable models
        raise ModelError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from exc
    meta = _check_meta(session.get_modelmeta().custom_metadata_map.get(META_KEY), path)
    validate_model(meta, _onnx_weights(path), path)
    _check_onnx_signature(session, meta, path)
    net = OnnxRuntimeNet(session, int(meta.get("spatial_dims", 3)), meta.get("size_multiple"), str(meta["network"]))
    # tensors go to and come from the session on the host; the session itself may run on the GPU
    return _loaded(net, meta, path, torch.device("cpu"))


def _onnx_weights(path: Path) -> dict | None:
    """The initialisers (weights) of an ONNX file as tensors, for the NaN/Inf check; ``None`` without onnx."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf decoding errors come in several types
        raise ModelError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from exc
    return {init.name: torch.from_numpy(np.array(numpy_helper.to_array(init))) for init in proto.graph.initializer}


def _check_onnx_signature(session, meta: dict, path: Path) -> None:
    """The graph's input and output dimensions against the metadata: channels, rank, fixed spatial sizes.

    A fixed spatial size (an export traced without dynamic axes) only works in windows of exactly that size,
    so it must be the metadata's patch, run in sliding windows."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise ModelError(f"{path}: the ONNX graph has {len(inputs)} inputs and {len(outputs)} outputs; "
                         "a medseg3d model has one image input and one logits output")
    spatial_dims = int(meta.get("spatial_dims", 3))
    shape_in, shape_out = list(inputs[0].shape), list(outputs[0].shape)
    expected = f"(N, {meta['in_channels']}, {', '.join(['size'] * spatial_dims)})"
    if len(shape_in) != 2 + spatial_dims or len(shape_out) != 2 + spatial_dims:
        raise ModelError(f"{path}: the ONNX input has dimensions {shape_in} but the metadata says {expected}; "
                         "export the model again with `medseg3d export`")
    for what, dims, count in (("input channels", shape_in, meta["in_channels"]),
                              ("output channels", shape_out, meta["n_outputs"])):
        if isinstance(dims[1], int) and dims[1] != count:
            raise ModelError(f"{path}: the ONNX graph has {dims[1]} {what} but its metadata says {count}; "
                             "export the model again with `medseg3d export`")
    fixed = [d for d in shape_in[2:] if isinstance(d, int)]
    if fixed:
        patch = meta.get("patch")
        window = bool((meta.get("inference") or {}).get("sliding_window"))
        if len(fixed) != spatial_dims or patch != fixed or not window:
            raise ModelError(f"{path}: the ONNX input has fixed spatial sizes {shape_in[2:]} but the metadata asks for "
                             f"{'windows of ' + str(patch) if window else 'whole volumes'}; export the model again "
                             "with `medseg3d export` (dynamic sizes)")


def read_torchscript_metadata(path: str | os.PathLike) -> dict:
    """The medseg3d metadata stored in a TorchScript export (without building the network twice)."""
    return load_torchscript_model(path).meta


def load_torchscript_model(path: str | os.PathLike, device: str = "cpu") -> LoadedModel:
    """A TorchScript export as a :class:`LoadedModel` (``torch.jit.load`` plus its metadata)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    extra = {TORCHSCRIPT_META_FILE: ""}
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(str(path), map_location=dev, _extra_files=extra)
    except Exception as exc:  # torch.jit raises RuntimeError or its own types for foreign files
        raise ModelError(f"{path}: not a readable TorchScript model ({str(exc).splitlines()[0][:200]})") from exc
    raw = extra[TORCHSCRIPT_META_FILE]
    meta = _check_meta(raw.decode() if isinstance(raw, bytes) else (raw or None), path)
    validate_model(meta, dict(scripted.state_dict()), path)
    net = TorchScriptNet(scripted, int(meta.get("spatial_dims", 3)), meta.get("size_multiple")).eval()
    return _loaded(net, meta, path, dev)
