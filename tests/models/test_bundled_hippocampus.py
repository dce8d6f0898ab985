"""The bundled hippocampus model (issue #38): listed with its cross-validated card, segments a shared case of
the Medical Segmentation Decathlon's Task04 on its own grid."""

import numpy as np
import pytest

from medseg3d.io import read_volume
from medseg3d.models import bundled_models, describe_models, load_model, model_card
from medseg3d.predict import predict

pytestmark = pytest.mark.skipif(
    "hippocampus" not in bundled_models(), reason="no bundled hippocampus model installed"
)


def test_card_and_metadata():
    card = model_card("hippocampus")
    for key in ("trained_on", "command", "training_time", "cross_validation", "postprocessing", "licence"):
        assert key in card
    assert "CC BY-SA 4.0" in card["licence"]
    assert card["cross_validation"]["cases"] == 208
    model = load_model("hippocampus", device="cpu")
    assert model.modalities == ("mri",) and model.scheme.class_names == (
        "background",
        "anterior",
        "posterior",
    )
    assert model.mirror(None) is bool(card["postprocessing"]["mirror"])  # the file runs as it was scored
    assert bundled_models()["hippocampus"].stat().st_size < 5_000_000
    assert "hippocampus = " in describe_models()


def test_segments_a_shared_case(data_root, tmp_path):
    images = data_root / "msd_hippocampus" / "imagesTr"
    image = images / "hippocampus_001_0000.nii.gz"
    out = predict("hippocampus", [image], tmp_path / "h.nii.gz", progress=False, device="cpu")[0]
    pred = read_volume(out)
    ref = read_volume(data_root / "msd_hippocampus" / "labelsTr" / "hippocampus_001.nii.gz")
    assert pred.shape == ref.shape and np.allclose(pred.affine, ref.affine)
    assert set(np.unique(pred.array)) <= {0, 1, 2}
    for value in (1, 2):
        p, r = pred.array == value, ref.array == value
        # a case the model was trained on (all 208 are): each part must be found (guards the pipeline; its
        # held-out cases' lowest Dice is on the card)
        assert 2 * (p & r).sum() / (p.sum() + r.sum()) > 0.7
