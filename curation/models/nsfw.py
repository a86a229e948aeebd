"""The LAION CLIP-based NSFW detector: an MLP on L2-normalised CLIP ViT-L/14 embeddings, P(nsfw) in [0, 1].

The layout is the published one (LAION-AI/CLIP-based-NSFW-Detector, the AutoKeras model `clip_autokeras_binary_nsfw`
and its torch port in `src/models.py`, NSFWModel_L14): a feature-wise Normalization (mean, variance), then
Dense(64, relu) → Dense(512, relu) → Dense(256, relu) → Dense(1, sigmoid); no dropout. The keys are the torch port's,
so the published `clip_ViT-L-14_openai_binary_nsfw_head.pth` loads as it is.

Converting the Keras original yourself (`clip_autokeras_binary_nsfw.zip`, a SavedModel) needs TensorFlow and
autokeras; this project does not depend on them. Load it with `load_model(dir, custom_objects=ak.CUSTOM_OBJECTS)`
and map `model.layers[i].weights` to a state dict (Keras Dense kernels are [in, out]: transpose them):

    layers[2] Normalization  mean [768], variance [768] → norm.mean, norm.variance  (its `count` is dropped)
    layers[3] Dense          kernel [768, 64], bias     → linear_1.weight (kernel.T), linear_1.bias
    layers[5] Dense          kernel [64, 512], bias     → linear_2.weight (kernel.T), linear_2.bias
    layers[7] Dense          kernel [512, 256], bias    → linear_3.weight (kernel.T), linear_3.bias
    layers[9] Dense          kernel [256, 1], bias      → linear_4.weight (kernel.T), linear_4.bias

(the indices of LAION's own converter, convert_heads_to_pytorch.py; the layers between are the activations),
then `safetensors.torch.save_file(state, "nsfw.safetensors")`.
"""

import torch
from torch import nn

from curation.models.mlp_weights import EmbeddingScorer, load_scoring_mlp
from curation.models.registry import NsfwConfig, nsfw_weights_problem, resolve_device

KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): Normalization divides by max(sqrt(variance), epsilon)


class FeatureNormalization(nn.Module):
    """Keras' preprocessing Normalization, with the statistics AutoKeras fitted on the training embeddings."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("variance", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.variance.sqrt().clamp_min(KERAS_EPSILON)


class NsfwMLP(nn.Module):
    def __init__(self, input_dim: int = 768) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.norm = FeatureNormalization(input_dim)
        self.linear_1 = nn.Linear(input_dim, 64)
        self.linear_2 = nn.Linear(64, 512)
        self.linear_3 = nn.Linear(512, 256)
        self.linear_4 = nn.Linear(256, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)  # [N, D]
        x = torch.relu(self.linear_1(x))  # [N, 64]
        x = torch.relu(self.linear_2(x))  # [N, 512]
        x = torch.relu(self.linear_3(x))  # [N, 256]
        return torch.sigmoid(self.linear_4(x))  # [N, 1], P(nsfw)


def load_nsfw(cfg: NsfwConfig, *, key: str = "models.nsfw.weights") -> EmbeddingScorer:
    problem = nsfw_weights_problem(cfg, key)
    if problem is not None:
        raise FileNotFoundError(problem)
    return EmbeddingScorer(load_scoring_mlp(NsfwMLP, cfg, key, "a CLIP NSFW detector"), resolve_device(cfg.device))
