"""Model files: metadata round trip, checks before use, no code execution, atomic writes."""

import pytest
import torch

from medseg3d.checkpoint import load_checkpoint, read_model_file, save_checkpoint, save_model
from medseg3d.errors import ModelError

META = {
    "network": "kayalibay",
    "in_channels": 4,
    "n_outputs": 4,
    "labels": {},
    "preprocess": {},
    "modalities": [],
}


def test_model_round_trip(tmp_path):
    model = torch.nn.Conv3d(4, 4, 1)
    path = save_model(model, META | {"extra": [1, 2]}, tmp_path / "m.safetensors")
    meta, state = read_model_file(path)
    assert meta["extra"] == [1, 2] and meta["network"] == "kayalibay"
    torch.testing.assert_close(state["weight"], model.weight.detach())
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left


def test_metadata_required(tmp_path):
    with pytest.raises(ModelError, match="lacks"):
        save_model(torch.nn.Conv3d(1, 1, 1), {"network": "x"}, tmp_path / "m.safetensors")


def test_foreign_safetensors_rejected(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "f.safetensors")
    with pytest.raises(ModelError, match="no medseg3d metadata"):
        read_model_file(tmp_path / "f.safetensors")


def test_checkpoint_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="cannot read the checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_checkpoint_round_trip(tmp_path):
    state = {"model": {"w": torch.ones(3)}, "epoch": 4, "history": "[]"}
    save_checkpoint(state, tmp_path / "last.pt")
    back = load_checkpoint(tmp_path / "last.pt")
    assert back["epoch"] == 4 and torch.equal(back["model"]["w"], torch.ones(3))
    with pytest.raises(ModelError, match="nothing to resume"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_checksum_catches_flipped_tensor_bits(tmp_path):
    """torch.load reads a flipped bit inside tensor data as another number; the stored checksum does not."""
    weights = torch.arange(1000, dtype=torch.float32)
    save_checkpoint({"model": {"w": weights}, "epoch": 1}, tmp_path / "last.pt")
    data = bytearray((tmp_path / "last.pt").read_bytes())
    start = data.find(weights.numpy().tobytes())  # torch.save stores tensor bytes uncompressed
    assert start > 0
    data[start + 401] ^= 0x10  # one bit of weight 100
    (tmp_path / "last.pt").write_bytes(bytes(data))
    unchecked = torch.load(tmp_path / "last.pt", weights_only=True)
    assert not torch.equal(unchecked["model"]["w"], weights)  # read without complaint
    with pytest.raises(ModelError, match="do not match the checksum"):
        load_checkpoint(tmp_path / "last.pt")
