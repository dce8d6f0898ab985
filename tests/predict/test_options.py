"""PredictOptions: one frozen object, the model's defaults filled in and every option checked once."""

import dataclasses

import pytest

from medseg3d.errors import InputError
from medseg3d.models import load_model
from medseg3d.predict import PredictOptions
from medseg3d.predict.options import check_output_format


@pytest.fixture(scope="module")
def v1():
    return load_model("brats-v1", device="cpu")


@pytest.fixture(scope="module")
def v2():
    return load_model("brats-v2", device="cpu")


def test_keywords_replace_fields_and_the_old_name_of_align_is_taken():
    base = PredictOptions(mirror=True)
    opts = PredictOptions.of(base, preprocess="none", min_component=5)
    assert (opts.align, opts.min_component, opts.mirror) == ("none", 5, True)
    assert PredictOptions.of(base) is base  # nothing to replace: the same object
    with pytest.raises(InputError, match="unknown prediction option tta"):
        PredictOptions.of(tta=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.mirror = False


def test_resolve_fills_in_the_models_own_defaults(v1, v2):
    v2_opts = PredictOptions(uncertainty="auto").resolve(v2)
    assert v2_opts.resolved and v2_opts.max_distance == v2.meta.inference["max_distance_mm"] > 0
    assert v2_opts.uncertainty == "members"  # an ensemble's members disagree at no extra cost
    assert v2_opts.sliding_window == bool(v2.meta.inference.get("sliding_window", False))
    assert PredictOptions(max_distance=0.0).resolve(v2).max_distance == 0.0  # the user's choice wins
    v1_opts = PredictOptions(uncertainty="auto").resolve(v1)
    assert (v1_opts.max_distance, v1_opts.uncertainty, v1_opts.overlap) == (0.0, 2, 0.5)
    assert PredictOptions(uncertainty=0, mirror=True).resolve(v1).uncertainty == 8
    assert v1_opts.resolve(v2) is v1_opts  # resolved once: nothing is checked or filled in again


@pytest.mark.parametrize(
    "given, message",
    [
        (dict(align="sometimes"), "--align must be one of auto, full, resample, none"),
        (dict(space="mni"), "--space must be 'native' or 'atlas'"),
        (dict(min_component=-1), "--min-component must be a number of voxels >= 0"),
        (dict(max_distance=float("nan")), "--max-distance must be a distance in mm >= 0"),
        (dict(overlap=1.0), r"--overlap must be in \[0, 1\)"),
        (dict(uncertainty=3), "--uncertainty takes 2, 4 or 8 mirrored passes"),
        (dict(uncertainty=2, mirror=True), "use --uncertainty 8 with it"),
        (dict(uncertainty="members"), "--uncertainty members needs an ensemble file"),
    ],
)
def test_impossible_options_are_refused_in_one_line(v1, given, message):
    with pytest.raises(InputError, match=message) as caught:
        PredictOptions(**given).resolve(v1)
    assert "\n" not in str(caught.value)


def test_output_formats_are_checked_against_the_space():
    check_output_format(None, "atlas")
    check_output_format("dicom-seg", "native")
    with pytest.raises(InputError, match="must be nifti or dicom-seg"):
        check_output_format("png", "native")
    with pytest.raises(InputError, match="leave out --space atlas"):
        check_output_format("dicom-seg", "atlas")
