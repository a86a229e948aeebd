"""Keypoint sets as data: names, mirror partners, OKS sigmas, colours and skeleton, loaded from a JSON file.

File format (builtin files live in `posttrain/keypoints/specs/`):

    {"name": "my_set",
     "keypoints": [{"name": "left_eye", "sigma": 0.025, "color": [0, 255, 0], "swap": "right_eye"}, ...],
     "skeleton": [["left_eye", "right_eye", [51, 153, 255]], ...],
     "groups": {"body": [0, 17]},          # optional, half-open index ranges
     "source": "...", "note": "..."}       # optional free text

`sigma` is the OKS sigma (null when unknown); `swap` names the keypoint this one becomes under a horizontal
flip ("" for points on the mirror axis). Swaps must be symmetric.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

BUILTIN_SPECS = ("coco17", "coco_wholebody133", "sapiens308")
_REQUIRED_KEYS = {"name", "keypoints", "skeleton"}
_OPTIONAL_KEYS = {"groups", "source", "note"}
_KEYPOINT_KEYS = {"name", "sigma", "color", "swap"}

Color = tuple[int, int, int]


class KeypointSpecError(ValueError):
    """A keypoint spec file that cannot be used; the message names the file and the offending entry."""


@dataclass(frozen=True, eq=False)
class KeypointSpec:
    """An ordered keypoint set. Index i everywhere (heatmap channel, annotation row) means `names[i]`."""

    name: str
    names: tuple[str, ...]
    sigmas: np.ndarray | None  # [K] float64; None when any sigma is unknown
    colors: tuple[Color, ...]
    skeleton: tuple[tuple[int, int], ...]
    skeleton_colors: tuple[Color, ...]
    flip_index: tuple[int, ...]  # flip_index[i] = index of the mirror of keypoint i (i itself on the axis)
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """Each left/right pair once, as (lower index, higher index)."""
        return tuple((i, j) for i, j in enumerate(self.flip_index) if i < j)

    def index(self, name: str) -> int:
        """Position of a keypoint by name."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"keypoint {name!r} is not in spec {self.name!r}") from None


def load_spec(name_or_path: str | os.PathLike) -> KeypointSpec:
    """Load a builtin spec by name ("coco17", "coco_wholebody133", "sapiens308") or a user JSON file by path."""
    if str(name_or_path) in BUILTIN_SPECS:
        resource = resources.files("posttrain.keypoints") / "specs" / f"{name_or_path}.json"
        source = f"builtin spec {name_or_path} ({resource})"
        text = resource.read_text(encoding="utf-8")
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"keypoint spec {str(name_or_path)!r} is neither a builtin ({', '.join(BUILTIN_SPECS)}) "
                f"nor an existing JSON file"
            )
        source = str(path)
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise KeypointSpecError(f"{source}: not valid JSON ({err})") from err
    spec = parse_spec(data, source=source)
    logger.debug("loaded keypoint spec %s: %d keypoints from %s", spec.name, spec.num_keypoints, source)
    return spec


def parse_spec(data: dict[str, Any], source: str = "<dict>") -> KeypointSpec:
    """Validate a decoded spec document and build the indexed form; `source` only labels error messages."""

    def fail(msg: str) -> KeypointSpecError:
        return KeypointSpecError(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise fail("the top level must be a JSON object")
    missing, unknown = _REQUIRED_KEYS - data.keys(), data.keys() - _REQUIRED_KEYS - _OPTIONAL_KEYS
    if missing or unknown:
        raise fail(f"missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    entries = data["keypoints"]
    if not isinstance(entries, list) or not entries:
        raise fail("'keypoints' must be a non-empty list")

    names: list[str] = []
    for i, kp in enumerate(entries):
        if not isinstance(kp, dict) or kp.keys() != _KEYPOINT_KEYS:
            raise fail(f"keypoint #{i} must have exactly the keys {sorted(_KEYPOINT_KEYS)}, got {kp!r}")
        if not isinstance(kp["name"], str) or not kp["name"]:
            raise fail(f"keypoint #{i} needs a non-empty string name")
        if kp["name"] in names:
            raise fail(f"duplicate keypoint name {kp['name']!r} (#{names.index(kp['name'])} and #{i})")
        names.append(kp["name"])
    position = {n: i for i, n in enumerate(names)}

    flip_index, sigmas, colors = [], [], []
    for i, kp in enumerate(entries):
        name, swap = kp["name"], kp["swap"]
        if swap:
            if swap not in position:
                raise fail(f"keypoint {name!r} swaps with {swap!r}, which is not a keypoint of this spec")
            if entries[position[swap]]["swap"] != name:
                raise fail(
                    f"asymmetric swap: keypoint {name!r} swaps with {swap!r}, but {swap!r} swaps with "
                    f"{entries[position[swap]]['swap']!r}; give both the other's name"
                )
            flip_index.append(position[swap])
        else:
            flip_index.append(i)
        sigma = kp["sigma"]
        if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, int | float) or sigma <= 0):
            raise fail(f"keypoint {name!r} has sigma {sigma!r}; use a positive number or null")
        sigmas.append(sigma)
        colors.append(_color(kp["color"], lambda m, name=name: fail(f"keypoint {name!r}: {m}")))

    skeleton, skeleton_colors = [], []
    for link in data["skeleton"]:
        if not (isinstance(link, list) and len(link) == 3):
            raise fail(f"skeleton link {link!r} must be [name_a, name_b, [r, g, b]]")
        for end in link[:2]:
            if end not in position:
                raise fail(f"skeleton link {link[:2]!r} names {end!r}, which is not a keypoint of this spec")
        skeleton.append((position[link[0]], position[link[1]]))
        skeleton_colors.append(_color(link[2], lambda m, link=link: fail(f"skeleton link {link[:2]!r}: {m}")))

    groups = {}
    for group, bounds in data.get("groups", {}).items():
        if not (isinstance(bounds, list) and len(bounds) == 2 and 0 <= bounds[0] < bounds[1] <= len(names)):
            raise fail(f"group {group!r} must be [start, end) with 0 <= start < end <= {len(names)}, got {bounds!r}")
        groups[group] = (int(bounds[0]), int(bounds[1]))

    known = all(s is not None for s in sigmas)
    return KeypointSpec(
        name=str(data["name"]),
        names=tuple(names),
        sigmas=np.asarray(sigmas, dtype=np.float64) if known else None,
        colors=tuple(colors),
        skeleton=tuple(skeleton),
        skeleton_colors=tuple(skeleton_colors),
        flip_index=tuple(flip_index),
        groups=groups,
    )


def _color(value: Any, fail: Any) -> Color:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in value)):
        raise fail(f"color must be [r, g, b] with integers in 0..255, got {value!r}")
    return (value[0], value[1], value[2])
