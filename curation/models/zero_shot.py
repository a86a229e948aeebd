"""Zero-shot scores on CLIP image embeddings: P(positive) from two prompt ensembles (realism: photo vs. painting,
render, cartoon ...; text overlay: text, watermark, caption, logo vs. clean photo), or from a linear probe."""

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from curation.models.mlp_weights import read_state_dict
from curation.models.registry import ZERO_SHOT_HEADS, ZeroShotConfig, ZeroShotHeadConfig, probe_problem

log = logging.getLogger(__name__)

TextEncoder = Callable[[Sequence[str]], np.ndarray]  # prompts -> [N, D] L2-normalised, e.g. ClipEncoder.encode_texts


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _embeddings(embeddings: np.ndarray, dim: int) -> np.ndarray:
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected embeddings [N, {dim}], got {list(x.shape)}")
    return _unit(x)  # stored embeddings are float16: re-normalised so cosines stay cosines


class PromptEnsemble:
    """CLIP zero-shot with prompt ensembling: each class is the re-normalised mean of its normalised prompt
    embeddings; P(positive) = softmax(logit_scale · cos(x, class))[positive]."""

    def __init__(self, positive: np.ndarray, negative: np.ndarray, logit_scale: float = 100.0) -> None:
        if len(positive) == 0 or len(negative) == 0:
            raise ValueError("a prompt ensemble needs at least one positive and one negative prompt")
        self.classes = np.stack([_unit(_unit(positive).mean(0)), _unit(_unit(negative).mean(0))])  # [2, D]
        self.logit_scale = logit_scale

    @classmethod
    def from_prompts(
        cls, positive: Sequence[str], negative: Sequence[str], encode_texts: TextEncoder, logit_scale: float = 100.0
    ) -> "PromptEnsemble":
        return cls(encode_texts(list(positive)), encode_texts(list(negative)), logit_scale)

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """[N] float32 in [0, 1]."""
        logits = self.logit_scale * _embeddings(embeddings, self.classes.shape[1]) @ self.classes.T  # [N, 2]
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return (probs[:, 0] / probs.sum(axis=1)).astype(np.float32)


class LinearProbe:
    """sigmoid(w · x + b) on normalised embeddings; replaces a prompt ensemble when a probe file is configured."""

    def __init__(self, weight: np.ndarray, bias: float) -> None:
        self.weight = np.asarray(weight, dtype=np.float64).reshape(-1)
        self.bias = float(bias)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LinearProbe":
        """From safetensors or a weights_only torch file holding `weight` [D] (or [1, D]) and `bias` [] (or [1])."""
        state = read_state_dict(path)
        if set(state) != {"weight", "bias"}:
            raise ValueError(f"linear probe {path} must hold exactly 'weight' and 'bias', got {sorted(state)}")
        weight, bias = state["weight"].float().numpy(), state["bias"].float().numpy()
        if weight.ndim not in (1, 2) or (weight.ndim == 2 and weight.shape[0] != 1) or bias.size != 1:
            raise ValueError(
                f"linear probe {path}: weight must be [D] and bias a scalar, got {weight.shape}, {bias.shape}"
            )
        return cls(weight, bias.item())

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        z = _embeddings(embeddings, self.weight.shape[0]) @ self.weight + self.bias
        return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # the sigmoid, without overflow for large |z|


Head = PromptEnsemble | LinearProbe


def build_head(
    cfg: ZeroShotHeadConfig, encode_texts: TextEncoder, *, logit_scale: float = 100.0, key: str = "zero_shot"
) -> Head:
    if cfg.probe is not None:
        problem = probe_problem(cfg, f"{key}.probe")
        if problem is not None:
            raise FileNotFoundError(problem)
        log.info("%s: linear probe %s replaces the prompts", key, cfg.probe)
        return LinearProbe.load(cfg.probe)
    return PromptEnsemble.from_prompts(cfg.positive, cfg.negative, encode_texts, logit_scale)


class ZeroShotScorer:
    """The configured heads (realism, text_overlay), each giving P(positive) per image."""

    def __init__(self, heads: dict[str, Head]) -> None:
        self.heads = heads

    @classmethod
    def from_config(
        cls, cfg: ZeroShotConfig, encode_texts: TextEncoder, *, key: str = "models.zero_shot"
    ) -> "ZeroShotScorer":
        return cls(
            {
                name: build_head(getattr(cfg, name), encode_texts, logit_scale=cfg.logit_scale, key=f"{key}.{name}")
                for name in ZERO_SHOT_HEADS
            }
        )

    def score(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        return {name: head.score(embeddings) for name, head in self.heads.items()}
