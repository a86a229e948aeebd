"""Sinkhorn-Knopp centering of the teacher's prototype scores (SwAV; DINOv2's `sinkhorn_knopp` centering).

Alternately rescales the [K, B] matrix exp(logits / T) so every prototype gets 1/K of the mass and every sample 1/B,
which spreads the batch evenly over the prototypes and keeps the teacher from collapsing onto a few of them.
Under torch.distributed the batch is the global one: every sum over samples is all-reduced.
"""

import torch
import torch.distributed as dist
from torch import Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce(x: Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> Tensor:
    if _distributed():
        dist.all_reduce(x, op=op)
    return x


@torch.no_grad()
def sinkhorn_knopp(teacher_logits: Tensor, temperature: float, iterations: int = 3) -> Tensor:
    """teacher_logits [B, K] -> assignment probabilities [B, K] (float32).

    Each row sums to 1 exactly (the last step normalises samples); each column sums to B/K up to the convergence
    left after `iterations` rounds (B is the global batch under torch.distributed).
    Meant for bounded scores such as the DINO head's cosines: a sample whose every score lies more than about
    87 * temperature below the batch maximum underflows exp() in float32 and yields NaN.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    logits = teacher_logits.float() / temperature  # [B, K]
    # One shift shared by all ranks cancels exactly in the first normalisation and keeps exp() finite.
    shift = _all_reduce(logits.max().detach().clone(), dist.ReduceOp.MAX)
    q = torch.exp(logits - shift).t()  # [K, B]: a row per prototype, a column per sample
    num_prototypes = q.shape[0]
    batch = _all_reduce(torch.tensor(float(q.shape[1]), device=q.device))  # global B
    q /= _all_reduce(q.sum())
    tiny = torch.finfo(q.dtype).tiny  # a prototype whose scores all underflowed must not divide by 0
    for _ in range(iterations):
        q /= _all_reduce(q.sum(dim=1, keepdim=True)).clamp_min(tiny)  # each prototype: total 1 ...
        q /= num_prototypes  # ... then 1/K
        q /= q.sum(dim=0, keepdim=True)  # each sample: total 1 (samples are local, no reduction) ...
        q /= batch  # ... then 1/B
    return (q * batch).t()  # [B, K], rows sum to 1
