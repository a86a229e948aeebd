"""A Sapiens2 backbone and one task head as one module: images in, the head's output out.

Frozen backbone: no gradients and eval mode for it (dropout / drop path off), whatever the module's mode; only the
head trains. Fine-tuning: gradients flow into the backbone, with layer-wise LR decay set by the optimiser groups.
"""

import torch
from torch import nn


class TaskModel(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module, *, with_cls: bool = False, freeze: bool = False) -> None:
        """`with_cls`: the head also takes the [CLS] token (pointmap's scale head)."""
        super().__init__()
        self.backbone, self.head = backbone, head
        self.with_cls, self.frozen = with_cls, freeze
        if freeze:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "TaskModel":
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor, **head_kwargs):
        """images [B, 3, H, W] → the head's output for the last block's patch features [B, D, H/16, W/16]."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            (features,) = self.backbone.get_intermediate_layers(
                images, n=1, reshape=True, return_class_token=self.with_cls
            )
        if self.with_cls:
            patches, cls = features
            return self.head(patches, cls, **head_kwargs)
        return self.head(features, **head_kwargs)
