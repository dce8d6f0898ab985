"""`medseg3d show`: a PNG with three views and outlines; bad input rejected."""

import pytest

from medseg3d.errors import InputError
from medseg3d.show import show


def test_overlay_png(brats_root, tmp_path):
    case = brats_root / "Brats18_2013_2_1"
    out = show(case, tmp_path / "o.png", pred=case / "Brats18_2013_2_1_seg.nii.gz")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


def test_mismatched_prediction_grid(brats_root, data_root, tmp_path):
    with pytest.raises(InputError, match="grid"):
        show(brats_root / "Brats18_2013_2_1", tmp_path / "o.png", pred=data_root / "brats2012_mha" / "BRATS_HG0015_truth.mha")
    assert not (tmp_path / "o.png").exists()
