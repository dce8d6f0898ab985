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
        show(
            brats_root / "Brats18_2013_2_1",
            tmp_path / "o.png",
            pred=data_root / "brats2012_mha" / "BRATS_HG0015_truth.mha",
        )
    assert not (tmp_path / "o.png").exists()


def test_brats2012_edema_is_drawn_as_edema(data_root, tmp_path, monkeypatch, capsys):
    import medseg3d.show as show_module

    figures = []
    monkeypatch.setattr(show_module, "save_figure", lambda fig, out, **kw: figures.append(fig) or out)
    show(data_root / "brats2012_mha", tmp_path / "o.png", labels="brats")
    legend = {
        t.get_text(): h.get_color()
        for t, h in zip(figures[0].legends[0].get_texts(), figures[0].legends[0].legend_handles)
    }
    assert legend["1: edema"] == show_module.COLOURS["edema"]  # was "1: NCR/NET" in the NCR/NET colour
    assert legend["2: core"] == show_module.COLOURS["core"]
    assert "BRATS 2012" in capsys.readouterr().err
