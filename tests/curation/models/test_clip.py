import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from curation.models.clip import ClipEncoder, load_clip
from curation.models.registry import ClipConfig, resolve_precision, tiny_profile
from curation.sample_corpus.sources import photo_path

TINY = tiny_profile().clip


@pytest.fixture(scope="module")
def encoder() -> ClipEncoder:
    return load_clip(TINY)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    # camera is grayscale: the encoder converts it to RGB
    return [Image.open(photo_path(name)) for name in ("bus", "zidane", "camera")]


def _assert_unit_rows(x: np.ndarray, n: int, dim: int) -> None:
    assert x.shape == (n, dim) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-6)


def test_tiny_clip_encodes_images_and_prompts_to_unit_vectors(encoder, photos, no_network):
    dim = TINY.arch.embed_dim
    assert encoder.embed_dim == dim
    _assert_unit_rows(encoder.encode_images(photos), 3, dim)
    prompts = ["a photo of a person", "a painting of a person", "a photo with a watermark " * 30]  # > 77 tokens
    texts = encoder.encode_texts(prompts)
    _assert_unit_rows(texts, 3, dim)
    assert not np.allclose(texts[0], texts[1])  # the bundled tokenizer gives different prompts different tokens
    assert encoder.encode_images([]).shape == (0, dim) and encoder.encode_texts([]).shape == (0, dim)


def test_batching_and_numpy_input_do_not_change_embeddings(encoder, photos):
    whole = encoder.encode_images(photos)
    one_by_one = ClipEncoder(encoder.model, encoder.preprocess, encoder.tokenizer, encoder.device, batch_size=1)
    np.testing.assert_allclose(one_by_one.encode_images(photos), whole, atol=1e-5)
    arrays = [np.asarray(im) for im in photos]  # RGB, RGB, grayscale HxW
    np.testing.assert_allclose(encoder.encode_images(arrays), whole, atol=1e-6)
    with pytest.raises(ValueError, match="RGB uint8"):
        encoder.encode_images([np.zeros((8, 8, 4), np.uint8)])


def test_random_init_is_deterministic_given_the_seed(encoder, photos, no_network):
    again = load_clip(TINY).encode_images(photos)
    np.testing.assert_array_equal(again, encoder.encode_images(photos))
    other = load_clip(replace(TINY, seed=1)).encode_images(photos)
    assert not np.allclose(other, again, atol=1e-3)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_checkpoint_path_loads_the_saved_weights(encoder, photos, tmp_path, suffix, no_network):
    """The production path for a checkpoint given by path: open_clip's loader with weights_only."""
    state = {k: v.detach().clone().contiguous() for k, v in encoder.model.state_dict().items()}
    path = tmp_path / f"tiny{suffix}"
    torch.save(state, path) if suffix == ".pt" else save_file(state, str(path))
    loaded = load_clip(replace(TINY, pretrained=str(path), seed=7))  # a different seed: the weights must come from disk
    np.testing.assert_allclose(loaded.encode_images(photos), encoder.encode_images(photos), atol=1e-6)


def test_uncached_tag_offline_fails_at_once_naming_the_repo_and_key(tmp_path, no_network):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=r"models\.clip\.pretrained: .*timm/vit_large_patch14_clip_224\.openai"):
        load_clip(ClipConfig(cache_dir=str(tmp_path)))
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("precision", ["bf16", "amp_bf16"])
def test_low_precision_still_returns_float32_unit_vectors(encoder, photos, precision):
    low = load_clip(replace(TINY, precision=precision))
    images, texts = low.encode_images(photos), low.encode_texts(["a photo of a person"])
    _assert_unit_rows(images, 3, TINY.arch.embed_dim)
    _assert_unit_rows(texts, 1, TINY.arch.embed_dim)
    assert (np.sum(images * encoder.encode_images(photos), axis=1) > 0.95).all()  # bf16 rounding, same model


def test_auto_precision_is_fp16_on_cuda_and_fp32_on_cpu(encoder, photos):
    assert TINY.precision == "auto"
    assert [resolve_precision("auto", d) for d in ("cuda:0", "cuda", "cpu")] == ["fp16", "fp16", "fp32"]
    assert resolve_precision("bf16", "cuda:0") == "bf16"  # an explicit choice stands
    exact = load_clip(replace(TINY, precision="fp32", device="cpu"))
    assert encoder.pixel_dtype == torch.float32 and not encoder.autocast
    np.testing.assert_array_equal(encoder.encode_images(photos), exact.encode_images(photos))  # CPU: unchanged
