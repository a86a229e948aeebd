"""RMSNorm: torch.nn.RMSNorm with a fixed epsilon."""

from torch import nn


class RMSNorm(nn.RMSNorm):
    """`torch.nn.RMSNorm` (learned scale, no bias) whose epsilon defaults to 1e-6.

    torch's default `eps=None` means `finfo(input.dtype).eps`: 1.2e-7 in float32 but 7.8e-3 in bfloat16, so the same
    weights would normalise differently under bf16 autocast. A fixed value keeps fp32 and bf16 runs alike.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps=eps)
