import hashlib
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from curation.models.registry import ZeroShotConfig, ZeroShotHeadConfig
from curation.models.zero_shot import LinearProbe, PromptEnsemble, ZeroShotScorer

DIM = 16


def stub_encode_texts(prompts: list[str]) -> np.ndarray:
    """A fixed random unit vector per prompt: a stand-in text encoder."""
    rows = []
    for prompt in prompts:
        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(DIM)
        rows.append(v / np.linalg.norm(v))
    return np.asarray(rows, dtype=np.float32)


def refuse_texts(prompts: list[str]) -> np.ndarray:
    raise AssertionError(f"prompts were encoded although a probe replaces them: {prompts}")


def _images(n: int = 5, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(x: np.ndarray, positive: list[str], negative: list[str], scale: float = 100.0) -> list[float]:
    """CLIP prompt ensembling written out: normalise each prompt embedding, average, normalise, softmax."""

    def class_vector(prompts: list[str]) -> list[float]:
        total = [0.0] * DIM
        for p in prompts:
            v = stub_encode_texts([p])[0].astype(float)
            norm = math.sqrt(sum(c * c for c in v))
            total = [t + c / norm for t, c in zip(total, v, strict=True)]
        norm = math.sqrt(sum(t * t for t in total))
        return [t / norm for t in total]

    pos, neg = class_vector(positive), class_vector(negative)
    out = []
    for row in x.astype(float):
        row = row / math.sqrt(sum(c * c for c in row))
        lp = scale * sum(a * b for a, b in zip(row, pos, strict=True))
        ln = scale * sum(a * b for a, b in zip(row, neg, strict=True))
        out.append(math.exp(lp) / (math.exp(lp) + math.exp(ln)))
    return out


def test_scores_equal_a_brute_force_softmax_over_ensemble_means():
    cfg = ZeroShotConfig()
    x = _images()
    scores = ZeroShotScorer.from_config(cfg, stub_encode_texts).score(x)
    assert set(scores) == {"realism", "text_overlay"}
    for name in scores:
        head = getattr(cfg, name)
        assert scores[name].shape == (5,) and scores[name].dtype == np.float32
        np.testing.assert_allclose(scores[name], brute_force(x, head.positive, head.negative), atol=1e-6)


def test_logit_scale_and_prompts_come_from_config():
    x = _images()
    cfg = ZeroShotConfig(
        realism=ZeroShotHeadConfig(positive=["a", "b"], negative=["c"]),
        text_overlay=ZeroShotHeadConfig(positive=["d"], negative=["e", "f", "g"]),
        logit_scale=10.0,
    )
    scores = ZeroShotScorer.from_config(cfg, stub_encode_texts).score(x)
    np.testing.assert_allclose(scores["realism"], brute_force(x, ["a", "b"], ["c"], 10.0), atol=1e-6)
    np.testing.assert_allclose(scores["text_overlay"], brute_force(x, ["d"], ["e", "f", "g"], 10.0), atol=1e-6)
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        PromptEnsemble.from_prompts(["a"], [], stub_encode_texts)


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_linear_probe_file_replaces_the_prompts(tmp_path, fmt):
    rng = np.random.default_rng(3)
    weight, bias = rng.standard_normal(DIM).astype(np.float32), np.float32(0.25)
    state = {"weight": torch.from_numpy(weight), "bias": torch.tensor(bias)}
    path = tmp_path / f"realism.{fmt}"
    torch.save(state, path) if fmt == "pt" else save_file(state, str(path))
    cfg = ZeroShotConfig(
        realism=ZeroShotHeadConfig(positive=["never"], negative=["used"], probe=str(path)),
        text_overlay=ZeroShotHeadConfig(probe=str(path)),
    )
    x = _images()
    scores = ZeroShotScorer.from_config(cfg, refuse_texts).score(x)
    expected = [1 / (1 + math.exp(-(float(np.dot(w_x, weight)) + float(bias)))) for w_x in x.astype(float)]
    np.testing.assert_allclose(scores["realism"], expected, atol=1e-6)
    np.testing.assert_array_equal(scores["text_overlay"], scores["realism"])


def test_probe_in_linear_layer_layout_and_bad_probes(tmp_path):
    layer = torch.nn.Linear(DIM, 1)
    path = tmp_path / "linear.pt"
    torch.save(layer.state_dict(), path)  # weight [1, D], bias [1]
    x = _images()
    with torch.no_grad():
        expected = torch.sigmoid(layer(torch.from_numpy(x)))[:, 0].numpy()
    np.testing.assert_allclose(LinearProbe.load(path).score(x), expected, atol=1e-6)
    torch.save({"w": torch.zeros(DIM), "bias": torch.zeros(())}, tmp_path / "keys.pt")
    with pytest.raises(ValueError, match=r"exactly 'weight' and 'bias', got \['bias', 'w'\]"):
        LinearProbe.load(tmp_path / "keys.pt")
    with pytest.raises(ValueError, match=r"expected embeddings \[N, 16\], got \[5, 8\]"):
        LinearProbe.load(path).score(_images()[:, :8])
    missing = ZeroShotConfig(realism=ZeroShotHeadConfig(probe=str(tmp_path / "nope.safetensors")))
    with pytest.raises(FileNotFoundError, match=r"models\.zero_shot\.realism\.probe: .*nope\.safetensors"):
        ZeroShotScorer.from_config(missing, stub_encode_texts)


def test_scores_stay_finite_for_extreme_logits():
    x = _images()
    ensemble = PromptEnsemble(stub_encode_texts(["a"]), stub_encode_texts(["b"]), logit_scale=1e4)
    assert np.isfinite(ensemble.score(x)).all()
    probe = LinearProbe(np.full(DIM, 1e4, np.float32), 0.0)
    assert np.isfinite(probe.score(x)).all() and set(np.unique(probe.score(x))) <= {0.0, 1.0}
