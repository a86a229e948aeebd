"""The Sapiens2 pretraining objective as one module: L = L_MAE + λ·L_CL (DESIGN.md "Pretraining objective").

Student: the backbone sees each global view with 75 % of its patches hidden; its visible patch tokens go to the
MAE decoder (pixels of the hidden patches), its [CLS] to the DINO head. Local views go through the student whole.
Teacher: an EMA copy of backbone + head that sees the global views whole and gives Sinkhorn-centred targets.
"""

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from common.config import bounded
from common.models import create_backbone
from pretrain.dino_head import DINOHead
from pretrain.losses.dino_loss import dino_loss
from pretrain.losses.koleo_loss import koleo_loss
from pretrain.losses.mae_loss import mae_loss
from pretrain.mae_decoder import MAEDecoder


@dataclass
class ObjectiveConfig:
    backbone: str = "tiny"  # a size of common.models.sizes.SIZES
    decoder_dim: int = bounded(512, ge=1)  # MAE's light decoder
    decoder_depth: int = bounded(8, ge=1)
    decoder_heads: int = bounded(16, ge=1)
    prototypes: int = bounded(65_536, ge=1)  # DINOv2's K; small for tests and the demo
    head_hidden: int = bounded(2048, ge=1)
    head_bottleneck: int = bounded(256, ge=1)
    cl_weight: float = bounded(1.0, ge=0)  # λ in L = L_MAE + λ·L_CL
    koleo_weight: float = bounded(0.0, ge=0)  # DINOv2 used 0.1; off by default, optional per the design
    student_temp: float = bounded(0.1, gt=0)  # DINO / DINOv2
    drop_path_rate: float = bounded(0.0, ge=0, lt=1)
    grad_checkpointing: bool = False  # recompute block activations in backward: less memory, ~30 % more compute


class Sapiens2Pretrainer(nn.Module):
    def __init__(self, cfg: ObjectiveConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.student = create_backbone(
            cfg.backbone, drop_path_rate=cfg.drop_path_rate, grad_checkpointing=cfg.grad_checkpointing
        )
        dim, self.patch = self.student.dim, self.student.patch_size
        self.decoder = MAEDecoder(
            dim, self.patch, dim=cfg.decoder_dim, depth=cfg.decoder_depth, num_heads=cfg.decoder_heads
        )
        self.student_head = DINOHead(
            dim, cfg.prototypes, hidden_dim=cfg.head_hidden, bottleneck_dim=cfg.head_bottleneck
        )
        self.teacher = copy.deepcopy(self.student)
        self.teacher_head = copy.deepcopy(self.student_head)
        for p in [*self.teacher.parameters(), *self.teacher_head.parameters()]:
            p.requires_grad_(False)

    def student_modules(self) -> nn.ModuleDict:
        """What the teacher tracks: the EMA pairs student -> teacher by these names."""
        return nn.ModuleDict({"backbone": self.student, "head": self.student_head})

    def shard_units(self) -> list[nn.Module]:
        """The modules FSDP gathers one at a time: every transformer block of student, teacher and decoder."""
        return [*self.student.blocks, *self.teacher.blocks, *self.decoder.blocks]

    def teacher_modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"backbone": self.teacher, "head": self.teacher_head})

    def forward(self, global_views: Tensor, local_views: Tensor | None, masks: Tensor, teacher_temp: float) -> dict:
        """global_views [G, B, 3, H, W], local_views [L, B, 3, h, w] or None, masks [G, B, N] (True = hidden).
        Returns every loss term; `loss` is the one to minimise."""
        g, b = global_views.shape[:2]
        h, w = global_views.shape[-2] // self.patch, global_views.shape[-1] // self.patch
        # Student on masked global views, all G at once: [G·B, ...]
        out = self.student.forward_features(global_views.flatten(0, 1), masks.flatten(0, 1))
        pred = self.decoder(out["x_norm_patchtokens"], out["ids_keep"], (h, w))  # [G·B, N, p·p·3]
        loss_mae = mae_loss(pred, global_views.flatten(0, 1), masks.flatten(0, 1), self.patch)
        student_cls = [out["x_norm_clstoken"]]  # [G·B, D]
        if local_views is not None and len(local_views):
            student_cls.append(self.student(local_views.flatten(0, 1)))  # [L·B, D]
        cls = torch.cat(student_cls)  # [(G+L)·B, D]
        student_logits = self.student_head(cls).unflatten(0, (-1, b))  # [G+L, B, K]
        with torch.no_grad():
            teacher_cls = self.teacher(global_views.flatten(0, 1))  # [G·B, D]
            teacher_logits = self.teacher_head(teacher_cls).unflatten(0, (g, b))  # [G, B, K]
        loss_cl = dino_loss(
            student_logits, teacher_logits, teacher_temp=teacher_temp, student_temp=self.cfg.student_temp
        )
        loss_koleo = (
            torch.stack([koleo_loss(c) for c in out["x_norm_clstoken"].unflatten(0, (g, b))]).mean()
            if self.cfg.koleo_weight > 0 and b > 1
            else loss_mae.new_zeros(())
        )
        loss = loss_mae + self.cfg.cl_weight * (loss_cl + self.cfg.koleo_weight * loss_koleo)
        return {"loss": loss, "loss_mae": loss_mae, "loss_cl": loss_cl, "loss_koleo": loss_koleo}
