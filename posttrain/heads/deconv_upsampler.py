"""The deconvolution trunk of the pose and segmentation heads: stride-2 transposed convolutions, each doubling the
feature map (SimpleBaseline / mmpose HeatmapHead, as Sapiens uses)."""

from collections.abc import Sequence

from torch import nn

# ConvTranspose2d (padding, output_padding) per kernel size so that every stage exactly doubles height and width.
_DECONV_PADDING = {2: (0, 0), 3: (1, 1), 4: (1, 0)}


def deconv_upsampler(in_dim: int, channels: Sequence[int], kernel: int = 4) -> nn.Sequential:
    """One stage per entry of `channels`: ConvTranspose2d(stride 2) → BatchNorm → ReLU; [B, D, h, w] →
    [B, channels[-1], h·2^n, w·2^n]. With no channels it is the identity."""
    if kernel not in _DECONV_PADDING:
        raise ValueError(f"deconv kernel must be one of {sorted(_DECONV_PADDING)} (stride-2 upsampling), got {kernel}")
    padding, output_padding = _DECONV_PADDING[kernel]
    layers: list[nn.Module] = []
    for out_dim in channels:
        layers += [
            # No bias: the BatchNorm after it has one.
            nn.ConvTranspose2d(
                in_dim, out_dim, kernel, stride=2, padding=padding, output_padding=output_padding, bias=False
            ),
            nn.BatchNorm2d(out_dim),
            nn.ReLU(inplace=True),
        ]
        in_dim = out_dim
    return nn.Sequential(*layers)
