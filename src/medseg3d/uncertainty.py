"""Uncertainty that means something: mirrored-pass uncertainty maps, a per-case confidence, calibration.

* :func:`mirrored_uncertainty` runs the network on mirrored copies of the input (2, 4 or all 8 flips of the
  three axes) and returns the mean probabilities with three voxel-wise maps: the normalised entropy of the
  mean (0 = certain, 1 = uniform), the variance across passes (mean over outputs), and the agreement (share
  of passes whose decision equals the final one). With ``passes=8`` the mean is exactly what
  ``predict --mirror`` computes, so the uncertainty costs nothing on top of mirroring.
* :func:`member_uncertainty` measures the same three maps across the members of an ensemble
  (:class:`~medseg3d.nets.ensemble.EnsembleNet`), whose mean is exactly the ensemble's own prediction: the
  members run once each, as they do without uncertainty, so it costs nothing on top of the ensemble. Each
  member's probabilities come back too, for the spread of the tumour volumes.
* :func:`case_confidence` turns the maps into one number per case: 1 minus the mean normalised entropy in the
  tumour zone (the predicted tumour grown by 2 voxels, where doubt about a segmentation lives).
* :func:`fit_temperature` fits temperature scaling (Guo et al. 2017) on saved probabilities and references:
  one scalar per output (the softmax, or each sigmoid region), minimising the negative log-likelihood with
  SciPy; :func:`apply_temperature` applies it; :func:`expected_calibration_error` measures calibration with
  equal-width confidence bins.

Example::

    result = mirrored_uncertainty(net, x, kind="multiclass", passes=8)
    score = case_confidence(result, kind="multiclass")["confidence"]
    t = fit_temperature(saved_probs, saved_refs, kind="multiclass")        # e.g. [1.9]
    ece_before = expected_calibration_error(saved_probs, saved_refs, "multiclass")
    ece_after = expected_calibration_error(apply_temperature(saved_probs, t, "multiclass"), saved_refs,
                                           "multiclass")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InputError

EPS = 1e-7
LOW_SHARE = 0.10
"""A case less confident than all but this share of the held-out cases the model was calibrated on gets a
warning (``medseg3d calibrate`` stores their confidences). Confidence depends on the number of passes (fewer
passes average less and read more confident), so only a reference made with the same number counts."""

# flips used for each number of passes: none first, then left-right (the brain's symmetry), then the others
_FLIP_ORDER = [(), (0,), (1,), (0, 1), (2,), (0, 2), (1, 2), (0, 1, 2)]


MEMBERS = "members"
"""``passes`` value (``predict --uncertainty`` without a number, on an ensemble) for the members'
disagreement."""


@dataclass
class MirroredPrediction:
    """Mean probabilities (K, x, y, z) and voxel-wise uncertainty maps (x, y, z), float32, over ``passes``
    mirrored passes (``source`` "mirrored") or over an ensemble's ``passes`` members (``source``
    "members")."""

    probabilities: np.ndarray
    entropy: np.ndarray
    variance: np.ndarray
    agreement: np.ndarray
    passes: int
    first_pass: np.ndarray | None = None
    """The unmirrored pass's probabilities (what a plain ``predict`` gives), kept with ``keep_first_pass``."""
    source: str = "mirrored"
    member_probabilities: np.ndarray | None = None
    """With ``source`` "members": each member's probabilities (M, K, x, y, z), float32."""


def _decision(probs: np.ndarray, kind: str) -> np.ndarray:
    """Per-voxel decision: argmax class (multiclass) or the number of regions above 0.5 (nested regions)."""
    if kind == "region":
        return (probs > 0.5).sum(axis=0).astype(np.uint8)
    return probs.argmax(axis=0).astype(np.uint8)


