import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from omegaconf import OmegaConf
from PIL import Image
from skimage import data as skdata

from common.models.sizes import create_backbone
from pretrain.data.views import IMAGENET_MEAN, IMAGENET_STD
from pretrain.probe import (
    ProbeConfig,
    extract_features,
    knn_predict,
    knn_probe,
    load_image,
    preprocess,
    topk_accuracy,
)

SIZE = (64, 48)  # H, W: small, and not square so the cover + centre crop path is exercised


def brute_force_knn(
    bank: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor, k: int, t: float, classes: int, exclude_self: bool
) -> torch.Tensor:
    """Python loops: cosine to every bank entry, full sort, sum of exp(sim / t) over the first k, per class."""
    rows = []
    for i, q in enumerate(queries.tolist()):
        sims = []
        for j, b in enumerate(bank.tolist()):
            if exclude_self and i == j:
                continue
            cos = sum(x * y for x, y in zip(q, b, strict=True)) / (
                math.dist(q, [0] * len(q)) * math.dist(b, [0] * len(b))
            )
            sims.append((cos, int(labels[j])))
        sims.sort(reverse=True)
        row = [0.0] * classes
        for cos, label in sims[:k]:
            row[label] += math.exp(cos / t)
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("k", [1, 5, 100])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_knn_predict_equals_brute_force(k: int, exclude_self: bool):
    gen = torch.Generator().manual_seed(k)
    bank = torch.randn(37, 8, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (37,), generator=gen)
    queries = bank if exclude_self else torch.randn(23, 8, generator=gen, dtype=torch.float64)
    scores = knn_predict(
        bank, labels, queries, k=k, temperature=0.07, num_classes=4, exclude_self=exclude_self, chunk_size=5
    )
    expected = brute_force_knn(bank, labels, queries, k, 0.07, 4, exclude_self)
    torch.testing.assert_close(scores, expected, rtol=1e-10, atol=0.0)


def test_knn_predict_float32_matches_float64():
    gen = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(50, 16, generator=gen), torch.randn(9, 16, generator=gen)
    labels = torch.randint(0, 3, (50,), generator=gen)
    args = {"k": 7, "temperature": 0.1, "num_classes": 3}
    scores = knn_predict(bank, labels, queries, **args)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(
        scores.double(), knn_predict(bank.double(), labels, queries.double(), **args), rtol=1e-5, atol=0
    )


def test_exclude_self_never_counts_the_query():
    bank = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(10)  # one class per entry: a query's own class can only get its own vote
    scores = knn_predict(bank, labels, bank, k=50, temperature=0.07, num_classes=10, exclude_self=True)
    assert (scores.diagonal() == 0).all()
    assert ((scores > 0).sum(dim=1) == 9).all()  # k capped at N - 1: every other entry votes


def test_orthonormal_bank_gives_exact_scores_and_accuracy():
    classes, per_class, k, t = 4, 3, 5, 0.07
    axes = torch.eye(classes)  # [C, C] orthonormal
    bank = axes.repeat_interleave(per_class, dim=0)  # [C * per_class, C]
    bank_labels = torch.arange(classes).repeat_interleave(per_class)
    scores = knn_predict(bank, bank_labels, axes, k=k, temperature=t, num_classes=classes)
    # The 3 same-class entries have cosine 1; the 2 remaining neighbours are orthogonal (cosine 0, weight 1).
    torch.testing.assert_close(scores.diagonal(), torch.full((classes,), per_class * math.exp(1 / t)))
    torch.testing.assert_close(scores.sum(dim=1) - scores.diagonal(), torch.full((classes,), float(k - per_class)))
    assert topk_accuracy(scores, torch.arange(classes), 1) == 100.0
    assert topk_accuracy(scores, (torch.arange(classes) + 1) % classes, 1) == 0.0


