import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from common.image_decode import DecodeConfig
from curation.models.registry import tiny_profile
from curation.models.yolo import PersonBoxes, PersonPoses
from curation.stages.aesthetic import AestheticStage, AestheticStageConfig
from curation.stages.base import REJECT_REASON, WOULD_REJECT
from curation.stages.clip_embed import ClipStage, ClipStageConfig, clip_column
from curation.stages.detect import DetectStage, DetectStageConfig
from curation.stages.head_pose import HeadPoseStage, HeadPoseStageConfig
from curation.stages.zero_shot import ZeroShotStage, ZeroShotStageConfig

MODELS = tiny_profile()
DECODE = DecodeConfig(min_short_side=32)


def jpeg(size=(64, 48), colour=(200, 120, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG")
    return out.getvalue()


def batch(n: int, reasons=None) -> pa.Table:
    return pa.table(
        {
            "key": [f"k{i}" for i in range(n)],
            "image": [jpeg() for _ in range(n)],
            REJECT_REASON: pa.array(reasons or [None] * n, pa.string()),
        }
    )


class StubDetector:
    """Returns fixed boxes per call, in order: the rule is tested without a model."""

    def __init__(self, outputs):
        self.outputs = list(outputs)

    def __call__(self, images):
        return [self.outputs.pop(0) for _ in images]


def boxes(*pairs):
    return PersonBoxes(
        np.array([b for b, _ in pairs], np.float32).reshape(-1, 4), np.array([c for _, c in pairs], np.float32)
    )


@pytest.mark.parametrize("mode", ["reject", "audit"])
def test_detect_stage_applies_the_sapiens2_rule(mode):
    stage = DetectStage(DetectStageConfig(mode=mode), MODELS.detector, DECODE)
    stage._ready = True  # the stub replaces the model setup() would load
    stage.detector = StubDetector(
        [
            boxes(([0, 0, 384, 900], 0.5)),  # kept: both numbers exactly at the threshold
            boxes(([0, 0, 383, 900], 0.99)),  # one pixel short
            boxes(([0, 0, 900, 900], 0.49)),  # big but unsure
            boxes(),  # nobody
            boxes(([0, 0, 100, 120], 0.9), ([10, 10, 510, 410], 0.7)),  # the second box qualifies
        ]
    )
    out = stage(batch(5))
    fails = [False, True, True, True, False]
    marked = ["no_person" if f else None for f in fails]
    if mode == "reject":
        assert out[REJECT_REASON].to_pylist() == marked
        assert out[WOULD_REJECT].to_pylist() == [None] * 5
    else:
        assert out[REJECT_REASON].to_pylist() == [None] * 5
        assert out[WOULD_REJECT].to_pylist() == [[m] if m else None for m in marked]
    assert out["max_person_short_side"].to_pylist() == [384.0, 383.0, 0.0, 0.0, 400.0]
    persons = out["persons"].to_pylist()
    assert [len(p) for p in persons] == [1, 1, 1, 0, 2]
    assert persons[4][1] == {"box": [10.0, 10.0, 510.0, 410.0], "conf": pytest.approx(0.7)}


def test_head_pose_uses_the_largest_person():
    stage = HeadPoseStage(HeadPoseStageConfig(), MODELS.pose, DECODE)
    stage._ready = True
    frontal = [[50, 60, 0.9], [60, 50, 0.9], [40, 50, 0.9], [70, 55, 0.9], [30, 55, 0.9]] + [[0, 0, 0]] * 12
    back = [[0, 0, 0.1]] * 3 + [[70, 55, 0.9], [30, 55, 0.9]] + [[0, 0, 0]] * 12
    small, large = [0, 0, 10, 10], [0, 0, 300, 300]
    stage.estimator = StubDetector(
        [
            PersonPoses(
                np.array([small, large], np.float32), np.array([0.9, 0.8]), np.array([frontal, back], np.float32)
            ),
            PersonPoses(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros((0, 17, 3), np.float32)),
        ]
    )
    out = stage(batch(2))
    assert out["head_pose"].to_pylist() == [
        {"yaw_class": "back", "face_keypoints_visible": 2},
        {"yaw_class": "unknown", "face_keypoints_visible": 0},
    ]


def test_tiny_model_stages_chain_on_real_models():
    """Detection, pose, CLIP, aesthetic and zero-shot with the tiny random models, in audit mode, end to end."""
    rows = batch(3, [None, "too_small", None])
    stages = [
        DetectStage(DetectStageConfig(mode="audit"), MODELS.detector, DECODE),
        HeadPoseStage(HeadPoseStageConfig(), MODELS.pose, DECODE),
        ClipStage(ClipStageConfig(), MODELS.clip, DECODE),
        AestheticStage(AestheticStageConfig(mode="audit"), MODELS.aesthetic),
        ZeroShotStage(ZeroShotStageConfig(mode="audit"), MODELS.zero_shot, MODELS.clip),
    ]
    for stage in stages:
        rows = stage(rows)
    assert rows[REJECT_REASON].to_pylist() == [None, "too_small", None]  # audit mode keeps every row
    assert rows["clip"].type == pa.list_(pa.float16(), MODELS.clip.arch.embed_dim)
    assert rows["clip"].null_count == 1 and rows["aesthetic"].null_count == 1
    kept = rows.filter(pa.array([True, False, True]))
    embeddings = clip_column(kept)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=2e-3)
    np.testing.assert_array_equal(embeddings[0], embeddings[1])  # identical images, identical embeddings
    realism = kept["realism"].to_pylist()
    assert all(0.0 <= r <= 1.0 for r in realism + kept["text_overlay"].to_pylist())
    # Each audit verdict agrees with its recorded score and threshold.
    for r, t, a, would in zip(
        realism,
        kept["text_overlay"].to_pylist(),
        kept["aesthetic"].to_pylist(),
        kept[WOULD_REJECT].to_pylist(),
        strict=True,
    ):
        expected = {"low_aesthetic"} if a < 4.5 else set()
        expected |= {"not_photo"} if r < 0.5 else ({"text_overlay"} if t > 0.5 else set())
        assert set(would or []) - {"no_person"} == expected


def test_heads_without_gpus_load_on_cpu_on_a_gpu_machine(monkeypatch):
    """The heads on the CLIP embedding ask for no GPU: with `device: auto` they must not take one anyway."""
    import torch

    from curation.stages.nsfw import NsfwStage, NsfwStageConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # what an actor on a GPU node sees
    aesthetic = AestheticStage(AestheticStageConfig(), MODELS.aesthetic)
    nsfw = NsfwStage(NsfwStageConfig(), MODELS.nsfw)
    for stage in (aesthetic, nsfw):
        assert stage.resources.num_gpus == 0
        stage.setup()
    assert aesthetic.predictor.device == nsfw.predictor.device == "cpu"
    assert ZeroShotStageConfig().resources.num_gpus == 0


def test_zero_shot_embeds_its_prompts_once_per_actor(monkeypatch):
    import curation.models.clip as clip_module

    dim, texts = MODELS.clip.arch.embed_dim, []

    class Encoder:
        def encode_texts(self, prompts):
            texts.append(len(prompts))
            return np.random.default_rng(len(texts)).normal(size=(len(prompts), dim)).astype(np.float32)

    monkeypatch.setattr(clip_module, "load_clip", lambda cfg: Encoder())
    stage = ZeroShotStage(ZeroShotStageConfig(mode="audit"), MODELS.zero_shot, MODELS.clip)
    embeddings = pa.array([[0.1] * dim] * 3, pa.list_(pa.float16(), dim))
    rows = batch(3).append_column("clip", embeddings)
    for _ in range(3):
        assert stage(rows).num_rows == 3
    assert len(texts) == 4  # setup only: positive and negative prompts of the two heads
