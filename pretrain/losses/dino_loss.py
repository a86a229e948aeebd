"""DINO self-distillation loss on [CLS] prototype scores: H(teacher targets, student) over view pairs."""

import torch
import torch.nn.functional as F
from torch import Tensor

from pretrain.losses.sinkhorn import sinkhorn_knopp


def dino_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    *,
    teacher_temp: float,
    student_temp: float = 0.1,
    sinkhorn_iterations: int = 3,
) -> Tensor:
    """student_logits [V, B, K] (the G global views first, in the teacher's order, then the local views),
    teacher_logits [G, B, K] for the global views (no grad needed) -> scalar.

    Teacher targets: Sinkhorn-Knopp at teacher_temp over all G*B teacher rows together. Student: log-softmax at
    student_temp. Cross-entropy for every pair (teacher view g, student view v) with v != g, i.e. global<->global
    (other view) and global<->local; the mean over pairs and samples. Computed in float32.
    """
    n_global, batch, num_prototypes = teacher_logits.shape
    n_views = student_logits.shape[0]
    if student_logits.shape[1:] != teacher_logits.shape[1:] or n_views < n_global:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} must be [V >= {n_global}, {batch}, {num_prototypes}] "
            f"to match teacher_logits {tuple(teacher_logits.shape)}"
        )
    targets = sinkhorn_knopp(teacher_logits.flatten(0, 1), teacher_temp, sinkhorn_iterations)  # [G*B, K]
    targets = targets.unflatten(0, (n_global, batch))  # [G, B, K]
    log_probs = F.log_softmax(student_logits.float() / student_temp, dim=-1)  # [V, B, K]
    cross = -torch.einsum("gbk,vbk->gvb", targets, log_probs)  # [G, V, B]
    other_view = ~torch.eye(n_global, n_views, dtype=torch.bool, device=cross.device)  # [G, V]
    return cross[other_view].mean()  # [pairs, B] -> scalar