def normalised_entropy(probs: np.ndarray, kind: str) -> np.ndarray:
    """Entropy of the probabilities divided by its maximum: 0 = certain, 1 = uniform.

    Args:
        probs: (K, X, Y, Z) probabilities.
        kind: "multiclass" (entropy of the K-class distribution over log K) or "region" (mean over regions of
            the binary entropy over log 2).

    Returns:
        float32 (X, Y, Z).
    """
    p = np.clip(np.asarray(probs, dtype=np.float32), EPS, 1.0)
    if kind == "region":
        q = np.clip(1.0 - p, EPS, 1.0)
        return (-(p * np.log(p) + q * np.log(q)).mean(axis=0) / np.log(2.0)).astype(np.float32)
    k = p.shape[0]
    return (-(p * np.log(p)).sum(axis=0) / np.log(k)).astype(np.float32)


def mirrored_uncertainty(
    model,
    image,
    *,
    kind: str = "multiclass",
    passes: int = 8,
    patch=None,
    overlap: float = 0.5,
    device="cpu",
    precision: str = "auto",
    keep_first_pass: bool = False,
) -> MirroredPrediction:
    """Run ``model`` on ``passes`` mirrored copies of ``image`` (C, x, y, z) and measure their disagreement.

    Args:
        model: the network (eval mode is set by inference).
        image: preprocessed channels, as :func:`medseg3d.inference.predict_probabilities` takes them.
        kind: ``"multiclass"`` (softmax) or ``"region"`` (sigmoid per region).
        passes: 2 (identity + left-right), 4 or 8 (all flips of the three axes, as ``--mirror``).
        patch, overlap, device, precision: as for :func:`~medseg3d.inference.predict_probabilities`.
        keep_first_pass: also return the unmirrored pass's probabilities (``first_pass``).

    Returns:
        :class:`MirroredPrediction` on the grid of ``image``: the mean probabilities, the normalised entropy
        of the mean, the variance across passes (mean over outputs) and the agreement with the final decision.
    """
    from .inference import predict_probabilities

    check_passes(passes)
    total = sum_sq = first = None
    decisions = []
    for axes in _FLIP_ORDER[:passes]:
        x = np.flip(image, axis=tuple(a + 1 for a in axes)) if axes else image
        p = predict_probabilities(
            model,
            np.ascontiguousarray(x),
            kind=kind,
            patch=patch,
            overlap=overlap,
            mirror=False,
            device=device,
            precision=precision,
        ).numpy()
        if axes:
            p = np.ascontiguousarray(np.flip(p, axis=tuple(a + 1 for a in axes)))
        if keep_first_pass and first is None:
            first = p.astype(np.float32)
        p = p.astype(np.float64)
        total = p if total is None else total + p
        sum_sq = p * p if sum_sq is None else sum_sq + p * p
        decisions.append(_decision(p, kind))
    mean = total / passes
    variance = np.clip(sum_sq / passes - mean * mean, 0.0, None).mean(axis=0)
    final = _decision(mean, kind)
    agreement = np.mean([d == final for d in decisions], axis=0)
    mean = mean.astype(np.float32)
    return MirroredPrediction(
        mean,
        normalised_entropy(mean, kind),
        variance.astype(np.float32),
        agreement.astype(np.float32),
        passes,
        first,
    )


