import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from posttrain.data.augment import AugmentConfig
from posttrain.data.dense_folder import DenseFolder, exr_supported
from posttrain.data.image_io import IMAGENET_MEAN, IMAGENET_STD

W, H = 80, 60
ONLY_FLIP = AugmentConfig(flip_p=1.0, scale_range=(1.0, 1.0), rotate_p=0.0, shift_p=0.0)
EVERYTHING = AugmentConfig(flip_p=0.5, scale_range=(0.8, 1.2), rotate_p=1.0, rotate_deg=60.0, shift_p=1.0)


def plane(y_up: bool = False) -> np.ndarray:
    """Camera-frame points [H, W, 3] of a wall 2 m away, principal point at the image centre, f = 100 px."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    x, y = (u - (W - 1) / 2) * 2.0 / 100, (v - (H - 1) / 2) * 2.0 / 100
    return np.stack([x, -y if y_up else y, np.full_like(x, 2.0)], axis=-1)


def unit_normals() -> np.ndarray:
    n = np.random.default_rng(0).normal(size=(H, W, 3)).astype(np.float32)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def make_root(root: Path, target: str, arrays: dict[str, np.ndarray], suffix: str = ".npy") -> Path:
    for sub in ("images", target):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, (stem, array) in enumerate(arrays.items()):
        Image.fromarray(data.astronaut()[100 + i : 100 + i + H, 150 : 150 + W]).save(root / "images" / f"{stem}.png")
        if suffix == ".npy":
            np.save(root / target / f"{stem}.npy", array)
        else:
            np.savez(root / target / f"{stem}.npz", **{target if i % 2 else "arr_0": array})
    return root


def normalised(rgb: np.ndarray) -> np.ndarray:
    return (rgb / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)


def test_npy_and_npz_load_unchanged(tmp_path):
    normals = unit_normals()
    for suffix in (".npy", ".npz"):
        root = make_root(tmp_path / suffix, "normal", {"a": normals, "b": -normals}, suffix)
        ds = DenseFolder(root, "normal", (W, H))
        first, second = ds[0], ds[1]  # npz: key arr_0, then key "normal"
        np.testing.assert_array_equal(first["target"].permute(1, 2, 0).numpy(), normals)
        np.testing.assert_array_equal(second["target"].permute(1, 2, 0).numpy(), -normals)
        assert first["valid"].all() and first["valid"].shape == (H, W)
        image = np.asarray(Image.open(root / "images" / "a.png"))
        np.testing.assert_allclose(first["image"].permute(1, 2, 0).numpy(), normalised(image), atol=1e-5)


def test_npz_without_a_known_key_is_refused(tmp_path):
    root = make_root(tmp_path, "albedo", {"a": np.zeros((H, W, 3), np.float32)})
    (root / "albedo" / "a.npy").unlink()
    np.savez(root / "albedo" / "a.npz", colour=np.zeros((H, W, 3), np.float32))
    with pytest.raises(ValueError, match=r"a\.npz: npz needs an array named 'arr_0' or 'albedo'"):
        DenseFolder(root, "albedo", (W, H))[0]


@pytest.mark.parametrize(("target", "negate_x"), [("normal", True), ("pointmap", True), ("albedo", False)])
def test_flip_reflects_pixels_and_mirrors_x(tmp_path, target, negate_x):
    values = unit_normals()
    values[5, 7] = np.nan
    root = make_root(tmp_path, target, {"a": values})
    item = DenseFolder(root, target, (W, H), augment=ONLY_FLIP)[0]
    expected = np.nan_to_num(values[:, ::-1].copy())
    if negate_x:
        expected[..., 0] *= -1
    np.testing.assert_array_equal(item["target"].permute(1, 2, 0).numpy(), expected)
    assert not item["valid"][5, W - 1 - 7] and item["valid"].sum() == H * W - 1
    image = np.asarray(Image.open(root / "images" / "a.png"))
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), normalised(image[:, ::-1]), atol=1e-5)


def test_validity_from_mask_and_non_finite_values(tmp_path):
    values = plane()
    values[10, 20] = (np.inf, 0, 1)
    values[11, 21, 2] = np.nan
    root = make_root(tmp_path, "pointmap", {"a": values, "b": plane()})
    (root / "masks").mkdir()
    mask = np.full((H, W), 255, np.uint8)
    mask[30:40, 50:70] = 0
    Image.fromarray(mask).save(root / "masks" / "a.png")
    ds = DenseFolder(root, "pointmap", (W, H))
    with_mask, without_mask = ds[0], ds[1]
    expected = mask != 0
    expected[10, 20] = expected[11, 21] = False
    np.testing.assert_array_equal(with_mask["valid"].numpy(), expected)
    assert np.isfinite(with_mask["target"].numpy()).all()
    assert without_mask["valid"].all()  # no mask file: every finite pixel


class _Marker:
    """Unpickling this would create a file: proof of code execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_pickled_targets_are_refused(tmp_path):
    marker = tmp_path / "unpickled"
    root = make_root(tmp_path, "normal", {"a": unit_normals(), "b": unit_normals()})
    np.save(root / "normal" / "a.npy", np.array([_Marker(marker)], dtype=object), allow_pickle=True)
    (root / "normal" / "b.npy").write_bytes(pickle.dumps(_Marker(marker)))
    ds = DenseFolder(root, "normal", (W, H))
    with pytest.raises(ValueError, match=r"a\.npy: target dtype object is not numeric"):
        ds[0]
    with pytest.raises(ValueError, match=r"b\.npy: not a readable \.npy array"):
        ds[1]
    assert not marker.exists()


