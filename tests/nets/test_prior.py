"""Output-prior initialisation: known biases, every output group set, unsupported networks refused."""

import math

import pytest
import torch

from medseg3d.errors import InputError
from medseg3d.nets import TinyUNet3D, UNet3D, build_network, init_output_prior, prior_biases


def test_prior_biases_known_values():
    assert prior_biases([0.1], "region") == pytest.approx([math.log(0.1 / 0.9)])
    assert prior_biases([0.5], "region") == pytest.approx([0.0])
    assert prior_biases([0.9, 0.1], "multiclass") == pytest.approx([math.log(0.9), math.log(0.1)])
    # an absent class gets a large negative but finite bias
    (absent,) = prior_biases([0.0], "region")
    assert absent == pytest.approx(math.log(1e-4 / (1 - 1e-4)))


def test_tiny_unet_starts_at_the_prior():
    torch.manual_seed(0)
    net = TinyUNet3D(in_channels=2).eval()
    init_output_prior(net, [0.04], "region")
    torch.nn.init.zeros_(net.head.weight)  # isolate the bias: every voxel then outputs exactly the prior
    prob = torch.sigmoid(net(torch.randn(1, 2, 16, 16, 16)))
    torch.testing.assert_close(prob, torch.full_like(prob, 0.04))


def test_softmax_outputs_start_at_class_frequencies():
    torch.manual_seed(0)
    net = UNet3D(in_channels=1, n_classes=3, base_channels=4, levels=3, deep_supervision=True)
    fractions = [0.9, 0.07, 0.03]
    init_output_prior(net, fractions, "multiclass")
    for group in net.logit_bias_groups():  # the deep-supervision heads too
        conv = group[0]
        torch.nn.init.zeros_(conv.weight)
    net.train()
    outputs = net(torch.randn(1, 1, 16, 16, 16))
    assert len(outputs) == 2
    for logits in outputs:
        probs = torch.softmax(logits, 1).mean(dim=(0, 2, 3, 4))
        torch.testing.assert_close(probs, torch.tensor(fractions))


def test_unsupported_network_and_wrong_count_are_refused():
    kayalibay = build_network("kayalibay", in_channels=4, n_classes=3)
    with pytest.raises(InputError, match="without --output-prior"):
        init_output_prior(kayalibay, [0.1, 0.1, 0.1], "region")
    with pytest.raises(InputError, match="2 label fractions"):
        init_output_prior(TinyUNet3D(in_channels=1), [0.1, 0.2], "region")
