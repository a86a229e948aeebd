"""open_clip image and text encoders: L2-normalised float32 embeddings, batched, on CUDA when available."""

import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from curation.models.registry import (
    ClipConfig,
    TinyClipArch,
    clip_weights_problem,
    env_flag,
    resolve_device,
    resolve_precision,
)

log = logging.getLogger(__name__)

ImageLike = Image.Image | np.ndarray  # RGB (numpy: HxWx3 uint8, or HxW grayscale)
# Low-precision open_clip weights take pixels of their own type.
_PIXEL_DTYPES = {
    "fp16": torch.float16,
    "pure_fp16": torch.float16,
    "bf16": torch.bfloat16,
    "pure_bf16": torch.bfloat16,
}


def register_clip_arch(name: str, arch: TinyClipArch) -> None:
    """Make `name` an open_clip architecture: open_clip reads architectures from JSON files, so one is written."""
    import open_clip

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.json"
        path.write_text(json.dumps(arch.open_clip_config()))
        open_clip.add_model_config(path)  # parsed into open_clip's registry now; the file is not needed after
    if name not in open_clip.list_models():
        raise RuntimeError(f"open_clip did not register the architecture {name}")


class ClipEncoder:
    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: Callable,
        tokenizer: Callable,
        device: str,
        batch_size: int,
        *,
        precision: str = "fp32",
    ) -> None:
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        self.autocast = precision.startswith("amp")  # open_clip "amp*": fp32 weights, mixed-precision compute
        self.pixel_dtype = _PIXEL_DTYPES.get(precision, torch.float32)  # as open_clip.get_input_dtype

    @property
    def embed_dim(self) -> int:
        return int(self.model.visual.output_dim)

    def encode_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        """[N, D] float32, unit L2 norm."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            pixels = torch.stack([self.preprocess(_to_pil(im)) for im in images[start : start + self.batch_size]])
            with self._context():
                chunks.append(_normalise(self.model.encode_image(pixels.to(self.device, self.pixel_dtype))))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.embed_dim), np.float32)

    def encode_texts(self, prompts: Sequence[str]) -> np.ndarray:
        """[N, D] float32, unit L2 norm."""
        chunks = []
        for start in range(0, len(prompts), self.batch_size):
            tokens = self.tokenizer(list(prompts[start : start + self.batch_size]))
            with self._context():
                chunks.append(_normalise(self.model.encode_text(tokens.to(self.device))))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.embed_dim), np.float32)

    @contextmanager
    def _context(self) -> Iterator[None]:
        device_type = torch.device(self.device).type
        with torch.inference_mode(), torch.autocast(device_type, enabled=self.autocast):
            yield


def load_clip(cfg: ClipConfig, *, key: str = "models.clip.pretrained") -> ClipEncoder:
    """The open_clip model, eval preprocess and tokenizer of `cfg`; random init when `cfg.pretrained` is ""."""
    problem = clip_weights_problem(cfg, key, offline=env_flag("HF_HUB_OFFLINE"))
    if problem is not None:
        raise FileNotFoundError(problem)
    import open_clip

    if cfg.arch is not None:
        register_clip_arch(cfg.model, cfg.arch)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    if not cfg.pretrained:
        log.warning("%s: %s has random weights (seed %d)", key, cfg.model, cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model, _, preprocess = open_clip.create_model_and_transforms(
            cfg.model,
            pretrained=cfg.pretrained or None,
            precision=precision,
            device=device,
            force_quick_gelu=cfg.quick_gelu,
            cache_dir=cfg.cache_dir,
            weights_only=True,
        )
    tokenizer = open_clip.get_tokenizer(cfg.model, cache_dir=cfg.cache_dir)
    return ClipEncoder(model, preprocess, tokenizer, device, cfg.batch_size, precision=precision)


def _normalise(features: torch.Tensor) -> np.ndarray:
    # In float32 after the cast, so fp16/bf16 models still give unit norms to float32 precision.
    features = features.float()
    return torch.nn.functional.normalize(features, dim=-1).cpu().numpy()


def _to_pil(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"expected an RGB uint8 array [H, W, 3], got {array.dtype} {list(array.shape)}")
    return Image.fromarray(array).convert("RGB")
