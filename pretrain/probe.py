"""Weighted k-NN probe on [CLS] features over a labelled image folder: a cheap sanity metric during pretraining.

Folder layout (ImageFolder style): `<root>/<class>/<image files>`. When both `<root>/train/` and `<root>/val/` exist,
train is the memory bank and val the queries; otherwise every image is queried against all the others
(leave-one-out). Scoring follows DINO's weighted k-NN: the k most cosine-similar bank entries vote for their class
with weight exp(sim / T).
"""

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor, nn
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from common.config import bounded, check_ranges
from common.image_decode import DecodeConfig, decode_image
from pretrain.data.views import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

LAYOUT = "<root>/<class>/<images>, or <root>/train/<class>/<images> with <root>/val/<class>/<images>"
# Probe sets are often small images (CIFAR-like thumbnails, crops of people): drop the curation size rules and keep
# only the decompression-bomb cap.
_PROBE_DECODE = DecodeConfig(min_short_side=1, max_aspect_ratio=math.inf)


@dataclass
class ProbeConfig:
    folder: str | None = None  # labelled folder, see LAYOUT
    every: int = bounded(0, ge=0)  # training steps between probes; 0 = off
    k: int = bounded(20, ge=1)  # DINO's k-NN eval uses 20
    temperature: float = bounded(0.07, gt=0)  # DINO's weighted vote
    image_size: tuple[int, int] = bounded((224, 224), ge=1)  # (H, W), multiples of the patch size
    batch_size: int = bounded(32, ge=1)
    max_per_class: int | None = bounded(None, ge=1)  # first N files per class (sorted), per split; None = all

    def __post_init__(self) -> None:
        check_ranges(self)
        if len(self.image_size) != 2:
            raise ValueError(f"image_size must be two positive ints (H, W), got {self.image_size}")


@dataclass(frozen=True)
class ProbeResult:
    top1: float  # % of queries whose best-scored class is right
    top5: float | None  # % with the right class among the 5 best; None with fewer than 5 classes
    queries: int
    bank: int
    classes: int
    skipped_files: int  # files that failed to decode, in either split

    def as_metrics(self) -> dict[str, float]:
        metrics = {"probe_top1": self.top1}
        if self.top5 is not None:
            metrics["probe_top5"] = self.top5
        metrics |= {
            "probe_queries": float(self.queries),
            "probe_bank": float(self.bank),
            "probe_classes": float(self.classes),
            "probe_skipped_files": float(self.skipped_files),
        }
        return metrics


class Extracted(NamedTuple):
    features: Tensor  # [N, D] L2-normalised, one row per image that decoded, in input order
    skipped: list[int]  # input positions of the images that did not decode


