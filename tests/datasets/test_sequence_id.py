"""Sequence identification from content (issue 36 item 1): FLAIR, T1, T1ce, T2 named by their intensities,
and the rules that use it (names carry nothing: content order used; names and content disagree: refused).

The shipped parameters were fitted on the shared cases, so a shared case here is seen in-sample; the
leave-one-patient-out accuracy is measured by validation/sequence_id.py (docs/reliability.md)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from medseg3d.datasets import FLAGS, check_case_sequences, check_sequences, resolve_case_channels
from medseg3d.datasets.channel_order import identify_channels
from medseg3d.datasets.sequence_id import CONFIDENT, SEQUENCES, channel_features, load_parameters
from medseg3d.errors import InputError
from medseg3d.io import read_volume

CASE = "Brats18_2013_2_1"
NNUNET = ("t1", "t1ce", "t2", "flair")


@pytest.fixture(scope="module")
def case_vols(brats_root):
    return {m: read_volume(brats_root / CASE / f"{CASE}_{m}.nii.gz") for m in SEQUENCES}


def _arrays(vols, order):
    return [vols[m].array for m in order], [vols[m].spacing for m in order]


def test_shipped_parameters_fit_the_features():
    params = load_parameters()
    n = channel_features(np.arange(5000.0)).size
    assert params["means"].shape == (4, n) and params["precision"].shape == (n, n)
    assert np.all(np.linalg.eigvalsh(params["precision"]) > 0)  # a proper Gaussian


@pytest.mark.parametrize(
    "order", [SEQUENCES, NNUNET, ("flair", "t1ce", "t1", "t2"), ("t2", "flair", "t1ce", "t1")]
)
def test_every_order_of_a_real_case_is_named_confidently(case_vols, order):
    ident = identify_channels(*_arrays(case_vols, order))
    assert ident.order == order and ident.confidence >= CONFIDENT
    assert ident.runner_up[0] != order and ident.runner_up[1] <= 1 - ident.confidence + 1e-9


def test_the_raw_clinical_case_with_skull_is_not_confidently_misread(data_root):
    """Skull on, 5.5 mm slices, each sequence on its own grid: the one kind the fit has a single example of;
    whatever it reads, it must not be sure of a wrong order (that would refuse or reorder a good case)."""
    raw = data_root / "raw_clinical" / "TCGA-FG-6692" / "raw"
    vols = {m: read_volume(raw / f"{m}.nii.gz") for m in SEQUENCES}
    for order in (SEQUENCES, NNUNET):
        ident = identify_channels(*_arrays(vols, order))
        assert ident.order == order or ident.confidence < CONFIDENT
        named = check_sequences(
            "raw",
            {m: vols[o].array for m, o in zip(SEQUENCES, order)},
            {m: vols[o].spacing for m, o in zip(SEQUENCES, order)},
            dict.fromkeys(SEQUENCES, "file name"),
        )
        assert not named.reordered


def _check(vols, order, source, **kw):
    """The case's files given in ``order`` as flair, t1, t1ce, t2, each identified by ``source``."""
    arrays = {m: vols[o].array for m, o in zip(SEQUENCES, order)}
    spacings = {m: vols[o].spacing for m, o in zip(SEQUENCES, order)}
    sources = {m: source.format(k=k + 1, m=m) for k, m in enumerate(SEQUENCES)}
    return check_sequences("c", arrays, spacings, sources, **kw)


def test_positional_files_are_put_in_their_content_order(case_vols):
    check = _check(case_vols, NNUNET, "position {k}, no modality in the name")
    assert check.order == {"flair": "t1", "t1": "t1ce", "t1ce": "t2", "t2": "flair"} and check.review == []
    (line,) = check.lines
    assert line.startswith(
        "case c: no name says which file is which; by their intensities the file at position 1 "
        "is t1, the file at position 2 is t1ce, the file at position 3 is t2, the file at "
        "position 4 is flair (confidence "
    )
    assert check.record()["content_order"] == list(NNUNET)
    right = _check(case_vols, SEQUENCES, "position {k}, no modality in the name")
    assert not right.reordered and "agrees with their intensities" in right.lines[0]


