import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from curation.models.nsfw import NsfwMLP, load_nsfw
from curation.models.registry import LAION_NSFW_NAME, NsfwConfig, models_profile, tiny_profile

# The published ViT-L/14 head (LAION-AI/CLIP-based-NSFW-Detector, NSFWModel_L14): keys and shapes.
PUBLISHED = {
    "norm.mean": (768,),
    "norm.variance": (768,),
    "linear_1.weight": (64, 768),
    "linear_1.bias": (64,),
    "linear_2.weight": (512, 64),
    "linear_2.bias": (512,),
    "linear_3.weight": (256, 512),
    "linear_3.bias": (256,),
    "linear_4.weight": (1, 256),
    "linear_4.bias": (1,),
}


def _published_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(shape, generator=g) * 0.1 for k, shape in PUBLISHED.items()}
    state["norm.mean"] = torch.randn(768, generator=g) * 0.01
    state["norm.variance"] = torch.rand(768, generator=g) * 1e-3 + 1e-4  # per-feature variance of unit vectors
    return state


def _embeddings(n: int, dim: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _reference(state: dict[str, torch.Tensor], x: np.ndarray) -> np.ndarray:
    """The Keras model written out in numpy: L2 normalise, Normalization, three Dense+ReLU, Dense+sigmoid."""
    s = {k: v.double().numpy() for k, v in state.items()}
    h = x.astype(np.float64)
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    h = (h - s["norm.mean"]) / np.maximum(np.sqrt(s["norm.variance"]), 1e-7)
    for i in (1, 2, 3):
        h = np.maximum(h @ s[f"linear_{i}.weight"].T + s[f"linear_{i}.bias"], 0.0)
    logit = h @ s["linear_4.weight"].T + s["linear_4.bias"]
    return (1.0 / (1.0 + np.exp(-logit)))[:, 0]


def test_production_layout_is_the_published_one():
    cfg = models_profile("production").nsfw
    with torch.device("meta"):  # shapes only: no memory, nothing loaded
        mlp = NsfwMLP(cfg.input_dim)
    assert {k: tuple(v.shape) for k, v in mlp.state_dict().items()} == PUBLISHED
    assert [(m.in_features, m.out_features) for m in mlp.modules() if isinstance(m, torch.nn.Linear)] == [
        (768, 64),
        (64, 512),
        (512, 256),
        (256, 1),
    ]
    assert not any(isinstance(m, torch.nn.Dropout) for m in mlp.modules())


def test_random_init_scores_are_probabilities_and_follow_the_reference():
    cfg = NsfwConfig(weights=None, seed=0)
    predictor = load_nsfw(cfg)
    x = _embeddings(32, 768) * 5  # far from unit length: the predictor re-normalises
    scores = predictor.score(x)
    assert scores.shape == (32,) and scores.dtype == np.float32
    assert ((scores >= 0) & (scores <= 1)).all()
    state = {k: v.float() for k, v in predictor.mlp.state_dict().items()}
    np.testing.assert_allclose(scores, _reference(state, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_state_dict_round_trips_exactly(tmp_path, fmt):
    state = _published_state()
    if fmt == "pth":  # as the published torch port: torch.save of the state dict
        path = tmp_path / LAION_NSFW_NAME
        torch.save(state, path)
    else:
        path = tmp_path / "nsfw.safetensors"
        save_file(state, str(path))
    predictor = load_nsfw(NsfwConfig(weights=str(path)))
    loaded = predictor.mlp.state_dict()
    assert all(torch.equal(loaded[k], state[k].double()) for k in PUBLISHED)
    x = _embeddings(16, 768)
    direct = NsfwMLP(768)
    direct.load_state_dict(state)
    with torch.inference_mode():
        expected = direct.double()(torch.nn.functional.normalize(torch.from_numpy(x).double(), dim=-1))[:, 0]
    np.testing.assert_array_equal(predictor.score(x), expected.float().numpy())
    np.testing.assert_allclose(predictor.score(x), _reference(state, x), rtol=1e-6)
    scores = predictor.score(x)
    assert 0.0 < scores.min() < scores.max() < 1.0  # the fixture's weights give a spread, not a saturated sigmoid


class _Payload:
    """Unpickling this calls open(path, "w"): a file appears if the loader runs arbitrary code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_pickle_with_a_payload_is_refused_without_running_it(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "nsfw.pth"
    torch.save({"linear_1.weight": _Payload(str(target))}, path)
    with pytest.raises(ValueError, match=r"nsfw\.pth is not a torch state dict readable with weights_only=True"):
        load_nsfw(NsfwConfig(weights=str(path)))
    assert not target.exists()
    # The payload is real: a loader that unpickles freely does run it.
    armed = tmp_path / "armed.pth"
    torch.save({"x": _Payload(str(tmp_path / "control"))}, armed)
    torch.load(armed, weights_only=False)
    assert (tmp_path / "control").exists()


def test_wrong_layout_names_every_bad_key(tmp_path):
    state = _published_state()
    state["linear_2.weight"] = torch.zeros(256, 64)
    del state["norm.variance"]
    state["extra"] = torch.zeros(1)
    path = tmp_path / "nsfw.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError) as err:
        load_nsfw(NsfwConfig(weights=str(path)))
    message = str(err.value)
    assert f"models.nsfw.weights={path} is not a CLIP NSFW detector state dict for input size 768" in message
    assert "missing norm.variance" in message and "unexpected extra" in message
    assert "linear_2.weight: (256, 64) (expected (512, 64))" in message and "models.nsfw.input_dim" in message


def test_missing_weights_name_the_file_and_where_to_put_it(tmp_path):
    path = tmp_path / "weights" / LAION_NSFW_NAME
    with pytest.raises(FileNotFoundError) as err:
        load_nsfw(NsfwConfig(weights=str(path)))
    message = str(err.value)
    assert message.startswith(f"models.nsfw.weights: NSFW detector weights {LAION_NSFW_NAME} not found at {path}.")
    assert f"into {path.parent}" in message and f"models.nsfw.weights=/path/to/{LAION_NSFW_NAME}" in message
    assert "github.com/LAION-AI/CLIP-based-NSFW-Detector" in message


def test_tiny_profile_is_seeded_and_checks_its_input():
    cfg = tiny_profile(seed=0).nsfw
    assert cfg.weights is None and cfg.input_dim == tiny_profile().clip.arch.embed_dim == 64
    x = _embeddings(4, 64)
    a, b = load_nsfw(cfg).score(x), load_nsfw(cfg).score(x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(load_nsfw(tiny_profile(seed=1).nsfw).score(x), a)
    with pytest.raises(ValueError, match=r"expected embeddings \[N, 64\], got \[4, 32\]"):
        load_nsfw(cfg).score(_embeddings(4, 32))
