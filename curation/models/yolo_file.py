"""A YOLO weights file read once and checked before anything parses it for real: the optional sha256 pin first, then
the static pickle check (.pt) or the metadata and model-yaml check (.safetensors). The checked bytes are the bytes
loaded: a .pt reaches ultralytics as a private 0600 copy of them, never by its original path."""

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import UsageError
from curation.models.pickle_guard import check_checkpoint, refuse

if TYPE_CHECKING:
    from ultralytics import YOLO

PT_SUFFIX = ".pt"
SAFETENSORS_SUFFIX = ".safetensors"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_key(key: str) -> str:
    """The config key of the pin next to weights key `key` (models.detector.weights -> models.detector.sha256)."""
    return f"{key.rsplit('.', 1)[0]}.sha256"


def read_yolo_weights(path: Path, *, sha256: str | None = None, key: str | None = None) -> bytes:
    """The bytes of `path`, read once; raises UnsafeCheckpointError (a UsageError) if they must not be loaded."""
    if path.suffix not in (PT_SUFFIX, SAFETENSORS_SUFFIX):
        where = f"{key}: " if key else ""
        raise UsageError(
            f"{where}{path} is neither an ultralytics .pt checkpoint nor a .safetensors file written by "
            "`humans1b models convert-yolo`; point it at one of those"
        )
    expected = _pin(sha256, key)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UsageError(f"{f'{key}: ' if key else ''}cannot read {path}: {err.strerror}") from err
    if expected is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            pin = sha256_key(key) if key else "the pin"
            raise refuse(path, f"its sha256 is {actual}, not the pinned {pin}={expected}", key=key)
    if path.suffix == SAFETENSORS_SUFFIX:
        from curation.models.yolo_safetensors import read_metadata

        read_metadata(data, path, key=key)
    else:
        check_checkpoint(data, path, key=key)
    return data


def _pin(sha256: str | None, key: str | None) -> str | None:
    if sha256 is None or sha256 == "":
        return None
    pin = str(sha256).strip().lower()
    if not _SHA256.fullmatch(pin):
        name = sha256_key(key) if key else "sha256"
        raise UsageError(f"{name}={sha256} is not a sha256 (64 hex digits); set it to `sha256sum FILE`'s first field")
    return pin


@contextmanager
def private_copy(data: bytes, name: str) -> Iterator[Path]:
    """`data` as `name` in a fresh 0700 directory, the file 0600, removed afterwards: what ultralytics opens is what
    was checked, whatever happens to the original file meanwhile."""
    with tempfile.TemporaryDirectory(prefix="humans1b-weights-") as tmp:  # mkdtemp: 0700, unique
        path = Path(tmp) / Path(name).name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield path


def load_checked_pt(data: bytes, path: Path) -> "YOLO":
    """ultralytics' model from checked .pt bytes (`path`: the original file, for its name)."""
    from ultralytics import YOLO

    with private_copy(data, path.name) as copy:
        model = YOLO(str(copy), verbose=False)
    # train_args' data.yaml path: ultralytics reads it (or fetches it, for a URL) only when a model has no class
    # names; this project always has them, and a path from an untrusted file has no use here.
    model.overrides.pop("data", None)
    return model
