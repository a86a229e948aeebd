"""A check before ultralytics unpickles a YOLO `.pt` (it calls torch.load with weights_only=False): the pickle may
name nothing but torch / ultralytics module classes and plain data, so a file that would call a function (os.system,
eval, open, ...) is refused before any of it runs.

torch lists the globals a checkpoint needs beyond its own weights_only allowlist; each must be an nn.Module subclass
under torch.nn or ultralytics.nn, or one of the numpy data types below. Constructing those classes builds layers; it
cannot reach the file system or a shell.
"""

import importlib
import pickle
from pathlib import Path

import torch
from torch import nn

_MODULE_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.")
_DATA_GLOBALS = frozenset(
    {
        # numpy scalars and arrays in training metrics: rebuilt from bytes, no code
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.ndarray",
        "numpy.dtype",
    }
)


class UnsafeCheckpointError(ValueError):
    pass


def check_model_pickle(path: str | Path) -> None:
    """Raise UnsafeCheckpointError naming what `path` would run when unpickled, if anything outside the allowlist."""
    path = Path(path)
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except (RuntimeError, ValueError, OSError, pickle.UnpicklingError) as err:
        raise UnsafeCheckpointError(
            f"{path} is not a readable torch checkpoint ({err}); use the official weights"
        ) from err
    refused = sorted(name for name in needed if not _allowed(name))
    if refused:
        raise UnsafeCheckpointError(
            f"{path} would call {', '.join(refused[:5])} when loaded: a YOLO weights file may only hold torch and "
            "ultralytics modules. Download the weights from the official ultralytics release instead"
        )


def _allowed(name: str) -> bool:
    if name in _DATA_GLOBALS or name.startswith("numpy.dtypes."):
        return True
    module, _, attr = name.rpartition(".")
    if not module.startswith(_MODULE_PREFIXES):
        return False
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return False
    return isinstance(obj, type) and issubclass(obj, nn.Module)
