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
