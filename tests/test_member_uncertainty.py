"""An ensemble's uncertainty from its members' disagreement (uncertainty.member_uncertainty, predict
--uncertainty on an ensemble): known answers on stand-in members, the ensemble's own numbers left unchanged,
and each member's tumour volumes equal to what that member alone segments."""

import json

import numpy as np
import pytest
import torch
from stand_ins import Constant as _Constant

from medseg3d.checkpoint import read_model_file, save_model, validate_model
from medseg3d.cli import main
from medseg3d.errors import InputError, ModelError
from medseg3d.inference import activation, predict_probabilities
from medseg3d.io import read_volume
from medseg3d.models import bundled_models, load_model
from medseg3d.models.ensemble import make_ensemble
from medseg3d.nets import build_network
from medseg3d.nets.ensemble import AllOutputs, EnsembleNet
from medseg3d.uncertainty import member_uncertainty, normalised_entropy


def _nets(seed_a=0, seed_b=1, outputs=3):
    nets = []
    for seed in (seed_a, seed_b):
        torch.manual_seed(seed)
        nets.append(build_network("kayalibay", 4, outputs, norm="instance", base_channels=4).eval())
    return nets


def test_grouped_activation_takes_each_block_on_its_own():
    logits = torch.randn(2, 9, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    grouped = activation(logits, "multiclass", groups=3)
    for g in range(3):
        torch.testing.assert_close(
            grouped[:, 3 * g : 3 * g + 3], torch.softmax(logits[:, 3 * g : 3 * g + 3], dim=1)
        )
    torch.testing.assert_close(activation(logits, "region", groups=3), torch.sigmoid(logits))


@pytest.mark.parametrize("kind", ["region", "multiclass"])
def test_forward_all_starts_with_exactly_the_ensembles_output_then_each_members_logits(kind):
    a, b = _nets()
    ensemble = EnsembleNet([a, b], kind)
    x = torch.randn(1, 4, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        everything, alone = ensemble.forward_all(x), ensemble(x)
        assert everything.shape == (1, 9, 16, 16, 16) and AllOutputs(ensemble).groups == 3
        assert torch.equal(everything[:, :3], alone)
        assert torch.equal(everything[:, 3:6], a(x)) and torch.equal(everything[:, 6:], b(x))


def test_known_answers_with_stand_in_members():
    a, b = [2.0, -1.0, 0.0], [-2.0, 3.0, 0.5]
    ensemble = EnsembleNet([_Constant(a), _Constant(b)], "region")
    result = member_uncertainty(ensemble, np.zeros((4, 3, 2, 2), np.float32), kind="region", precision="fp32")
    pa, pb = torch.sigmoid(torch.tensor(a)).numpy(), torch.sigmoid(torch.tensor(b)).numpy()
    mean = (pa + pb) / 2  # 0.5, 0.6250, 0.5622
    assert result.source == "members" and result.passes == 2 and result.first_pass is None
    np.testing.assert_allclose(result.member_probabilities[:, :, 0, 0, 0], np.stack([pa, pb]), atol=1e-6)
    np.testing.assert_allclose(result.probabilities[:, 1, 1, 1], mean, atol=1e-6)
    # variance across the two members: ((pa - pb) / 2)^2, averaged over the three outputs
    np.testing.assert_allclose(result.variance[0, 0, 0], np.mean(((pa - pb) / 2) ** 2), rtol=1e-5)
    # decisions as counts of regions above 0.5: a 1, b 2, the mean 2 (0.5 is not above 0.5): only b agrees
    np.testing.assert_allclose(result.agreement, 0.5)
    np.testing.assert_allclose(
        result.entropy[0, 0, 0], normalised_entropy(mean[:, None], "region")[0], rtol=1e-5
    )


@pytest.mark.parametrize("patch,mirror", [(None, False), ((16, 16, 16), False), (None, True)])
def test_the_ensembles_probabilities_are_unchanged_and_each_member_is_as_alone(patch, mirror):
    a, b = _nets()
    ensemble = EnsembleNet([a, b], "region")
    x = np.random.default_rng(0).normal(size=(4, 20, 24, 18)).astype(np.float32)
    settings = dict(kind="region", patch=patch, overlap=0.5, mirror=mirror, precision="fp32")
    result = member_uncertainty(ensemble, x, **settings)
    assert np.array_equal(result.probabilities, predict_probabilities(ensemble, x, **settings).numpy())
    for member, probs in zip((a, b), result.member_probabilities):
        alone = predict_probabilities(member, x, **settings).numpy()
        # float32 window blending in a wider tensor
        np.testing.assert_allclose(probs, alone, atol=1e-6, rtol=0)


def test_only_an_ensemble_has_members():
    a, _ = _nets()
    with pytest.raises(InputError, match="only an ensemble has members"):
        member_uncertainty(a, np.zeros((4, 8, 8, 8), np.float32), kind="region")


# --- predict on a small crop of a shared case: the bundled model and a perturbed copy as an ensemble --------

CROP_CASE = "Brats18_2013_20_1"


@pytest.fixture(scope="module")
def crop_folder(brats_root, tmp_path_factory):
    from layouts import brats_names, crop_case, write_case_folder

    vols = crop_case(brats_root, CROP_CASE)
    return write_case_folder(
        vols, tmp_path_factory.mktemp("crop") / CROP_CASE, brats_names(CROP_CASE), ".nii.gz"
    )


@pytest.fixture(scope="module")
def two_members(tmp_path_factory):
    """The bundled model and a copy whose weights are perturbed by 5% noise: two members that disagree a
    little."""
    root = tmp_path_factory.mktemp("members")
    meta, _ = read_model_file(bundled_models()["brats-v1"])
    meta = {k: v for k, v in meta.items() if k not in ("format", "name", "calibration")}
    loaded = load_model("brats-v1", "cpu", "fp32")
    paths = []
    for i, scale in enumerate((0.0, 0.05)):
        net = build_network(
            meta["network"], meta["in_channels"], meta["n_outputs"], **meta.get("net_args", {})
        )
        net.load_state_dict(loaded.model.state_dict())
        gen = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(scale * p.abs().mean() * torch.randn(p.shape, generator=gen))
        paths.append(save_model(net, meta, root / f"m{i}.safetensors"))
    ensemble = make_ensemble(paths, root / "ens.safetensors", sliding_window=False)
    return paths, ensemble


def test_predict_an_ensemble_gives_member_volumes_that_are_each_members_own(
    crop_folder, two_members, tmp_path, capsys
):
    from medseg3d.labels import get_scheme
    from medseg3d.predict import predict
    from medseg3d.volumes import volume_summary

    paths, ensemble = two_members
    (plain,) = predict(
        ensemble, [crop_folder], tmp_path / "plain.nii.gz", progress=False, sliding_window=False
    )
    assert (
        main(
            [
                "predict",
                str(ensemble),
                str(crop_folder),
                "-o",
                str(tmp_path / "seg.nii.gz"),
                "--uncertainty",
                "--whole-volume",
                "--report",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "over 2 members" in out and "the 2 members' volumes: WT" in out
    labels = read_volume(tmp_path / "seg.nii.gz")
    np.testing.assert_array_equal(labels.array, read_volume(plain).array)  # the labels do not change
    record = json.loads((tmp_path / "seg.json").read_text(encoding="utf-8"))["uncertainty"]
    assert record["source"] == "members" and record["passes"] == 2 and 0 < record["confidence"] <= 1
    assert "ensemble's members" in record["map_meaning"] and record["low_confidence_below"] is None
    scheme = get_scheme("brats")
    # the console says how much tumour there is: the written labels' voxels x the voxel volume, per region
    wt = np.isin(labels.array, (1, 2, 4)).sum() * np.prod(labels.spacing) / 1000
    ours = volume_summary(labels.array, labels.spacing, scheme)["regions"]
    assert abs(ours["WT"] - wt) < 0.01 and ours["WT"] > 0
    assert f"{CROP_CASE}: tumour volumes: " + ", ".join(f"{r} {v:.1f} ml" for r, v in ours.items()) in out
    for i, path in enumerate(paths):  # each member's volumes are what that member alone segments
        (alone,) = predict(
            path, [crop_folder], tmp_path / f"alone{i}.nii.gz", progress=False, sliding_window=False
        )
        got = volume_summary(read_volume(alone).array, labels.spacing, scheme)["regions"]
        assert {r: v[i] for r, v in record["member_volumes_ml"].items()} == got
    volumes = record["member_volumes_ml"]
    assert volumes["WT"][0] != volumes["WT"][1]  # the perturbed copy disagrees somewhere
    page = (tmp_path / "seg.report.html").read_text(encoding="utf-8")
    assert "Each member of the ensemble alone" in page and "2 members" in page


def test_mirrored_passes_of_an_ensemble_and_members_of_a_single_model(
    crop_folder, two_members, tmp_path, capsys
):
    paths, ensemble = two_members
    assert (
        main(
            [
                "predict",
                str(ensemble),
                str(crop_folder),
                "-o",
                str(tmp_path / "a.nii.gz"),
                "--uncertainty",
                "2",
                "--whole-volume",
            ]
        )
        == 0
    )
    written = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    record = written["uncertainty"]
    assert record["source"] == "mirrored" and record["passes"] == 2 and "member_volumes_ml" not in record
    from medseg3d.labels import get_scheme
    from medseg3d.volumes import volume_summary

    # the JSON's volumes are those of the labels written beside it
    labels = read_volume(tmp_path / "a.nii.gz")
    assert written["volumes_ml"] == volume_summary(labels.array, labels.spacing, get_scheme("brats"))
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                str(paths[0]),
                str(crop_folder),
                "-o",
                str(tmp_path / "b.nii.gz"),
                "--uncertainty",
                "members",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "needs an ensemble" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.nii.gz").exists()
    with pytest.raises(SystemExit):  # argparse's own one-line usage error
        main(
            [
                "predict",
                str(paths[0]),
                str(crop_folder),
                "-o",
                str(tmp_path / "c.nii.gz"),
                "--uncertainty",
                "3",
            ]
        )
    assert "expected 2, 4 or 8" in capsys.readouterr().err


def test_a_members_calibration_reference_must_count_the_members(two_members):
    _, ensemble = two_members
    meta, _ = read_model_file(ensemble)
    good = {
        "temperatures": [1.0, 1.0, 1.0],
        "confidence": {"source": "members", "passes": 2, "held_out": [0.9, 0.8, 0.7]},
    }
    validate_model(meta | {"calibration": good}, None, "e.safetensors")
    for bad in (
        {"source": "members", "passes": 3},
        {"source": "members", "passes": 2.5},
        {"source": "votes", "passes": 2},
        {"passes": 5},
    ):
        calibration = {"temperatures": [1.0], "confidence": dict(bad, held_out=[0.9, 0.8, 0.7])}
        with pytest.raises(ModelError, match="mirrored passes or for the ensemble's members"):
            validate_model(meta | {"calibration": calibration}, None, "e.safetensors")
