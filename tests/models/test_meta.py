"""ModelMeta: the typed view of a model file's metadata, and where a model's card comes from."""

import pytest

from medseg3d.checkpoint import read_model_file, rewrite_model_metadata
from medseg3d.models import WEIGHTS_DIR, ModelMeta, load_model


def test_the_bundled_metadata_round_trips_exactly_and_reads_typed():
    stored, _ = read_model_file(WEIGHTS_DIR / "brats-v1.safetensors")
    meta = ModelMeta.from_dict(stored)
    assert meta.to_dict() == stored and list(meta.to_dict()) == list(stored)  # same keys, same order
    assert (
        meta.network == "kayalibay"
        and meta.in_channels == 4
        and meta.n_outputs == 3
        and meta.kind == "region"
    )
    assert meta.modalities == ("flair", "t1", "t1ce", "t2") and meta.patch == (64, 64, 64)
    assert meta.inference["sliding_window"] is True and len(meta.temperatures) == 3  # calibrated: 3 sigmoids
    assert tuple(meta.scheme().regions["ET"]) == (4,) and meta.prep().downsample == 2.0
    assert "software" in meta.extra and "network" not in meta.extra


def test_a_field_changed_is_written_back_and_optional_keys_absent_stay_absent():
    stored, _ = read_model_file(WEIGHTS_DIR / "brats-v1.safetensors")
    meta = ModelMeta.from_dict(stored)
    meta.calibration = {"temperatures": [2.0, 2.0, 2.0]}
    out = meta.to_dict()
    assert out["calibration"] == {"temperatures": [2.0, 2.0, 2.0]} and meta.temperatures == [2.0, 2.0, 2.0]
    assert "space" not in out and "name" not in out  # None fields the file did not have are not invented


def test_a_bundled_model_brings_its_card_and_a_copy_elsewhere_does_not(tmp_path):
    bundled = load_model("brats-v1", "cpu")
    assert bundled.card["trained_on"] and bundled.name == "brats-v1" and bundled.source.parent == WEIGHTS_DIR
    copy = rewrite_model_metadata(WEIGHTS_DIR / "brats-v1.safetensors", {}, tmp_path / "mine.safetensors")
    mine = load_model(copy, "cpu")
    assert mine.card == {} and mine.name == "mine"


def test_missing_required_keys_cannot_make_a_meta():
    from medseg3d.errors import ModelError

    with pytest.raises(ModelError, match="lacks in_channels, n_outputs, labels, preprocess, modalities"):
        ModelMeta.from_dict({"network": "kayalibay"})
