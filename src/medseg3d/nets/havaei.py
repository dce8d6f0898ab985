"""The 2D patch CNNs of Havaei et al. 2017, "Brain tumor segmentation with deep neural networks"
(Medical Image Analysis 35; arXiv:1505.03540), written fully convolutionally so that a whole slice is
labelled in one pass.

:class:`TwoPathCNN` (the paper's Figure 2), for a 4 x 33 x 33 patch:

* local pathway: conv 7x7 (64 maxout maps) -> max-pool 4x4 stride 1 -> conv 3x3 (64 maxout maps)
  -> max-pool 2x2 stride 1: 33 -> 27 -> 24 -> 22 -> 21;
* global pathway: conv 13x13 (160 maxout maps): 33 -> 21;
* concatenation (224 maps at 21x21) -> conv 21x21 to the classes: 21 -> 1.

The numbers of feature maps (64, 64, 160), the kernel and pooling sizes and the stride-1 pooling are the
paper's. Its figures give 651,488 parameters for TwoPathCNN and 802,368 for the second network of
InputCascadeCNN; these are the convolution weights counted with one kernel per maxout map and without
biases (:func:`paper_weight_count` reproduces them). A maxout map is the maximum over ``maxout_pieces``
feature maps (the paper's Figure 1 illustrates K = 2; the value used in the experiments is not stated), so
the real layers hold ``maxout_pieces`` times more hidden kernels, plus biases.

Every convolution is 'valid' and every pooling has stride 1, so on an H x W slice TwoPathCNN gives an
(H - 32) x (W - 32) map of logits, one per pixel whose 33 x 33 neighbourhood lies in the slice:
``output = input - 32``. :class:`InputCascadeCNN` needs 65 x 65 for one pixel: ``output = input - 64``.
Pad the slice by 16 (32 for the cascade) on every side to label every pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg3d.errors import InputError
from medseg3d.nets.blocks import center_crop_to, check_input_shape


class MaxoutConv2d(nn.Module):
    """Valid 2D convolution followed by maxout over groups of consecutive feature maps.

    Args:
        in_channels: input maps.
        out_channels: maxout maps produced.
        kernel_size: square kernel edge.
        pieces: feature maps per maxout map (K); 1 makes the layer linear.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, pieces: int = 2):
        super().__init__()
        self.out_channels = int(out_channels)
        self.pieces = int(pieces)
        self.conv = nn.Conv2d(in_channels, self.out_channels * self.pieces, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution's responses, the maximum over each group of ``pieces`` feature maps."""
        responses = self.conv(x)
        if self.pieces == 1:
            return responses
        batch, _, height, width = responses.shape
        return responses.reshape(batch, self.out_channels, self.pieces, height, width).amax(dim=2)


def _lengths(sizes: int | Sequence[int]) -> list[int]:
    return [int(sizes)] if isinstance(sizes, int) else [int(s) for s in sizes]


class _ValidSizeRule:
    """``output = input - size_reduction`` helpers shared by the Havaei networks."""

    size_reduction: int = 0
    net_name: str = ""

    def output_size(self, input_size: int | Sequence[int]) -> int | tuple[int, ...]:
        """Output size for an input size (one int, or one per axis): ``input - size_reduction``.

        Args:
            input_size: input length(s), each >= ``size_reduction + 1``.
        """
        outputs = []
        for length in _lengths(input_size):
            if length <= self.size_reduction:
                raise InputError(
                    f"{self.net_name} needs inputs of at least {self.size_reduction + 1} pixels per axis "
                    f"(output = input - {self.size_reduction}), got {length}; pad the slice by "
                    f"{self.size_reduction // 2} on every side"
                )
            outputs.append(length - self.size_reduction)
        return outputs[0] if isinstance(input_size, int) else tuple(outputs)

    def input_size_for(self, output_size: int | Sequence[int]) -> int | tuple[int, ...]:
        """Input size giving ``output_size`` (one int, or one per axis): ``output + size_reduction``.

        Args:
            output_size: wanted output length(s), >= 1.
        """
        inputs = []
        for length in _lengths(output_size):
            if length < 1:
                raise InputError(f"output size must be >= 1, got {length}")
            inputs.append(length + self.size_reduction)
        return inputs[0] if isinstance(output_size, int) else tuple(inputs)


class TwoPathCNN(_ValidSizeRule, nn.Module):
    """Havaei et al.'s two-pathway CNN, fully convolutional (``output = input - 32``).

    Numbers of feature maps from the paper (Figure 2): 64 and 64 in the local pathway, 160 in the global
    one. See the module docstring for the layer list.

    Args:
        in_channels: input channels (4 MRI modalities in the paper).
        n_classes: output classes (5).
        local_channels: maxout maps of the two local-pathway layers.
        global_channels: maxout maps of the global-pathway layer.
        maxout_pieces: feature maps per maxout map (K).
        dropout: dropout probability on the concatenated features (the paper used dropout; 0 disables).

    Attributes:
        spatial_dims: 2.
        size_multiple: ``None`` (valid convolutions; use :meth:`output_size`).
        size_reduction: 32.
        classifier: the 21x21 output convolution (the layer re-trained in the paper's second phase).
    """

    size_reduction = 32
    net_name = "TwoPathCNN"

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        local_channels: Sequence[int] = (64, 64),
        global_channels: int = 160,
        maxout_pieces: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        if len(local_channels) != 2:
            raise InputError(f"local_channels needs two entries, got {local_channels}")
        self.in_channels = int(in_channels)
        self.n_classes = int(n_classes)
        self.spatial_dims = 2
        self.size_multiple = None
        self.local_path = nn.Sequential(
            MaxoutConv2d(self.in_channels, local_channels[0], 7, maxout_pieces),
            nn.MaxPool2d(4, stride=1),
            MaxoutConv2d(local_channels[0], local_channels[1], 3, maxout_pieces),
            nn.MaxPool2d(2, stride=1),
        )
        self.global_path = MaxoutConv2d(self.in_channels, global_channels, 13, maxout_pieces)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(local_channels[1] + global_channels, self.n_classes, 21)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Label every pixel whose 33 x 33 neighbourhood lies inside ``x``.

        Args:
            x: (N, in_channels, H, W) tensor, H and W >= 33.

        Returns:
            (N, n_classes, H - 32, W - 32) logits.
        """
        if not torch.jit.is_tracing():
            check_input_shape(list(x.shape), 2, self.in_channels, "TwoPathCNN")
            for length in x.shape[2:]:
                if length <= 32:
                    raise InputError(
                        "TwoPathCNN needs H and W >= 33 (output = input - 32), got shape "
                        + str(list(x.shape))
                        + "; pad the slice by 16 on every side"
                    )
        features = torch.cat([self.local_path(x), self.global_path(x)], dim=1)
        return self.classifier(self.dropout(features))


class InputCascadeCNN(_ValidSizeRule, nn.Module):
    """Havaei et al.'s InputCascadeCNN, fully convolutional (``output = input - 64``).

    A first :class:`TwoPathCNN` labels the 65 x 65 input window; its class probabilities (softmax,
    33 x 33) are concatenated with the central 33 x 33 window of the input as extra channels, and a second
    TwoPathCNN with ``in_channels + n_classes`` inputs labels the centre pixel. On a whole slice the same
    holds pixel-wise: first CNN output ``H - 32``, the input cropped by 16 on every side to match, second
    CNN output ``H - 64``.

    Args:
        in_channels: input channels.
        n_classes: output classes.
        local_channels: see :class:`TwoPathCNN` (both stages).
        global_channels: see :class:`TwoPathCNN`.
        maxout_pieces: see :class:`TwoPathCNN`.
        dropout: see :class:`TwoPathCNN`.

    Attributes:
        first: the first TwoPathCNN (the paper trains it first, then freezes it: :meth:`freeze_first`).
        second: the second TwoPathCNN.
        spatial_dims: 2.
        size_multiple: ``None``.
        size_reduction: 64.
    """

    size_reduction = 64
    net_name = "InputCascadeCNN"

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        local_channels: Sequence[int] = (64, 64),
        global_channels: int = 160,
        maxout_pieces: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.in_channels = int(in_channels)
        self.n_classes = int(n_classes)
        self.spatial_dims = 2
        self.size_multiple = None
        self.first = TwoPathCNN(
            in_channels, n_classes, local_channels, global_channels, maxout_pieces, dropout
        )
        self.second = TwoPathCNN(
            in_channels + n_classes, n_classes, local_channels, global_channels, maxout_pieces, dropout
        )

    def freeze_first(self) -> None:
        """Stop training the first CNN (the paper trains it alone, then fixes it)."""
        for parameter in self.first.parameters():
            parameter.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Label every pixel whose 65 x 65 neighbourhood lies inside ``x``.

        Args:
            x: (N, in_channels, H, W) tensor, H and W >= 65.

        Returns:
            (N, n_classes, H - 64, W - 64) logits.
        """
        if not torch.jit.is_tracing():
            check_input_shape(list(x.shape), 2, self.in_channels, "InputCascadeCNN")
            for length in x.shape[2:]:
                if length <= 64:
                    raise InputError(
                        "InputCascadeCNN needs H and W >= 65 (output = input - 64), got shape "
                        + str(list(x.shape))
                        + "; pad the slice by 32 on every side"
                    )
        probabilities = F.softmax(self.first(x), dim=1)
        centre = center_crop_to(x, list(probabilities.shape[2:]))
        return self.second(torch.cat([centre, probabilities], dim=1))


def paper_weight_count(model: nn.Module) -> int:
    """Convolution weights counted as in Havaei et al.'s figures: one kernel per maxout map, no biases.

    Gives 651,488 for ``TwoPathCNN(4, 5)`` and 802,368 for the second network of ``InputCascadeCNN(4, 5)``.

    Args:
        model: a :class:`TwoPathCNN` (or any module built from :class:`MaxoutConv2d` and ``nn.Conv2d``).
    """
    total = 0
    maxout_convs = set()
    for layer in model.modules():
        if isinstance(layer, MaxoutConv2d):
            maxout_convs.add(id(layer.conv))
            total += layer.conv.weight.numel() // layer.pieces
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d) and id(layer) not in maxout_convs:
            total += layer.weight.numel()
    return total
