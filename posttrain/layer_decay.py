"""AdamW parameter groups with layer-wise LR decay (BEiT / MAE fine-tuning, as ViTPose and Sapiens use).

Layer ids: embeddings and prefix tokens 0, block i → i + 1, the final norm and the head depth + 1. A parameter of
layer l trains at lr · decay^(depth + 1 − l): the head at the full rate, the patch embedding at the smallest.
"""

from torch import nn

_EMBEDDINGS = ("patch_embed", "cls_token", "register_tokens")


def layer_id(name: str, depth: int) -> int:
    """`name` of a TaskModel parameter (backbone.* / head.*)."""
    if not name.startswith("backbone."):
        return depth + 1
    inner = name.removeprefix("backbone.")
    if inner.startswith(_EMBEDDINGS):
        return 0
    if inner.startswith("blocks."):
        return int(inner.split(".")[1]) + 1
    return depth + 1


def layer_decay_groups(model: nn.Module, depth: int, *, weight_decay: float, decay: float) -> list[dict]:
    """One group per (layer, decayed or not) with its `lr_scale`; 1-D parameters (norms, biases, tokens) get no
    weight decay. Frozen parameters are left out."""
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = layer_id(name, depth)
        decayed = param.ndim >= 2 and not name.endswith(_EMBEDDINGS)
        group = groups.setdefault(
            (layer, decayed),
            {"params": [], "weight_decay": weight_decay if decayed else 0.0, "lr_scale": decay ** (depth + 1 - layer)},
        )
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]
