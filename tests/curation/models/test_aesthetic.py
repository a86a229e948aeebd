import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from curation.models.aesthetic import AestheticMLP, load_aesthetic
from curation.models.registry import LAION_AESTHETIC_NAME, AestheticConfig

# The published checkpoint's keys and shapes for CLIP ViT-L/14 (improved-aesthetic-predictor, MLP.layers).
PUBLISHED = {
    "layers.0.weight": (1024, 768),
    "layers.0.bias": (1024,),
    "layers.2.weight": (128, 1024),
    "layers.2.bias": (128,),
    "layers.4.weight": (64, 128),
    "layers.4.bias": (64,),
    "layers.6.weight": (16, 64),
    "layers.6.bias": (16,),
    "layers.7.weight": (1, 16),
    "layers.7.bias": (1,),
}


def _published_state(seed: int = 0, shapes: dict = PUBLISHED) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.05 for k, shape in shapes.items()}


def _embeddings(n: int, dim: int, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _reference(state: dict[str, torch.Tensor], x: np.ndarray) -> np.ndarray:
    """The published forward pass written out: five affine maps, no activations (dropout is off at inference)."""
    h = torch.from_numpy(x).double()
    for i in (0, 2, 4, 6, 7):
        h = h @ state[f"layers.{i}.weight"].double().T + state[f"layers.{i}.bias"].double()
    return h[:, 0].numpy()


def test_layout_is_the_published_one():
    assert {k: tuple(v.shape) for k, v in AestheticMLP(768).state_dict().items()} == PUBLISHED
    dropouts = [m.p for m in AestheticMLP().layers if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.2, 0.2, 0.1]


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_published_state_dict_loads_and_scores_like_the_reference(tmp_path, fmt):
    state = _published_state()
    if fmt == "pth":  # as the LAION file: torch.save of the state dict
        path = tmp_path / LAION_AESTHETIC_NAME
        torch.save(state, path)
    else:
        path = tmp_path / "aesthetic.safetensors"
        save_file(state, str(path))
    predictor = load_aesthetic(AestheticConfig(weights=str(path)))
    x = _embeddings(6, 768)
    scores = predictor.score(x)
    assert scores.shape == (6,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, _reference(state, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(predictor.score(x), scores)  # dropout is off
    np.testing.assert_allclose(predictor.score(3 * x.astype(np.float16)), scores, atol=1e-3)  # re-normalised


def test_wrong_keys_fail_with_a_clear_error(tmp_path):
    state = {f"model.{k}": v for k, v in _published_state().items()}  # e.g. a wrapper's prefix
    path = tmp_path / "prefixed.pth"
    torch.save(state, path)
    expected = r"prefixed\.pth is not an improved-aesthetic-predictor state dict.*missing layers\.0\.bias.*unexpected"
    with pytest.raises(ValueError, match=expected):
        load_aesthetic(AestheticConfig(weights=str(path)))


def test_wrong_shapes_fail_with_a_clear_error(tmp_path):
    shapes = {**PUBLISHED, "layers.0.weight": (1024, 512)}  # trained on a 512-d CLIP
    path = tmp_path / "b32.pth"
    torch.save(_published_state(shapes=shapes), path)
    with pytest.raises(ValueError, match=r"layers\.0\.weight: \(1024, 512\) \(expected \(1024, 768\)\).*input_dim"):
        load_aesthetic(AestheticConfig(weights=str(path)))
    assert load_aesthetic(AestheticConfig(weights=str(path), input_dim=512)).score(_embeddings(2, 512)).shape == (2,)


def test_files_that_are_not_state_dicts_are_refused(tmp_path):
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_aesthetic(AestheticConfig(weights=str(listed)))
    pickled = tmp_path / "object.pth"
    pickled.write_bytes(pickle.dumps(object(), protocol=2))
    with pytest.raises(ValueError, match="weights_only=True"):
        load_aesthetic(AestheticConfig(weights=str(pickled)))


def test_random_init_is_deterministic_and_checks_its_input(tmp_path):
    cfg = AestheticConfig(weights=None, input_dim=64, seed=0)
    x = _embeddings(4, 64)
    a, b = load_aesthetic(cfg).score(x), load_aesthetic(cfg).score(x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(load_aesthetic(AestheticConfig(weights=None, input_dim=64, seed=1)).score(x), a)
    with pytest.raises(ValueError, match=r"expected embeddings \[N, 64\], got \[4, 32\]"):
        load_aesthetic(cfg).score(_embeddings(4, 32))
    with pytest.raises(FileNotFoundError, match=r"models\.aesthetic\.weights: .*not found at"):
        load_aesthetic(AestheticConfig(weights=str(tmp_path / LAION_AESTHETIC_NAME)))