def test_knn_predict_rejects_bad_input():
    bank = torch.randn(3, 4)
    with pytest.raises(ValueError, match="same tensor twice"):
        knn_predict(bank, torch.zeros(3), bank[:2], k=1, temperature=0.1, num_classes=2, exclude_self=True)
    with pytest.raises(ValueError, match="share D"):
        knn_predict(bank, torch.zeros(3), torch.randn(2, 5), k=1, temperature=0.1, num_classes=2)
    with pytest.raises(ValueError, match="at least 2 entries"):
        knn_predict(bank[:1], torch.zeros(1), bank[:1], k=1, temperature=0.1, num_classes=2, exclude_self=True)


def test_config_validates_and_loads_from_omegaconf():
    node = OmegaConf.merge(OmegaConf.structured(ProbeConfig), OmegaConf.from_dotlist(["image_size=[32,48]", "k=3"]))
    assert OmegaConf.to_object(node) == ProbeConfig(image_size=(32, 48), k=3)
    for bad in ({"k": 0}, {"temperature": 0.0}, {"every": -1}, {"image_size": (0, 16)}, {"max_per_class": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ProbeConfig(**bad)


def test_preprocess_covers_then_centre_crops():
    stripes = torch.zeros(3, 100, 200, dtype=torch.uint8)  # H 100, W 200: red | green | blue quarters, half, quarter
    stripes[0, :, :50], stripes[1, :, 50:150], stripes[2, :, 150:] = 255, 255, 255
    out = preprocess(stripes, (32, 32))  # cover: 32 x 64, then the centre 32 columns = the green half
    green = torch.tensor([(c - m) / s for c, m, s in zip((0.0, 1.0, 0.0), IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    assert out.shape == (3, 32, 32)
    # Away from the crop borders, where the antialiasing filter reaches into the red and blue stripes.
    torch.testing.assert_close(out[:, :, 3:-3], green[:, None, None].expand(3, 32, 26), rtol=0, atol=1e-5)


# -- end to end on real photos ----------------------------------------------------------------------------------------


def _variants(image: np.ndarray) -> list[Image.Image]:
    im = Image.fromarray(image).convert("RGB")
    w, h = im.size
    return [
        im,
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        im.crop((0, 0, int(w * 0.8), int(h * 0.8))),
        im.crop((int(w * 0.2), int(h * 0.2), w, h)),
    ]


@pytest.fixture(scope="module")
def photos() -> dict[str, list[Image.Image]]:
    return {name: _variants(getattr(skdata, name)()) for name in ("astronaut", "chelsea", "coffee")}


def _write(folder: Path, images: list[Image.Image]) -> None:
    folder.mkdir(parents=True)
    for i, im in enumerate(images):
        im.save(folder / f"{i}.jpg", quality=90)


def _backbone(seed: int) -> torch.nn.Module:
    # At the default LayerScale of 1e-5 an untrained backbone gives nearly the same [CLS] for every image (cosines
    # within 1e-4 of 1), so neighbour ranks would hang on rounding; a LayerScale of 1 spreads them out.
    torch.manual_seed(seed)
    return create_backbone("tiny", layer_scale_init=1.0)


def _reference(backbone: torch.nn.Module, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Features [N, D] and labels [N] of <folder>/<class>/*.jpg, straight from the backbone."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    paths = [(p, c) for c, name in enumerate(classes) for p in sorted((folder / name).glob("*.jpg"))]
    images = [load_image(p, SIZE) for p, _ in paths]
    kept = [(im, c) for im, (_, c) in zip(images, paths, strict=True) if im is not None]
    with torch.no_grad():
        features = backbone.eval()(torch.stack([im for im, _ in kept]))  # [N, D]
    features = F.normalize(features, dim=1)
    off_diagonal = (features @ features.T)[~torch.eye(len(kept), dtype=torch.bool)]
    assert off_diagonal.max() < 0.99, "features too alike for exact neighbour ranks"
    return features, torch.tensor([c for _, c in kept])


def _top1(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * sum(int(row.argmax()) == int(y) for row, y in zip(scores, labels, strict=True)) / len(labels)


def test_leave_one_out_equals_reference(tmp_path: Path, photos: dict[str, list[Image.Image]]):
    for name, images in photos.items():
        _write(tmp_path / name, images)
    backbone = _backbone(0)
    cfg = ProbeConfig(folder=str(tmp_path), k=5, image_size=SIZE, batch_size=5)
    result = knn_probe(backbone, cfg)

    features, labels = _reference(backbone, tmp_path)
    expected = _top1(brute_force_knn(features.double(), labels, features.double(), 5, 0.07, 3, True), labels)
    assert result.top1 == pytest.approx(expected, abs=1e-9)
    assert (result.bank, result.queries, result.classes, result.skipped_files, result.top5) == (12, 12, 3, 0, None)
    assert result.as_metrics() == {
        "probe_top1": result.top1,
        "probe_queries": 12.0,
        "probe_bank": 12.0,
        "probe_classes": 3.0,
        "probe_skipped_files": 0.0,
    }


def test_train_val_split_skips_corrupt_files(tmp_path: Path, photos: dict[str, list[Image.Image]]):
    for name, images in photos.items():
        _write(tmp_path / "train" / name, images[:3])
        _write(tmp_path / "val" / name, images[3:])
    (tmp_path / "val" / "coffee" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "val" / "coffee" / "notes.txt").write_text("not an image file: never listed")
    backbone = _backbone(1)
    result = knn_probe(backbone, ProbeConfig(folder=str(tmp_path), k=4, image_size=SIZE, batch_size=2))

    bank, bank_labels = _reference(backbone, tmp_path / "train")
    queries, query_labels = _reference(backbone, tmp_path / "val")
    expected = _top1(brute_force_knn(bank.double(), bank_labels, queries.double(), 4, 0.07, 3, False), query_labels)
    assert result.top1 == pytest.approx(expected, abs=1e-9)
    assert (result.bank, result.queries, result.classes, result.skipped_files) == (9, 3, 3, 1)


def test_max_per_class_caps_each_class(tmp_path: Path, photos: dict[str, list[Image.Image]]):
    for name, images in photos.items():
        _write(tmp_path / name, images)
    result = knn_probe(create_backbone("tiny"), ProbeConfig(folder=str(tmp_path), image_size=SIZE, max_per_class=2))
    assert (result.bank, result.queries) == (6, 6)


def test_layout_errors_name_the_folder(tmp_path: Path, photos: dict[str, list[Image.Image]]):
    backbone = create_backbone("tiny")
    _write(tmp_path / "one" / "astronaut", photos["astronaut"][:2])
    with pytest.raises(ValueError, match=r"at least 2 classes in .*one"):
        knn_probe(backbone, ProbeConfig(folder=str(tmp_path / "one"), image_size=SIZE))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no class folder in .*empty"):
        knn_probe(backbone, ProbeConfig(folder=str(tmp_path / "empty"), image_size=SIZE))
    with pytest.raises(ValueError, match=r"probe\.folder"):
        knn_probe(backbone, ProbeConfig(image_size=SIZE))
    with pytest.raises(ValueError, match="patch size 16"):
        knn_probe(backbone, ProbeConfig(folder=str(tmp_path / "one"), image_size=(60, 64)))


def test_extract_features_runs_in_eval_and_restores_modes(photos: dict[str, list[Image.Image]]):
    torch.manual_seed(2)
    backbone = create_backbone("tiny", drop_path_rate=0.5, layer_scale_init=1.0)  # train mode drops branches
    backbone.train()
    backbone.blocks[1].eval()  # a mixed state must come back as it was
    modes = [m.training for m in backbone.modules()]
    images = [preprocess(TF.pil_to_tensor(im), SIZE) for im in photos["chelsea"]]
    dataset = [images[0], None, (images[1], 7), images[2]]  # tensors, a skipped item, an ImageFolder-style pair

    first = extract_features(backbone, dataset, ProbeConfig(image_size=SIZE, batch_size=2))
    second = extract_features(backbone, dataset, ProbeConfig(image_size=SIZE, batch_size=3))
    assert [m.training for m in backbone.modules()] == modes
    assert first.skipped == second.skipped == [1]
    with torch.no_grad():
        expected = F.normalize(backbone.eval()(torch.stack([images[0], images[1], images[2]])), dim=1)
    torch.testing.assert_close(first.features, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(second.features, expected, rtol=1e-5, atol=1e-6)
