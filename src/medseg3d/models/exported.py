"""Loading exported models: ONNX (run with ONNX Runtime) and TorchScript, as :class:`LoadedModel` objects.

Both formats carry the medseg3d metadata (``medseg3d.export`` writes them): ONNX in the ``medseg3d`` entry of
``metadata_props``, TorchScript in the archive's extra file ``medseg3d.json``. The metadata is checked as for
any model file, and an ONNX graph's input and output dimensions are checked against it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import check_metadata, validate_model
from ..errors import ModelError
from .loaded import LoadedModel, loaded_model

META_KEY = "medseg3d"
TORCHSCRIPT_META_FILE = "medseg3d.json"


class OnnxRuntimeNet(torch.nn.Module):
    """An ONNX Runtime session behind the interface of a medseg3d network.

    ``forward`` takes and returns torch tensors (on the CPU), so
    :func:`medseg3d.inference.predict_probabilities` (whole volume or MONAI sliding windows) runs it
    unchanged. It has no parameters: ``eval()``/``to()`` are no-ops.
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
        """The ONNX Runtime execution providers the session uses."""
        return self.session.get_providers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output for ``x``, run by ONNX Runtime in float32 on the CPU copy, returned on ``x``'s
        device."""
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
        """The TorchScript network's output for ``x``."""
        return self.net(x)


def _check_meta(raw: str | None, path: Path) -> dict:
    return check_metadata(raw, path, "export it with `medseg3d export`")


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
    net = OnnxRuntimeNet(
        session, int(meta.get("spatial_dims", 3)), meta.get("size_multiple"), str(meta["network"])
    )
    # tensors go to and come from the session on the host; the session itself may run on the GPU
    return loaded_model(net, meta, path, torch.device("cpu"))


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
    return {
        init.name: torch.from_numpy(np.array(numpy_helper.to_array(init))) for init in proto.graph.initializer
    }


def _check_onnx_signature(session, meta: dict, path: Path) -> None:
    """The graph's input and output dimensions against the metadata: channels, rank, fixed spatial sizes.

    A fixed spatial size (an export traced without dynamic axes) only works in windows of exactly that size,
    so it must be the metadata's patch, run in sliding windows."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise ModelError(
            f"{path}: the ONNX graph has {len(inputs)} inputs and {len(outputs)} outputs; "
            "a medseg3d model has one image input and one logits output"
        )
    spatial_dims = int(meta.get("spatial_dims", 3))
    shape_in, shape_out = list(inputs[0].shape), list(outputs[0].shape)
    expected = f"(N, {meta['in_channels']}, {', '.join(['size'] * spatial_dims)})"
    if len(shape_in) != 2 + spatial_dims or len(shape_out) != 2 + spatial_dims:
        raise ModelError(
            f"{path}: the ONNX input has dimensions {shape_in} but the metadata says {expected}; "
            "export the model again with `medseg3d export`"
        )
    for what, dims, count in (
        ("input channels", shape_in, meta["in_channels"]),
        ("output channels", shape_out, meta["n_outputs"]),
    ):
        if isinstance(dims[1], int) and dims[1] != count:
            raise ModelError(
                f"{path}: the ONNX graph has {dims[1]} {what} but its metadata says {count}; "
                "export the model again with `medseg3d export`"
            )
    fixed = [d for d in shape_in[2:] if isinstance(d, int)]
    if fixed:
        patch = meta.get("patch")
        window = bool((meta.get("inference") or {}).get("sliding_window"))
        if len(fixed) != spatial_dims or patch != fixed or not window:
            raise ModelError(
                f"{path}: the ONNX input has fixed spatial sizes {shape_in[2:]} but the metadata asks for "
                f"{'windows of ' + str(patch) if window else 'whole volumes'}; export the model again "
                "with `medseg3d export` (dynamic sizes)"
            )


def load_torchscript_model(path: str | os.PathLike, device: str = "cpu") -> LoadedModel:
    """A TorchScript export as a :class:`LoadedModel` (``torch.jit.load`` plus its metadata).

    Args:
        path: the ``.pt`` file.
        device: "cpu", "cuda" or "auto" (CUDA when available).

    Raises:
        ModelError: the file is missing, not TorchScript, or its metadata is missing or invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    extra = {TORCHSCRIPT_META_FILE: ""}
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(str(path), map_location=dev, _extra_files=extra)
    except Exception as exc:  # torch.jit raises RuntimeError or its own types for foreign files
        raise ModelError(
            f"{path}: not a readable TorchScript model ({str(exc).splitlines()[0][:200]})"
        ) from exc
    raw = extra[TORCHSCRIPT_META_FILE]
    meta = _check_meta(raw.decode() if isinstance(raw, bytes) else (raw or None), path)
    validate_model(meta, dict(scripted.state_dict()), path)
    net = TorchScriptNet(scripted, int(meta.get("spatial_dims", 3)), meta.get("size_multiple")).eval()
    return loaded_model(net, meta, path, dev)