def test_names_that_content_confidently_contradicts_are_refused(case_vols):
    with pytest.raises(InputError) as e:
        _check(case_vols, ("flair", "t1ce", "t1", "t2"), "file name")  # T1 and T1ce files swapped
    text = str(e.value)
    # the evidence: what each looks like
    assert text.startswith(
        "case c: the names say t1, t1ce but by their intensities the t1 file looks like t1ce, "
        "the t1ce file looks like t1 (read as flair, t1ce, t1, t2 at confidence "
    )
    assert FLAGS in text and "--trust-names" in text and "\n" not in text
    kept = _check(case_vols, ("flair", "t1ce", "t1", "t2"), "file name", trust_names=True)
    assert not kept.reordered and kept.review[0].startswith("case c: kept as given (--trust-names)")
    flagged = _check(case_vols, ("flair", "t1ce", "t1", "t2"), "--{m}")  # the user's flags decide
    assert not flagged.reordered and flagged.review[0].startswith("case c: kept as given (flags)")
    assert _check(case_vols, SEQUENCES, "file name").review == []


def test_nnunet_files_c0_to_c3_are_read_in_their_content_order(case_vols, brats_root, tmp_path):
    """The issue's `predict brats c0 c1 c2 c3` with the files in nnU-Net's order (T1, T1ce, T2, FLAIR): the
    channels reach the model as FLAIR, T1, T1ce, T2."""
    files = []
    for k, m in enumerate(NNUNET):
        files.append(tmp_path / f"c{k}.nii.gz")
        files[-1].symlink_to(brats_root / CASE / f"{CASE}_{m}.nii.gz")
    case, _ = resolve_case_channels(files, SEQUENCES)
    volumes = {m: read_volume(p) for m, p in case.channels.items()}
    volumes, check = check_case_sequences(case, volumes)
    assert {m: Path(p).name for m, p in case.channels.items()} == {
        "flair": "c3.nii.gz",
        "t1": "c0.nii.gz",
        "t1ce": "c1.nii.gz",
        "t2": "c2.nii.gz",
    }
    for m in SEQUENCES:
        np.testing.assert_array_equal(volumes[m].array, case_vols[m].array)
    assert case.meta["sources"]["flair"].startswith("intensities, confidence")
    assert len(check.lines) == 1


def test_too_little_to_go_on_is_not_a_reading():
    rng = np.random.default_rng(0)
    noise = [rng.normal(100, 10, (12, 12, 12)) for _ in range(4)]
    assert identify_channels(noise, [(1.0, 1.0, 1.0)] * 4) is None  # fewer than 1000 core voxels
    mask = [np.ones((30, 30, 30))] * 4
    assert identify_channels(mask, [(1.0, 1.0, 1.0)] * 4) is None


def test_permutations_cover_every_assignment():
    assert len(set(itertools.permutations(SEQUENCES))) == 24


@pytest.mark.slow
def test_predict_on_nnunet_ordered_files_gives_the_right_order_result(brats_root, tmp_path, capsys):
    """The issue's `predict brats c0 c1 c2 c3` (files in nnU-Net's order, no names): the same labels as the
    case with its BraTS names (it gave whole-tumour Dice 0.54 against 0.93 before)."""
    from medseg3d.cli import main

    files = []
    for k, m in enumerate(NNUNET):
        files.append(tmp_path / f"c{k}.nii.gz")
        files[-1].symlink_to(brats_root / CASE / f"{CASE}_{m}.nii.gz")
    assert main(["predict", "brats", *map(str, files), "-o", str(tmp_path / "c.nii.gz"), "--quiet"]) == 0
    assert "no name says which file is which" in capsys.readouterr().err
    assert (
        main(["predict", "brats", str(brats_root / CASE), "-o", str(tmp_path / "named.nii.gz"), "--quiet"])
        == 0
    )
    np.testing.assert_array_equal(
        read_volume(tmp_path / "c.nii.gz").array, read_volume(tmp_path / "named.nii.gz").array
    )
