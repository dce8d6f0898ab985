import numpy as np
import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.inference import predict_probabilities
from medseg3d.uncertainty import (
    _FLIP_ORDER,
    MirroredPrediction,
    apply_temperature,
    case_confidence,
    confidence_warning,
    ece_from_confidences,
    expected_calibration_error,
    fit_temperature,
    maps_on_input_grid,
    mirrored_uncertainty,
    normalised_entropy,
)


def test_ece_on_a_hand_computed_example():
    # bin of 0.9: accuracy 0.5 (gap 0.4, 2 of 4 samples); bin of 0.6: accuracy 1 (gap 0.4, 2 of 4)
    assert ece_from_confidences([0.9, 0.9, 0.6, 0.6], [1, 0, 1, 1], n_bins=10) == pytest.approx(0.4)
    assert ece_from_confidences([1.0, 1.0], [1, 1]) == 0.0  # confidence 1 falls in the last bin


def _calibrated_set(n=200_000, k=4, sharpness=1.0, seed=0):
    """Labels drawn from softmax(z); probabilities softmax(sharpness * z): calibrated when sharpness == 1."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, size=(k, n))
    true = np.exp(z) / np.exp(z).sum(0)
    labels = (rng.random(n)[None] > np.cumsum(true, 0)).sum(0)
    shown = np.exp(sharpness * z) / np.exp(sharpness * z).sum(0)
    return shown.reshape(k, 20, 100, -1).astype(np.float32), labels.reshape(20, 100, -1)


def test_a_calibrated_set_has_near_zero_ece_and_temperature_one():
    probs, labels = _calibrated_set()
    # sampling noise of 200k Bernoulli draws spread over 15 bins: well under 0.01
    assert expected_calibration_error(probs, labels) < 0.01
    assert fit_temperature(probs, labels)[0] == pytest.approx(1.0, abs=0.03)


def test_an_overconfident_set_recovers_its_temperature_and_its_ece_drops():
    probs, labels = _calibrated_set(sharpness=3.0)
    before = expected_calibration_error(probs, labels)
    (t,) = fit_temperature(probs, labels)
    assert t == pytest.approx(3.0, rel=0.05)
    after = expected_calibration_error(apply_temperature(probs, [t]), labels)
    assert before > 0.05 and after < 0.01


def test_region_outputs_get_one_temperature_each():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2.0, size=(2, 100_000))
    y = rng.random(z.shape) < 1 / (1 + np.exp(-z))
    shown = 1 / (1 + np.exp(-np.stack([2.0 * z[0], 0.5 * z[1]])))  # over- then under-confident
    ts = fit_temperature(shown.reshape(2, 100, 100, 10), y.reshape(2, 100, 100, 10), kind="region")
    assert ts[0] == pytest.approx(2.0, rel=0.05) and ts[1] == pytest.approx(0.5, rel=0.05)
    calibrated = apply_temperature(shown, ts, "region")
    assert expected_calibration_error(calibrated, y, "region") < expected_calibration_error(
        shown, y, "region"
    )


def test_lists_of_cases_and_masks_and_shape_errors():
    probs, labels = _calibrated_set(n=20_000)
    mask = np.zeros(labels.shape, dtype=bool)
    mask[:10] = True
    both = expected_calibration_error([probs, probs], [labels, labels], mask=[mask, mask])
    assert both == pytest.approx(expected_calibration_error(probs, labels, mask=mask))
    with pytest.raises(InputError, match="do not fit"):
        fit_temperature(probs, labels[:5])


def test_entropy_is_normalised():
    k = 4
    uniform = np.full((k, 2, 2, 2), 1 / k, dtype=np.float32)
    certain = np.zeros((k, 2, 2, 2), dtype=np.float32)
    certain[1] = 1
    assert normalised_entropy(uniform, "multiclass") == pytest.approx(np.ones((2, 2, 2)), abs=1e-5)
    assert normalised_entropy(certain, "multiclass") == pytest.approx(np.zeros((2, 2, 2)), abs=1e-4)
    assert normalised_entropy(np.full((3, 2, 2, 2), 0.5), "region") == pytest.approx(
        np.ones((2, 2, 2)), abs=1e-5
    )


class _Ramp(torch.nn.Module):
    """Class-1 logit grows along x: mirroring x changes the answer (not flip-equivariant)."""

    def forward(self, x):
        ramp = torch.linspace(-3, 3, x.shape[2]).view(1, 1, -1, 1, 1).expand(x.shape[0], 1, *x.shape[2:])
        return torch.cat([torch.zeros_like(ramp), ramp + x[:, :1]], dim=1)


class _Pointwise(torch.nn.Module):
    """Per-voxel logits: every flip gives the same answer (flip-equivariant)."""

    def forward(self, x):
        return torch.cat([torch.zeros_like(x[:, :1]), 3 * x[:, :1]], dim=1)


def test_the_flip_order_covers_all_eight_flips_once():
    assert len(set(_FLIP_ORDER)) == 8 and _FLIP_ORDER[0] == () and _FLIP_ORDER[1] == (0,)


def test_an_equivariant_model_is_certain_across_passes_and_the_mean_is_mirrored_inference():
    x = np.random.default_rng(0).normal(size=(1, 6, 5, 4)).astype(np.float32)
    result = mirrored_uncertainty(_Pointwise(), x, passes=8)
    assert result.probabilities.shape == (2, 6, 5, 4) and result.entropy.shape == (6, 5, 4)
    assert np.allclose(result.variance, 0, atol=1e-12) and np.all(result.agreement == 1)
    expected = predict_probabilities(_Pointwise(), x, mirror=True).numpy()
    assert np.allclose(result.probabilities, expected, atol=1e-6)


def test_a_model_that_mirroring_changes_shows_disagreement_where_it_flips():
    x = np.zeros((1, 8, 3, 3), dtype=np.float32)
    result = mirrored_uncertainty(_Ramp(), x, passes=2)  # identity and x-flip: opposite ramps
    assert np.allclose(result.probabilities[1], 0.5, atol=1e-6)  # mean of p and 1-p
    assert result.variance.min() > 0 and result.agreement.max() <= 0.5
    expected = predict_probabilities(_Ramp(), x, mirror=True).numpy()
    assert np.allclose(mirrored_uncertainty(_Ramp(), x, passes=8).probabilities, expected, atol=1e-6)
    with pytest.raises(InputError, match="2, 4 or 8"):
        mirrored_uncertainty(_Ramp(), x, passes=3)


def _result(probs):
    probs = np.asarray(probs, dtype=np.float32)
    return MirroredPrediction(
        probs, normalised_entropy(probs, "multiclass"), np.zeros(probs.shape[1:]), np.ones(probs.shape[1:]), 8
    )


def test_case_confidence_is_one_minus_entropy_in_the_tumour_zone():
    probs = np.zeros((2, 10, 10, 10), dtype=np.float32)
    probs[0] = 1
    sure = case_confidence(_result(probs), margin=0)
    assert sure["confidence"] == 1.0 and sure["zone_voxels"] == 0  # nothing anywhere
    probs[:, 4:6, 4:6, 4:6] = 0.5  # an undecided 8-voxel blob: argmax picks background, p(tumour) 0.5 > 0.1
    doubtful = case_confidence(_result(probs), margin=0)
    assert doubtful["zone_voxels"] == 8 and doubtful["confidence"] == pytest.approx(0.0, abs=1e-4)
    probs[0, 4:6, 4:6, 4:6], probs[1, 4:6, 4:6, 4:6] = 0.0, 1.0  # a sure tumour with a sure margin
    assert case_confidence(_result(probs), margin=2)["confidence"] == pytest.approx(1.0, abs=1e-3)
    assert (
        confidence_warning(0.3, 0.85).startswith("Low confidence") and confidence_warning(0.9, 0.85) is None
    )
    assert confidence_warning(0.3, None) is None  # no held-out reference, no threshold to warn by


def test_maps_go_back_onto_the_input_grid_and_read_certain_outside_the_crop():
    from medseg3d.preprocess import PrepConfig, preprocess

    image = np.zeros((1, 12, 10, 8), dtype=np.float32)
    image[0, 3:9, 2:8, 2:6] = np.random.default_rng(0).normal(5, 1, size=(6, 6, 4))
    x, _, record = preprocess(image, np.eye(4), PrepConfig(margin=0))
    result = mirrored_uncertainty(_Ramp(), x, passes=2)
    maps = maps_on_input_grid(result, record)
    assert all(m.shape == (12, 10, 8) and m.dtype == np.float32 for m in maps.values())
    assert maps["entropy"][0].max() == 0 and maps["agreement"][0].min() == 1  # outside the brain box
    inside = (slice(3, 9), slice(2, 8), slice(2, 6))
    assert np.allclose(maps["entropy"][inside], result.entropy, atol=1e-6)
    assert np.allclose(maps["agreement"][inside], result.agreement, atol=1e-6)


def test_the_confidence_reference_is_the_held_out_tenth_for_the_same_passes():
    from medseg3d.uncertainty import confidence_rank, confidence_reference

    calibration = {"confidence": {"passes": 2, "held_out": [0.80, 0.85, 0.90, 0.92, 0.94]}}
    ref = confidence_reference(calibration, 2)
    assert ref["low_below"] == pytest.approx(0.82)  # numpy's linear quantile: 0.80 + 0.4 * (0.85 - 0.80)
    assert confidence_reference(calibration, 8) is None and confidence_reference(None, 2) is None
    assert confidence_reference({"confidence": {"passes": 2, "held_out": [0.9, 0.8]}}, 2) is None  # too few
    assert (
        confidence_rank(0.91, ref) == 0.6
        and confidence_rank(0.5, ref) == 0.0
        and confidence_rank(0.99, ref) == 1.0
    )