def member_uncertainty(
    model,
    image,
    *,
    kind: str = "multiclass",
    patch=None,
    overlap: float = 0.5,
    mirror: bool = False,
    device="cpu",
    precision: str = "auto",
) -> MirroredPrediction:
    """An ensemble's prediction for ``image`` (C, x, y, z) with its members' disagreement.

    Args:
        model: an :class:`~medseg3d.nets.ensemble.EnsembleNet`.
        image, kind, patch, overlap, mirror, device, precision: as for
            :func:`~medseg3d.inference.predict_probabilities` (``mirror`` mirrors every member, as
            ``--mirror``).

    Returns:
        :class:`MirroredPrediction` with ``source="members"``: ``probabilities`` are the ensemble's own (the
        same numbers as inference without uncertainty), the maps are the normalised entropy of that mean, the
        variance across members (mean over outputs) and the share of members whose decision equals the
        ensemble's; ``member_probabilities`` holds each member's (M, K, x, y, z).
    """
    from .inference import predict_probabilities
    from .nets.ensemble import AllOutputs, EnsembleNet

    if not isinstance(model, EnsembleNet):
        raise InputError(
            "only an ensemble has members to disagree; give --uncertainty a number of mirrored passes"
        )
    wrapped = AllOutputs(model)
    out = predict_probabilities(
        wrapped,
        image,
        kind=kind,
        patch=patch,
        overlap=overlap,
        mirror=mirror,
        device=device,
        precision=precision,
        groups=wrapped.groups,
    ).numpy()
    blocks = out.reshape(wrapped.groups, out.shape[0] // wrapped.groups, *out.shape[1:])
    mean, members = np.ascontiguousarray(blocks[0]), np.ascontiguousarray(blocks[1:])
    variance = members.astype(np.float64).var(axis=0).mean(axis=0)
    final = _decision(mean, kind)
    agreement = np.mean([_decision(m, kind) == final for m in members], axis=0)
    return MirroredPrediction(
        mean,
        normalised_entropy(mean, kind),
        variance.astype(np.float32),
        agreement.astype(np.float32),
        len(members),
        source=MEMBERS,
        member_probabilities=members,
    )


def check_passes(passes: int | str | None, mirror: bool = False, members: int = 0) -> None:
    """Refuse, in one line, a number of mirrored passes other than 2, 4 or 8, fewer than 8 with ``--mirror``
    (mirroring averages all 8), or ``"members"`` for a model that is not an ensemble.

    Args:
        passes: 2, 4, 8, "members", or None (no uncertainty).
        mirror: whether the prediction mirrors.
        members: the model's runnable members (0 or 1: not an ensemble).

    Raises:
        InputError: as said.
    """
    if passes == MEMBERS:
        if members < 2:
            raise InputError(
                "--uncertainty members needs an ensemble file (medseg3d ensemble); this model runs as "
                "one network (an exported ensemble does too): give a number of mirrored passes (2, 4 or 8)"
            )
        return
    if passes is not None and passes not in (2, 4, 8):
        raise InputError(
            f"--uncertainty takes 2, 4 or 8 mirrored passes (or 'members' for an ensemble), got {passes}"
        )
    if passes and mirror and passes != 8:
        raise InputError(
            f"--mirror averages all 8 mirrored passes; use --uncertainty 8 with it, not {passes}"
        )


def maps_on_input_grid(result: MirroredPrediction, record) -> dict[str, np.ndarray]:
    """The uncertainty maps pasted back onto the input's grid (as ``predict`` does with probabilities).

    Args:
        result: what :func:`mirrored_uncertainty` returned on the preprocessed grid.
        record: the :class:`~medseg3d.preprocess.PrepRecord` of that preprocessing.

    Returns:
        ``{"entropy", "variance", "agreement"}`` as float32 (X, Y, Z) arrays; outside the crop box the model
        saw nothing, which reads as certain (entropy and variance 0, agreement 1).
    """
    from .preprocess import undo_probabilities

    stacked = np.stack([result.entropy, result.variance, 1.0 - result.agreement])
    entropy, variance, disagreement = undo_probabilities(stacked, record, fill_background=False)
    return {"entropy": entropy, "variance": variance, "agreement": (1.0 - disagreement).astype(np.float32)}


def case_confidence(result: MirroredPrediction, kind: str = "multiclass", margin: int = 2) -> dict:
    """One confidence number per case from the uncertainty maps.

    The tumour zone is the predicted tumour (any non-background decision) grown by ``margin`` voxels; the
    confidence is 1 minus the mean normalised entropy there. A case with no predicted tumour is scored on the
    voxels where the mean foreground probability exceeds 0.1 (a faint, rejected tumour is doubt too); with
    none of those either, the model is sure there is nothing and the confidence is 1.

    Args:
        result: the mirrored (or members') prediction with its maps.
        kind: "multiclass" or "region".
        margin: voxels the zone grows by.

    Returns:
        ``{"confidence", "mean_entropy", "mean_agreement", "zone_voxels", "passes", "source"}``; ``passes`` is
        the number of members when ``source`` is "members".
    """
    from scipy import ndimage

    tumour = _decision(result.probabilities, kind) > 0
    if tumour.any():
        zone = ndimage.binary_dilation(tumour, iterations=margin) if margin else tumour
    else:
        foreground = result.probabilities.max(axis=0) if kind == "region" else 1.0 - result.probabilities[0]
        zone = foreground > 0.1
    if not zone.any():
        return {
            "confidence": 1.0,
            "mean_entropy": 0.0,
            "mean_agreement": 1.0,
            "zone_voxels": 0,
            "passes": result.passes,
            "source": result.source,
        }
    entropy = float(result.entropy[zone].mean())
    return {
        "confidence": round(1.0 - entropy, 4),
        "mean_entropy": round(entropy, 4),
        "mean_agreement": round(float(result.agreement[zone].mean()), 4),
        "zone_voxels": int(zone.sum()),
        "passes": result.passes,
        "source": result.source,
    }


def describe_passes(passes, source: str = "mirrored") -> str:
    """``"2 mirrored passes"`` or ``"5 members"``: what a confidence was measured over, for people.

    Args:
        passes: the count.
        source: "mirrored" or "members".
    """
    return f"{passes} members" if source == MEMBERS else f"{passes} mirrored passes"


def describe_source(source: str = "mirrored") -> str:
    """``"the mirrored passes"`` or ``"the ensemble's members"``: whose disagreement a map shows, for
    people."""
    return "the ensemble's members" if source == MEMBERS else "the mirrored passes"


def confidence_reference(calibration: dict | None, passes: int, source: str = "mirrored") -> dict | None:
    """The held-out confidences a model's calibration stored for ``passes``, with the warning threshold.

    Args:
        calibration: the model's calibration metadata (None: none).
        passes: the mirrored passes (or members) the case was measured with; must be those stored.
        source: "mirrored" or "members"; must be the one stored.

    Returns:
        ``{"held_out", "low_below" (their :data:`LOW_SHARE` quantile), "passes"}``, or None without a matching
        reference of at least 3 cases.
    """
    ref = (calibration or {}).get("confidence") or {}
    values = ref.get("held_out") or []
    if (int(ref.get("passes", 0)) != passes or ref.get("source", "mirrored") != source) or len(values) < 3:
        return None
    return {
        "held_out": [float(v) for v in values],
        "low_below": round(float(np.quantile(values, LOW_SHARE)), 4),
        "passes": passes,
    }


def confidence_rank(confidence: float, reference: dict) -> float:
    """The share of the reference's held-out cases that were less confident than ``confidence`` (0 to 1).

    Args:
        confidence: the case's confidence.
        reference: :func:`confidence_reference`'s dict.
    """
    values = np.asarray(reference["held_out"], dtype=np.float64)
    return round(float((values < confidence).mean()), 3)


def confidence_warning(confidence: float, threshold: float | None, source: str = "mirrored") -> str | None:
    """The report's warning for a case below ``threshold``, else None.

    Args:
        confidence: the case's confidence.
        threshold: the reference's ``low_below`` (None: no reference, no warning).
        source: "mirrored" or "members", for the wording.
    """
    if threshold is not None and confidence < threshold:
        return (
            f"Low confidence ({confidence:.3f} < {threshold:.3f}, the least confident tenth of the cases the "
            f"model was calibrated on): {describe_source(source)} disagree in the tumour zone; "
            "check this segmentation by eye."
        )
    return None


# ------------------------------------------------------------------------------------------------------------
# Calibration: temperature scaling and expected calibration error
# ------------------------------------------------------------------------------------------------------------


def _as_samples(probabilities, labels, kind: str, mask=None, max_voxels: int | None = None, seed: int = 0):
    """(K, N) probabilities and (N,) class indices (multiclass) or (R, N) booleans (region), over cases."""
    probs_list = probabilities if isinstance(probabilities, (list, tuple)) else [probabilities]
    labels_list = labels if isinstance(labels, (list, tuple)) else [labels]
    masks = mask if isinstance(mask, (list, tuple)) else [mask] * len(probs_list)
    if not (len(probs_list) == len(labels_list) == len(masks)):
        raise InputError("give as many reference label maps (and masks) as probability maps")
    ps, ys = [], []
    for p, y, m in zip(probs_list, labels_list, masks):
        p, y = np.asarray(p), np.asarray(y)
        spatial = p.shape[1:]
        expected = (p.shape[0], *spatial) if kind == "region" else spatial
        if y.shape != expected:
            raise InputError(
                f"references of shape {y.shape} do not fit probabilities of shape {p.shape} "
                f"({'one mask per region' if kind == 'region' else 'one class index per voxel'})"
            )
        p = p.reshape(p.shape[0], -1)
        y = y.reshape(p.shape[0], -1) if kind == "region" else y.reshape(-1)
        if m is not None:
            keep = np.asarray(m, dtype=bool).reshape(-1)
            p, y = p[:, keep], (y[:, keep] if kind == "region" else y[keep])
        ps.append(p)
        ys.append(y)
    p = np.concatenate(ps, axis=1)
    y = np.concatenate(ys, axis=-1)
    if max_voxels and p.shape[1] > max_voxels:
        pick = np.sort(np.random.default_rng(seed).choice(p.shape[1], max_voxels, replace=False))
        p, y = p[:, pick], (y[:, pick] if kind == "region" else y[pick])
    return p.astype(np.float64), y


def _nll_multiclass(log_p: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = log_p / temperature
    z = z - z.max(axis=0, keepdims=True)
    log_softmax = z - np.log(np.exp(z).sum(axis=0, keepdims=True))
    return float(-log_softmax[y, np.arange(y.size)].mean())


def _nll_binary(logit: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logit / temperature
    # -log sigmoid(z) for y=1, -log(1 - sigmoid(z)) for y=0, written stably
    return float(np.mean(np.logaddexp(0.0, np.where(y, -z, z))))


def fit_temperature(
    probabilities, labels, kind: str = "multiclass", mask=None, max_voxels: int = 2_000_000, seed: int = 0
) -> list[float]:
    """Temperatures minimising the NLL of ``probabilities`` (softened by 1/T in logit space) on ``labels``.

    Args:
        probabilities: (K, x, y, z) array or a list of them (one per case), as saved by ``predict``.
        labels: class indices (x, y, z) for multiclass, boolean region masks (R, x, y, z) for region outputs;
            a list when ``probabilities`` is a list.
        kind: ``"multiclass"`` (one temperature for the softmax) or ``"region"`` (one per sigmoid region).
        mask: voxels to fit on (e.g. the brain), one per case; default all.
        max_voxels: fit on at most this many voxels, drawn at random (``seed``), to keep it to seconds.

    Returns:
        ``[T]`` (multiclass) or ``[T_region, ...]``; T > 1 softens overconfident probabilities.
    """
    from scipy.optimize import minimize_scalar

    p, y = _as_samples(probabilities, labels, kind, mask, max_voxels, seed)
    if p.shape[1] == 0:
        raise InputError("no voxel to fit the temperature on; check the masks")
    p = np.clip(p, EPS, 1.0 - EPS)
    if kind == "region":
        logits = np.log(p) - np.log1p(-p)
        objectives = [
            lambda log_t, r=r: _nll_binary(logits[r], y[r].astype(bool), float(np.exp(log_t)))
            for r in range(p.shape[0])
        ]
    else:
        log_p = np.log(p)  # softmax(log p) = p, so log p are valid logits
        objectives = [lambda log_t: _nll_multiclass(log_p, y.astype(np.int64), float(np.exp(log_t)))]
    temperatures = []
    for objective in objectives:
        best = minimize_scalar(
            objective, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-5}
        )
        temperatures.append(round(float(np.exp(best.x)), 5))
    return temperatures


def apply_temperature(
    probabilities: np.ndarray, temperatures: Sequence[float], kind: str = "multiclass"
) -> np.ndarray:
    """Probabilities recomputed with logits divided by the fitted temperature(s) (float32, same shape).

    Args:
        probabilities: (K, ...) probabilities.
        temperatures: one for a softmax; one, or one per region, for sigmoid regions.
        kind: "multiclass" or "region".

    Raises:
        InputError: the wrong number of temperatures.
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPS, 1.0 - EPS)
    t = np.asarray(temperatures, dtype=np.float64)
    if kind == "region":
        if t.size not in (1, p.shape[0]):
            raise InputError(f"{t.size} temperatures for {p.shape[0]} region outputs; give one per region")
        z = (np.log(p) - np.log1p(-p)) / t.reshape(-1, *([1] * (p.ndim - 1)))
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    if t.size != 1:
        raise InputError(f"a softmax output takes one temperature, got {t.size}")
    z = np.log(p) / float(t[0])
    z -= z.max(axis=0, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


def ece_from_confidences(confidence, correct, n_bins: int = 15) -> float:
    """Expected calibration error: sum over equal-width bins of |accuracy - mean confidence| x bin share.

    Bins are ``[0, 1/n), [1/n, 2/n), ..., [(n-1)/n, 1]``.

    Args:
        confidence: confidences in [0, 1], any shape.
        correct: 1 where the decision was right, 0 where not, of the same size.
        n_bins: n.

    Returns:
        The ECE in [0, 1] (0 for no sample).
    """
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    correct = np.asarray(correct, dtype=np.float64).ravel()
    if confidence.size == 0:
        return 0.0
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    return float(np.abs(acc_sum - conf_sum).sum() / confidence.size)


def expected_calibration_error(
    probabilities,
    labels,
    kind: str = "multiclass",
    n_bins: int = 15,
    mask=None,
    max_voxels: int | None = None,
    seed: int = 0,
) -> float:
    """ECE of saved probabilities against references (equal-width bins).

    Multiclass: top-label ECE (confidence = the largest probability, correct = its class is the reference's).
    Region outputs: the mean over regions of the binary ECE (confidence = max(p, 1 - p)).

    Args:
        probabilities, labels, kind, mask, max_voxels, seed: as for :func:`fit_temperature`.
        n_bins: the number of equal-width confidence bins.

    Returns:
        The ECE in [0, 1].
    """
    p, y = _as_samples(probabilities, labels, kind, mask, max_voxels, seed)
    if kind == "region":
        eces = [
            ece_from_confidences(np.maximum(p[r], 1 - p[r]), (p[r] > 0.5) == y[r].astype(bool), n_bins)
            for r in range(p.shape[0])
        ]
        return float(np.mean(eces))
    return ece_from_confidences(p.max(axis=0), p.argmax(axis=0) == y, n_bins)


__all__ = [
    "LOW_SHARE",
    "MEMBERS",
    "MirroredPrediction",
    "apply_temperature",
    "case_confidence",
    "check_passes",
    "confidence_rank",
    "confidence_reference",
    "confidence_warning",
    "describe_passes",
    "describe_source",
    "ece_from_confidences",
    "expected_calibration_error",
    "fit_temperature",
    "maps_on_input_grid",
    "member_uncertainty",
    "mirrored_uncertainty",
    "normalised_entropy",
]
