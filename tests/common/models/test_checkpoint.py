import json
import struct
from pathlib import Path

import pytest
import torch

from common.models import CheckpointMismatchError, create_backbone, load_backbone, save_backbone


def _tiny(seed: int, **overrides):
    torch.manual_seed(seed)
    return create_backbone("tiny", **overrides).eval()


def test_round_trip_gives_identical_outputs(tmp_path: Path):
    path = tmp_path / "backbone.safetensors"
    source = _tiny(0)
    save_backbone(source, path)
    # A safetensors file: 8-byte header length, then a JSON header. No pickle.
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    assert "cls_token" in header and header["__metadata__"] == {"format": "pt"}
    target = _tiny(1)
    x = torch.randn(2, 3, 64, 48)
    assert not torch.equal(target(x), source(x))
    assert load_backbone(target, path) == ([], [])
    assert torch.equal(target(x), source(x))


def test_a_wrong_shape_names_the_key(tmp_path: Path):
    path = tmp_path / "backbone.safetensors"
    save_backbone(_tiny(0, mlp_ratio=2.0), path)
    for strict in (True, False):
        with pytest.raises(CheckpointMismatchError, match=r"blocks\.0\.mlp\.w12\.weight: checkpoint \[256, 64\]"):
            load_backbone(_tiny(1), path, strict=strict)


def test_missing_and_unexpected_keys(tmp_path: Path):
    path = tmp_path / "backbone.safetensors"
    save_backbone(_tiny(0), path)
    shallow = _tiny(1, depth=3)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys: blocks\.3\.") as error:
        load_backbone(shallow, path)
    assert "more)" in str(error.value)  # long lists are cut
    result = load_backbone(shallow, path, strict=False)
    assert result.missing_keys == [] and all(key.startswith("blocks.3.") for key in result.unexpected_keys)
    assert torch.equal(shallow.cls_token, _tiny(0).cls_token)
    with pytest.raises(CheckpointMismatchError, match=r"missing keys: blocks\.4\."):
        load_backbone(_tiny(1, depth=5), path)


def test_a_missing_file_is_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors"):
        load_backbone(_tiny(0), tmp_path / "nope.safetensors")