def preprocess(image: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 or [0, 1] float image [3, h, w] → resized to cover `size`, centre-cropped to it, ImageNet-normalised.

    Cover + centre crop rather than a plain resize: pretraining crops keep the aspect ratio close to the image's,
    so squashing a portrait photo into a square would show the backbone shapes it never saw."""
    pixels = TF.to_dtype(image, torch.float32, scale=True)  # [3, h, w] in [0, 1]
    H, W = size
    h, w = pixels.shape[-2:]
    scale = max(H / h, W / w)
    covered = [max(H, round(h * scale)), max(W, round(w * scale))]
    pixels = TF.center_crop(TF.resize(pixels, covered, antialias=True), [H, W])  # [3, H, W]
    return TF.normalize(pixels, IMAGENET_MEAN, IMAGENET_STD)


def load_image(path: str | Path, size: tuple[int, int]) -> Tensor | None:
    """File → preprocessed image [3, H, W], or None (logged) when it cannot be read or decoded."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        log.warning("probe: cannot read %s (%s); skipped", path, e)
        return None
    decoded = decode_image(data, _PROBE_DECODE)
    if decoded.image is None:
        log.warning("probe: cannot decode %s (%s); skipped", path, decoded.reason)
        return None
    return preprocess(TF.pil_to_tensor(decoded.image), size)


def extract_features(
    backbone: nn.Module,
    images: Sequence[str | Path] | Dataset,
    cfg: ProbeConfig,
    device: torch.device | str | None = None,
) -> Extracted:
    """Backbone [CLS] features of `images`: file paths (loaded with `load_image`) or a dataset of preprocessed
    tensors [3, H, W] (or (tensor, label) pairs, as ImageFolder gives); items that are None count as skipped.

    Runs in eval mode without gradients; every submodule's train/eval mode is restored afterwards."""
    device = torch.device(device) if device is not None else next(backbone.parameters()).device
    modes = [(m, m.training) for m in backbone.modules()]
    features, skipped, batch = [], [], []
    backbone.eval()
    try:
        with torch.no_grad():
            for i in range(len(images)):
                item = images[i]
                if isinstance(item, str | Path):
                    item = load_image(item, tuple(cfg.image_size))
                elif isinstance(item, tuple | list):
                    item = item[0]
                if item is None:
                    skipped.append(i)
                    continue
                batch.append(item)
                if len(batch) == cfg.batch_size:
                    features.append(backbone(torch.stack(batch).to(device)).float())  # [B, D]
                    batch = []
            if batch:
                features.append(backbone(torch.stack(batch).to(device)).float())  # [b, D]
    finally:
        for module, training in modes:
            module.training = training
    if not features:
        return Extracted(torch.empty(0, 0, device=device), skipped)
    return Extracted(F.normalize(torch.cat(features), dim=1), skipped)  # [N, D]


def knn_predict(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    *,
    k: int,
    temperature: float,
    num_classes: int,
    exclude_self: bool = False,
    chunk_size: int = 256,
) -> Tensor:
    """Weighted k-NN class scores [M, C] for `queries` [M, D] against `bank` [N, D] with labels [N].

    Cosine similarity; the k most similar bank entries add exp(sim / temperature) to their class. With
    `exclude_self` the bank is the query set (leave-one-out) and query i never counts bank entry i. k is capped
    at the bank size (minus one with `exclude_self`). Queries go in chunks so memory stays at chunk_size × N."""
    if bank.ndim != 2 or queries.ndim != 2 or bank.shape[1] != queries.shape[1]:
        raise ValueError(f"bank [N, D] and queries [M, D] must share D, got {list(bank.shape)}, {list(queries.shape)}")
    if bank_labels.shape != (bank.shape[0],):
        raise ValueError(f"bank_labels must be [N] = [{bank.shape[0]}], got {list(bank_labels.shape)}")
    if exclude_self and queries.shape[0] != bank.shape[0]:
        raise ValueError("exclude_self means queries are the bank itself: pass the same tensor twice")
    k = min(k, bank.shape[0] - int(exclude_self))
    if k < 1 or temperature <= 0 or chunk_size < 1:
        raise ValueError(
            f"need k >= 1 after capping at the bank size ({k}), temperature > 0 ({temperature}), "
            f"chunk_size >= 1 ({chunk_size}); a leave-one-out bank needs at least 2 entries"
        )
    dtype = torch.promote_types(bank.dtype, torch.float32)  # float64 stays float64
    bank = F.normalize(bank.to(dtype), dim=1)  # [N, D]
    labels = bank_labels.long()
    scores = []
    for start in range(0, queries.shape[0], chunk_size):
        chunk = F.normalize(queries[start : start + chunk_size].to(dtype), dim=1)  # [m, D]
        sim = chunk @ bank.T  # [m, N]
        if exclude_self:
            rows = torch.arange(chunk.shape[0], device=sim.device)
            sim[rows, rows + start] = -math.inf
        top_sim, top_idx = sim.topk(k, dim=1)  # [m, k]
        votes = torch.zeros(chunk.shape[0], num_classes, dtype=dtype, device=sim.device)  # [m, C]
        scores.append(votes.scatter_add_(1, labels[top_idx], (top_sim / temperature).exp()))
    return torch.cat(scores)  # [M, C]


def topk_accuracy(scores: Tensor, labels: Tensor, top: int) -> float:
    """% of rows of `scores` [M, C] whose label [M] is among the `top` best-scored classes."""
    best = scores.topk(top, dim=1).indices  # [M, top]
    return 100.0 * int((best == labels[:, None]).any(dim=1).sum()) / labels.shape[0]


def list_samples(root: Path, class_to_idx: dict[str, int], max_per_class: int | None) -> list[tuple[str, int]]:
    """(path, label) of the image files under `root`/<class>/, sorted, at most `max_per_class` per class."""
    samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    if max_per_class is None:
        return samples
    kept: dict[int, int] = {}
    capped = []
    for path, label in samples:  # make_dataset lists class by class, files sorted within a class
        if kept.get(label, 0) < max_per_class:
            kept[label] = kept.get(label, 0) + 1
            capped.append((path, label))
    return capped


def _classes(root: Path) -> list[str]:
    try:
        classes, _ = find_classes(str(root))
    except FileNotFoundError as e:
        raise ValueError(f"no class folder in {root}; expected {LAYOUT}") from e
    return classes


def knn_probe(backbone: nn.Module, cfg: ProbeConfig, device: torch.device | str | None = None) -> ProbeResult:
    """Run the k-NN probe of `cfg` over `cfg.folder` (see the module docstring for the layout and the split)."""
    if cfg.folder is None:
        raise ValueError("set probe.folder to a labelled image folder to run the k-NN probe")
    root = Path(cfg.folder)
    if not root.is_dir():
        raise FileNotFoundError(f"probe folder {root} does not exist; expected {LAYOUT}")
    patch = getattr(backbone, "patch_size", 1)
    if any(side % patch for side in cfg.image_size):
        raise ValueError(f"probe image_size {tuple(cfg.image_size)} must be multiples of the patch size {patch}")
    split = (root / "train").is_dir() and (root / "val").is_dir()
    bank_root = root / "train" if split else root
    classes = _classes(bank_root)
    class_to_idx = {name: i for i, name in enumerate(classes)}
    bank_samples = list_samples(bank_root, class_to_idx, cfg.max_per_class)
    if len({label for _, label in bank_samples}) < 2:
        raise ValueError(f"the k-NN probe needs images of at least 2 classes in {bank_root}; expected {LAYOUT}")
    query_samples = bank_samples
    if split:
        unknown = sorted(set(_classes(root / "val")) - set(classes))
        if unknown:
            raise ValueError(f"classes {unknown} of {root / 'val'} have no folder in {bank_root}: add them to train")
        query_samples = list_samples(root / "val", class_to_idx, cfg.max_per_class)
        if not query_samples:
            raise ValueError(f"no image file in {root / 'val'}; expected {LAYOUT}")

    bank, bank_labels, skipped = _features(backbone, bank_samples, cfg, device)
    queries, query_labels = bank, bank_labels
    if split:
        queries, query_labels, skipped_val = _features(backbone, query_samples, cfg, device)
        skipped += skipped_val
    if bank.shape[0] < 2 or queries.shape[0] < 1:
        raise ValueError(f"too few images of {root} decoded ({skipped} files failed): check the files")

    scores = knn_predict(
        bank,
        bank_labels,
        queries,
        k=cfg.k,
        temperature=cfg.temperature,
        num_classes=len(classes),
        exclude_self=not split,
    )  # [M, C]
    result = ProbeResult(
        top1=topk_accuracy(scores, query_labels, 1),
        top5=topk_accuracy(scores, query_labels, 5) if len(classes) >= 5 else None,
        queries=queries.shape[0],
        bank=bank.shape[0],
        classes=len(classes),
        skipped_files=skipped,
    )
    log.info("k-NN probe on %s: %s", root, result)
    return result


def _features(
    backbone: nn.Module, samples: list[tuple[str, int]], cfg: ProbeConfig, device: torch.device | str | None
) -> tuple[Tensor, Tensor, int]:
    """Samples → (features [N, D], labels [N], number of files skipped) for the files that decoded."""
    features, skipped = extract_features(backbone, [path for path, _ in samples], cfg, device)
    dropped = set(skipped)
    labels = [label for i, (_, label) in enumerate(samples) if i not in dropped]
    return features, torch.tensor(labels, dtype=torch.long, device=features.device), len(skipped)
