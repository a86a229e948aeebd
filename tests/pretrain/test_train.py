"""The pretraining loop on the tiny model: the joint loss goes down, and a resumed run equals an uninterrupted one."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from common.training.checkpoint import latest_checkpoint
from pretrain.objective import ObjectiveConfig
from pretrain.train import FixedBatches, LoopConfig, OptimConfig, train

OBJECTIVE = ObjectiveConfig(
    backbone="tiny", decoder_dim=32, decoder_depth=1, decoder_heads=2, prototypes=64, head_hidden=64,
    head_bottleneck=16, koleo_weight=0.1,
)  # fmt: skip


def batches(n: int = 2, b: int = 4, seed: int = 0) -> FixedBatches:
    gen = torch.Generator().manual_seed(seed)

    # Smooth random images (upsampled noise) so per-patch pixels have structure to reconstruct.
    def views(count, h, w):
        low = torch.rand(count, b, 3, h // 8, w // 8, generator=gen)
        return torch.nn.functional.interpolate(low.flatten(0, 1), size=(h, w), mode="bilinear").unflatten(0, (count, b))

    return FixedBatches([{"global": views(2, 64, 48), "local": views(2, 32, 32)} for _ in range(n)])


def config(steps: int, **kwargs) -> LoopConfig:
    return LoopConfig(
        steps=steps, objective=OBJECTIVE, optim=OptimConfig(lr=2e-3, warmup_steps=5), teacher_temp_warmup_steps=5,
        device="cpu", **kwargs,
    )  # fmt: skip


def test_tiny_model_drives_the_joint_loss_down(tmp_path):
    torch.set_num_threads(1)
    run = train(config(60, checkpoint_every=1000), batches(), tmp_path)
    losses = [m["loss"] for m in run.metrics]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 61))
    assert {"loss_mae", "loss_cl", "loss_koleo", "lr", "momentum", "teacher_temp", "grad_norm"} <= set(rows[0])
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_continues_bit_for_bit(tmp_path):
    torch.set_num_threads(1)
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(config(6, checkpoint_every=1000), batches(), whole)
    train(config(6, checkpoint_every=2), batches(), split, stop_at=3)  # stopped between two checkpoints
    train(config(6, checkpoint_every=2), batches(), split, resume=True)
    a = latest_checkpoint(whole) / "model.safetensors"
    b = latest_checkpoint(split) / "model.safetensors"
    left, right = load_file(a), load_file(b)
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), key


def test_activation_checkpointing_gives_the_same_step(tmp_path):
    torch.set_num_threads(1)
    plain = train(config(6, checkpoint_every=1000, tensorboard=False), batches(), tmp_path / "a", stop_at=2)
    cfg = config(6, checkpoint_every=1000, tensorboard=False)
    cfg.objective = ObjectiveConfig(**{**OBJECTIVE.__dict__, "grad_checkpointing": True})
    checkpointed = train(cfg, batches(), tmp_path / "b", stop_at=2)
    for a, b in zip(plain.metrics, checkpointed.metrics, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["grad_norm"] == pytest.approx(
            b["grad_norm"], rel=1e-4
        )


def test_a_non_finite_loss_skips_the_update_and_is_counted(tmp_path):
    torch.set_num_threads(1)
    source = batches()
    source.batches[0] = {**source.batches[0], "global": source.batches[0]["global"].clone()}
    source.batches[0]["global"][0, 0, 0, 0, 0] = float("nan")
    run = train(config(6, checkpoint_every=1000, tensorboard=False), source, tmp_path)
    assert run.skipped_nonfinite == 3  # steps 1, 3 and 5 use batch 0
    assert [m.get("skipped", False) for m in run.metrics] == [True, False] * 3
    assert all(math.isfinite(m["loss"]) for m in run.metrics[1::2])


def test_the_knn_probe_runs_every_n_steps_on_the_teacher(tmp_path):
    import numpy as np
    import skimage.data
    from PIL import Image

    from pretrain.probe import ProbeConfig

    torch.set_num_threads(1)
    for name in ("astronaut", "coffee"):
        (tmp_path / "probe" / name).mkdir(parents=True)
        image = Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB")
        for i, box in enumerate([(0, 0, 256, 256), (256, 0, 512, 256), (0, 256, 256, 512)]):
            image.crop(box).save(tmp_path / "probe" / name / f"{i}.jpg")
    cfg = config(6, checkpoint_every=1000, tensorboard=False)
    cfg.probe = ProbeConfig(folder=str(tmp_path / "probe"), every=2, k=3, image_size=(32, 32))
    run = train(cfg, batches(), tmp_path / "run", stop_at=4)
    assert ["probe_top1" in m for m in run.metrics] == [False, True, False, True]
    probed = run.metrics[1]
    assert probed["probe_queries"] == 6 and probed["probe_classes"] == 2 and 0.0 <= probed["probe_top1"] <= 100.0
