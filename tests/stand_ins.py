"""Stand-in networks for tests of code that runs networks (ensembles, uncertainty)."""

import torch


class Constant(torch.nn.Module):
    """A stand-in member whose logits are fixed numbers per output channel, whatever the input."""

    size_multiple, spatial_dims = 1, 3

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32)

    def forward(self, x):
        return self.logits.view(1, -1, 1, 1, 1).expand(x.shape[0], -1, *x.shape[2:])


def two_blob_case(tmp_path):
    """Four 1 mm channels on one 60 x 24 x 24 grid, and region probabilities with a 1000-voxel tumour and a
    27-voxel one 36 mm beyond its edge (the network is replaced by these)."""
    import numpy as np

    from medseg3d.io import Volume, write_volume

    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    rng = np.random.default_rng(0)
    folder = tmp_path / "case"
    folder.mkdir()
    for m in ("flair", "t1", "t1ce", "t2"):
        write_volume(Volume(rng.random((60, 24, 24)).astype(np.float32), affine), folder / f"case_{m}.nii.gz")
    probs = np.zeros((3, 60, 24, 24), np.float32)
    probs[0, 5:15, 5:15, 5:15] = 0.9  # main tumour: whole tumour only (edema), 1000 voxels
    probs[0, 50:53, 8:11, 8:11] = 0.9  # far blob: 27 voxels, nearest voxel 36 mm from the main one
    return folder, probs