def test_shape_mismatch_names_the_file(tmp_path):
    root = make_root(tmp_path, "albedo", {"a": np.zeros((H, W + 1, 3), np.float32)})
    with pytest.raises(ValueError, match=r"a\.npy: target is \(60, 81, 3\), expected \(60, 80, 3\)"):
        DenseFolder(root, "albedo", (W, H))[0]


def test_missing_targets_are_named(tmp_path):
    root = make_root(tmp_path, "normal", {"a": unit_normals(), "b": unit_normals(), "c": unit_normals()})
    (root / "normal" / "b.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 images have no normal .*: b"):
        DenseFolder(root, "normal", (W, H))


def test_exr_targets_load_through_openexr(tmp_path):
    OpenEXR = pytest.importorskip("OpenEXR")  # the `exr` extra; installed with the dev extra
    assert exr_supported()
    normals = unit_normals()
    root = make_root(tmp_path, "normal", {"a": normals, "b": normals})
    (root / "normal" / "b.npy").unlink()

    def header():  # writing fills in the data window: a fresh header per file
        return {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}

    channels = {c: np.ascontiguousarray(normals[..., i], dtype=np.float32) for i, c in enumerate("RGB")}
    with OpenEXR.File(header(), channels) as f:
        f.write(str(root / "normal" / "b.exr"))
    ds = DenseFolder(root, "normal", (W, H))
    assert [s[0] for s in ds.samples] == ["a", "b"]
    assert torch.equal(ds[0]["target"], ds[1]["target"])  # the same values from .npy and from .exr
    with OpenEXR.File(header(), {"RGB": np.zeros((H, W + 1, 3), np.float32)}) as f:
        f.write(str(root / "normal" / "b.exr"))
    with pytest.raises(ValueError, match=r"b\.exr: EXR data window"):
        ds[1]


@pytest.mark.parametrize("y_up", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rotated_pointmap_stays_a_pinhole_view(tmp_path, y_up, seed):
    # A wall's point at pixel p lies along (p - principal point): after any warp and flip the principal point
    # moves with the matrix and each point must still lie along its new pixel's offset from it.
    root = make_root(tmp_path, "pointmap", {"a": plane(y_up)})
    out = (64, 48)
    item = DenseFolder(root, "pointmap", out, augment=EVERYTHING, seed=seed, y_up=y_up)[0]
    principal = item["matrix"] @ np.array([(W - 1) / 2, (H - 1) / 2, 1.0])
    v, u = np.mgrid[0 : out[1], 0 : out[0]]
    offset = np.stack([u - principal[0], v - principal[1]], axis=-1)
    points = item["target"].permute(1, 2, 0).numpy().astype(np.float64)
    xy = points[..., :2] * (np.array([1.0, -1.0]) if y_up else 1.0)
    use = item["valid"].numpy() & (np.linalg.norm(offset, axis=-1) > 8)
    assert use.sum() > 200
    angle = np.arctan2(xy[..., 1], xy[..., 0]) - np.arctan2(offset[..., 1], offset[..., 0])
    angle = np.abs((angle[use] + np.pi) % (2 * np.pi) - np.pi)
    assert angle.max() < 0.15  # nearest sampling moves a point by up to half a source pixel
    np.testing.assert_array_equal(points[item["valid"].numpy(), 2], 2.0)  # depth untouched
    assert (item["target"].numpy()[:, ~item["valid"].numpy()] == 0).all()
