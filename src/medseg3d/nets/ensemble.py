"""Several trained networks as one: their probabilities averaged, returned as logits.

:class:`EnsembleNet` runs every member on the same input and averages their probabilities (sigmoid per
region, or softmax over classes), as nnU-Net and most BraTS winners combine their fold models. It returns the
*logits of the mean* (the logit of the mean probability per region; the log of the mean class
probabilities), so that every consumer that applies the activation afterwards (whole-volume or windowed
inference, mirroring, temperature scaling, uncertainty, ONNX export) gets exactly the mean probabilities
without knowing that there is more than one network. A decision at probability 0.5 (or the argmax) is
unchanged by the logit, which is monotone.

Example::

    net = EnsembleNet([fold0_net, fold1_net, fold2_net], kind="region")
    torch.sigmoid(net(x))   # == mean of torch.sigmoid(m(x)) over the members, to about 1e-6
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg3d.errors import InputError

EPS = 1e-6
"""Probabilities are clamped to [EPS, 1 - EPS] before the logit, so that no output is infinite."""


class EnsembleNet(nn.Module):
    """Members with the same input and output channels, run on the same input; their mean probabilities as
    logits.

    Args:
        members: two or more networks (built by :func:`medseg3d.nets.build_network`, same input size rule).
        kind: ``"region"`` (sigmoid per output) or ``"multiclass"`` (softmax over outputs).
    """

    def __init__(self, members: Sequence[nn.Module], kind: str):
        super().__init__()
        if len(members) < 2:
            raise InputError(f"an ensemble needs at least 2 members, got {len(members)}")
        if kind not in ("region", "multiclass"):
            raise InputError(f"ensemble kind must be 'region' or 'multiclass', got {kind!r}")
        rules = {(getattr(m, "spatial_dims", None), getattr(m, "size_multiple", None)) for m in members}
        if len(rules) != 1:
            raise InputError(
                f"ensemble members disagree on dimensions or input size rule: {sorted(rules, key=str)}"
            )
        self.members = nn.ModuleList(members)
        self.kind = kind
        self.region = kind == "region"
        self.eps = EPS
        self.spatial_dims, self.size_multiple = rules.pop()
        self.network_name = f"ensemble of {len(members)} {getattr(members[0], 'network_name', 'networks')}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of the members' mean probability (members run one at a time), (N, K, ...)."""
        # written for TorchScript too (`medseg3d export --format torchscript`): no globals, no None
        total = torch.zeros(0)
        first = True
        for member in self.members:  # one at a time: peak memory of one member, not of all
            probs = self._probabilities(member(x).float())
            total = probs if first else total + probs
            first = False
        return self._mean_logits(total)

    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's logits (exactly :meth:`forward`'s) followed by each member's own logits,
        concatenated along the channels: ``1 + len(members)`` blocks of outputs, for the members' disagreement
        (:func:`medseg3d.uncertainty.member_uncertainty`) at the cost of one ensemble pass."""
        logits = [member(x).float() for member in self.members]
        total = torch.zeros(0)
        for i, member_logits in enumerate(logits):  # the same operations in the same order as forward
            probs = self._probabilities(member_logits)
            total = probs if i == 0 else total + probs
        return torch.cat([self._mean_logits(total), *logits], dim=1)

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.region else torch.softmax(logits, dim=1)

    def _mean_logits(self, total: torch.Tensor) -> torch.Tensor:
        """The logits of the mean of the members' probabilities, given their sum."""
        mean = (total / len(self.members)).clamp(self.eps, 1 - self.eps)
        return torch.logit(mean) if self.region else torch.log(mean)


class AllOutputs(nn.Module):
    """An :class:`EnsembleNet` seen as one network whose output is :meth:`EnsembleNet.forward_all`'s blocks,
    so that whole-volume, windowed and mirrored inference treat the mean and every member alike."""

    def __init__(self, ensemble: EnsembleNet):
        super().__init__()
        self.ensemble = ensemble
        self.spatial_dims, self.size_multiple = ensemble.spatial_dims, ensemble.size_multiple
        self.groups = 1 + len(ensemble.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`EnsembleNet.forward_all` of the wrapped ensemble (for export)."""
        return self.ensemble.forward_all(x)


def build_from_meta(meta: dict, members: int = 0) -> nn.Module:
    """The untrained network model metadata ``meta`` describes, for weights to be loaded into.

    Args:
        meta: the metadata (``network``, ``in_channels``, ``n_outputs``, ``net_args``, ``kind``).
        members: 0 for one network, else an :class:`EnsembleNet` of that many.
    """
    from medseg3d.nets.registry import build_network

    def one() -> nn.Module:
        return build_network(
            meta["network"], int(meta["in_channels"]), int(meta["n_outputs"]), **meta.get("net_args", {})
        )

    return EnsembleNet([one() for _ in range(members)], meta.get("kind", "multiclass")) if members else one()
