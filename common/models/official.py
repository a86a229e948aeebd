"""Import the official Sapiens2 pretrained backbones (`sapiens2_*_pretrain.safetensors`) into `Sapiens2`.

Key names of the public release's standalone backbone (sapiens/backbones/standalone/sapiens2.py), ours on the right:

    patch_embed.projection.{weight,bias}        patch_embed.proj.{weight,bias}
    cls_token                                   cls_token
    storage_tokens                              register_tokens
    blocks.N.ln1.weight / ln2.weight            blocks.N.norm1.weight / norm2.weight
    blocks.N.attn.wq / wk / wv.{weight,bias}    blocks.N.attn.qkv.{weight,bias}  (rows [q | k | v], concatenated)
    blocks.N.attn.{q_norm,k_norm}.weight        same
    blocks.N.attn.proj.{weight,bias}            same
    blocks.N.attn.gamma.weight                  blocks.N.ls1.gamma               (LayerScale of the attention branch)
    blocks.N.ffn.{w12,w3}.{weight,bias}         blocks.N.mlp.{w12,w3}.{weight,bias}
    ln1.weight                                  norm.weight                      (the final norm)
    rope_embed.periods                          (not kept: our RoPE recomputes it; checked, then dropped)

Both use "query head i reads kv head i // (heads / kv heads)" for grouped-query attention, so the k/v rows need no
reordering. The mapping is written from our model's side (`official_layout`), so one table serves the strict check
(in official names, with expected shapes) and the conversion. The 4K checkpoint's `tokenizer.*` window stage is not
mapped (our 4K variant positions and scales its local blocks differently, see `sapiens2_4k`).
"""

import re
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import safe_open

from common.models.checkpoint import (
    CheckpointMismatchError,
    CheckpointNotFoundError,
    UnreadableCheckpointError,
    _first,
    reading_checkpoint,
    state_differences,
)
from common.models.sapiens2 import Sapiens2

PERIODS_KEY = "rope_embed.periods"

# Our key → official key, for the tensors that map one to one. `\d+` block indices carry over.
_RENAMES: list[tuple[str, str]] = [
    (r"patch_embed\.proj\.(weight|bias)", r"patch_embed.projection.\1"),
    (r"cls_token", "cls_token"),
    (r"register_tokens", "storage_tokens"),
    (r"blocks\.(\d+)\.norm1\.weight", r"blocks.\1.ln1.weight"),
    (r"blocks\.(\d+)\.norm2\.weight", r"blocks.\1.ln2.weight"),
    (r"blocks\.(\d+)\.attn\.(q_norm|k_norm)\.weight", r"blocks.\1.attn.\2.weight"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (r"blocks\.(\d+)\.ls1\.gamma", r"blocks.\1.attn.gamma.weight"),
    (r"blocks\.(\d+)\.mlp\.(w12|w3)\.(weight|bias)", r"blocks.\1.ffn.\2.\3"),
    (r"norm\.weight", "ln1.weight"),
]
_FUSED_QKV = re.compile(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)")


class OfficialPart(NamedTuple):
    """One official tensor: where it goes in our state dict, and which rows of it (None = all)."""

    ours: str
    rows: slice | None
    shape: torch.Size


def official_layout(model: Sapiens2) -> dict[str, OfficialPart]:
    """Official key → (our key, rows, expected shape) for every tensor of `model`'s state dict."""
    layout: dict[str, OfficialPart] = {}
    for key, tensor in model.state_dict().items():
        if fused := _FUSED_QKV.fullmatch(key):
            block, kind = fused.groups()
            attn = model.blocks[int(block)].attn
            q_rows, kv_rows = attn.num_heads * attn.head_dim, attn.num_kv_heads * attn.head_dim
            start = 0
            for name, rows in (("wq", q_rows), ("wk", kv_rows), ("wv", kv_rows)):
                part = slice(start, start + rows)
                layout[f"blocks.{block}.attn.{name}.{kind}"] = OfficialPart(key, part, tensor[part].shape)
                start += rows
            continue
        for ours, official in _RENAMES:
            if re.fullmatch(ours, key):
                layout[re.sub(ours, official, key)] = OfficialPart(key, None, tensor.shape)
                break
        else:
            raise ValueError(
                f"{type(model).__name__} holds {key!r}, which has no counterpart in the official Sapiens2 pretrained "
                "backbone; load official weights into a plain `Sapiens2` (`create_backbone`)"
            )
    return layout


def load_official_pretrained(model: Sapiens2, path: str | Path) -> None:
    """Load an official `sapiens2_*_pretrain.safetensors` into `model` (built with the same size) in place.

    Strict: every tensor of the model must come from the file and every tensor of the file must be used; otherwise
    `CheckpointMismatchError` names the first offending official keys (and the expected shape for a size mismatch).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise UnreadableCheckpointError(
            f"{path} is not a .safetensors file; only the official safetensors release is read"
        )
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"official checkpoint {path} does not exist; download sapiens2_<size>_pretrain."
            "safetensors from the Sapiens2 model zoo and pass its path"
        )
    layout = official_layout(model)
    with reading_checkpoint(path), safe_open(str(path), framework="pt") as f:
        state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a mapping)

    if PERIODS_KEY in state:
        _check_rope_periods(model, state.pop(PERIODS_KEY), path)
    # An absent periods buffer is no mismatch: our RoPE has no state, and the weights themselves are all checked.

    missing, unexpected, shapes = state_differences(state, layout)
    found = [
        (kind, items)
        for kind, items in (("shape mismatches", shapes), ("missing keys", missing), ("unexpected keys", unexpected))
        if items
    ]
    if found:
        details = "; ".join(f"{len(items)} {kind}: {_first(items)}" for kind, items in found)
        hint = (
            " (tokenizer.* is the 4K window stage, which this loader does not map)"
            if any(key.startswith("tokenizer.") for key in unexpected)
            else ""
        )
        raise CheckpointMismatchError(
            f"{path} does not fit {type(model).__name__} (dim {model.dim}, depth {model.depth}): {details}{hint}. "
            "Build the model with the size the checkpoint was released for (`create_backbone(<size>)`)"
        )

    pieces: dict[str, list[torch.Tensor]] = {}
    for key, part in layout.items():  # layout lists wq, wk, wv in row order
        pieces.setdefault(part.ours, []).append(state[key])
    converted = {key: torch.cat(parts) for key, parts in pieces.items()}  # [q | k | v] rows for the fused qkv
    with torch.no_grad():
        model.load_state_dict(converted, strict=True)  # casts to the model's dtype


def _check_rope_periods(model: Sapiens2, periods: torch.Tensor, path: Path) -> None:
    """The release stores its RoPE periods (usually in bf16); ours must be the same up to that dtype's rounding,
    else the positions the weights were trained with would silently change."""
    expected = model.rope.periods(dtype=torch.float64)
    if periods.shape != expected.shape:
        raise CheckpointMismatchError(
            f"{path}: {PERIODS_KEY} has shape {list(periods.shape)}, expected {list(expected.shape)} (head dim / 4)"
        )
    tolerance = 4 * torch.finfo(periods.dtype).eps  # the release computes them in that dtype, a few roundings deep
    if not torch.allclose(periods.double(), expected, rtol=tolerance, atol=0.0):
        raise CheckpointMismatchError(
            f"{path}: {PERIODS_KEY} {periods.tolist()} differ from our RoPE's periods {expected.tolist()}; the "
            f"checkpoint was trained with another RoPE base than {model.rope.base} (set `rope_base`)"
        )
