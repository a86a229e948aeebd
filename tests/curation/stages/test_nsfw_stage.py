import numpy as np
import pyarrow as pa
import pytest
import torch

from common.reasons import RejectReason
from curation.models.nsfw import NsfwMLP
from curation.models.registry import NsfwConfig
from curation.stages.base import REJECT_REASON, WOULD_REJECT
from curation.stages.nsfw import NsfwStage, NsfwStageConfig

DIM = 16
MODEL = NsfwConfig(weights=None, input_dim=DIM, seed=7, device="cpu")


def clip_batch(embeddings: np.ndarray, reasons=None) -> pa.Table:
    n = len(embeddings)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    return pa.table(
        {
            "key": [f"k{i}" for i in range(n)],
            "clip": pa.array(unit.astype(np.float16).tolist(), pa.list_(pa.float16(), DIM)),
            REJECT_REASON: pa.array(reasons or [None] * n, pa.string()),
        }
    )


def direct_scores(embeddings16: np.ndarray) -> np.ndarray:
    """The model built by hand from the same seed, run in torch on the stored float16 embeddings."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(MODEL.seed)
        mlp = NsfwMLP(DIM).double().eval()
    x = torch.nn.functional.normalize(torch.from_numpy(embeddings16.astype(np.float64)), dim=-1)
    with torch.inference_mode():
        return mlp(x)[:, 0].float().numpy()


class FixedScores:
    """Stands in for the predictor: the threshold rule is tested on exact values."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, np.float32)

    def score(self, embeddings):
        assert len(embeddings) == len(self.scores)
        return self.scores


def test_scores_equal_a_direct_torch_computation_and_skip_rejected_rows():
    x = np.random.default_rng(0).standard_normal((9, DIM)).astype(np.float32)
    reasons = [None, None, "too_small", None, None, None, None, None, None]
    batch = clip_batch(x, reasons)
    out = NsfwStage(NsfwStageConfig(mode="audit"), MODEL)(batch)
    assert out.schema.field("nsfw").type == pa.float32()
    stored = np.array(batch["clip"].to_pylist(), np.float16)
    expected = direct_scores(stored).tolist()
    expected[2] = None  # an earlier stage rejected it: never scored
    assert out["nsfw"].to_pylist() == expected
    assert out[REJECT_REASON].to_pylist() == reasons


@pytest.mark.parametrize("mode", ["reject", "audit"])
def test_rows_strictly_above_the_threshold_are_nsfw(mode):
    x = np.random.default_rng(1).standard_normal((12, DIM)).astype(np.float32)
    batch = clip_batch(x)
    scores = direct_scores(np.array(batch["clip"].to_pylist(), np.float16))
    threshold = float(np.sort(scores)[5])  # a real score: that row sits exactly on the line and is kept
    out = NsfwStage(NsfwStageConfig(mode=mode, threshold=threshold), MODEL)(batch)
    flagged = [RejectReason.NSFW if s > threshold else None for s in scores.tolist()]
    assert flagged.count(RejectReason.NSFW) == 6
    if mode == "reject":
        assert out[REJECT_REASON].to_pylist() == flagged
        assert out[WOULD_REJECT].to_pylist() == [None] * 12
    else:
        assert out[REJECT_REASON].to_pylist() == [None] * 12
        assert out[WOULD_REJECT].to_pylist() == [[r] if r else None for r in flagged]


def test_threshold_boundary_is_exact():
    just_above = float(np.nextafter(np.float32(0.5), np.float32(1)))
    just_below = float(np.nextafter(np.float32(0.5), np.float32(0)))
    scores = [0.0, just_below, 0.5, just_above, 1.0]
    stage = NsfwStage(NsfwStageConfig(), MODEL)
    assert stage.config.threshold == 0.5 and stage.config.mode == "reject"
    stage._ready = True  # the fixed scores replace the model setup() would load
    stage.predictor = FixedScores(scores)
    out = stage(clip_batch(np.ones((5, DIM), np.float32)))
    assert out["nsfw"].to_pylist() == scores
    assert out[REJECT_REASON].to_pylist() == [None, None, None, "nsfw", "nsfw"]
    assert NsfwStage.reasons == ("nsfw",) and RejectReason.NSFW == "nsfw"
