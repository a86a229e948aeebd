"""The 29 Sapiens2 body-part segmentation classes: names, the left/right map for horizontal flips, a colour palette.

Order and names follow the public Sapiens2 release (docs/SEG.md of facebookresearch/sapiens2): the 28 parts sorted
alphabetically, face parts (lips, teeth, tongue) appended at the end, background at index 0.
"""

import numpy as np
import torch
from torch import Tensor

CLASSES: tuple[str, ...] = (
    "Background",  # 0
    "Apparel",
    "Eyeglass",
    "Face_Neck",
    "Hair",
    "Left_Foot",  # 5
    "Left_Hand",
    "Left_Lower_Arm",
    "Left_Lower_Leg",
    "Left_Shoe",
    "Left_Sock",  # 10
    "Left_Upper_Arm",
    "Left_Upper_Leg",
    "Lower_Clothing",
    "Right_Foot",
    "Right_Hand",  # 15
    "Right_Lower_Arm",
    "Right_Lower_Leg",
    "Right_Shoe",
    "Right_Sock",
    "Right_Upper_Arm",  # 20
    "Right_Upper_Leg",
    "Torso",
    "Upper_Clothing",
    "Lower_Lip",
    "Upper_Lip",  # 25
    "Lower_Teeth",
    "Upper_Teeth",
    "Tongue",  # 28
)
NUM_CLASSES = len(CLASSES)
BACKGROUND = 0


def _flip_index(names: tuple[str, ...]) -> tuple[int, ...]:
    """Left_X ↔ Right_X, every other class maps to itself."""
    index = {name: i for i, name in enumerate(names)}
    swap = {"Left_": "Right_", "Right_": "Left_"}
    flipped = []
    for name in names:
        prefix = next((p for p in swap if name.startswith(p)), None)
        flipped.append(index[swap[prefix] + name[len(prefix) :]] if prefix else index[name])
    return tuple(flipped)


FLIP_INDEX: tuple[int, ...] = _flip_index(CLASSES)  # label of the mirrored pixel: FLIP_INDEX[label]

# One colour per class (RGB); left/right pairs get related but distinct hues so mirrored errors stand out.
PALETTE: np.ndarray = np.array(
    [
        (0, 0, 0),  # Background
        (255, 128, 0),  # Apparel
        (255, 255, 0),  # Eyeglass
        (255, 204, 153),  # Face_Neck
        (128, 64, 0),  # Hair
        (0, 0, 255),  # Left_Foot
        (0, 128, 255),  # Left_Hand
        (0, 255, 255),  # Left_Lower_Arm
        (0, 64, 128),  # Left_Lower_Leg
        (64, 0, 255),  # Left_Shoe
        (128, 128, 255),  # Left_Sock
        (0, 192, 192),  # Left_Upper_Arm
        (0, 0, 128),  # Left_Upper_Leg
        (128, 0, 128),  # Lower_Clothing
        (255, 0, 0),  # Right_Foot
        (255, 0, 128),  # Right_Hand
        (255, 0, 255),  # Right_Lower_Arm
        (128, 0, 64),  # Right_Lower_Leg
        (255, 64, 64),  # Right_Shoe
        (255, 128, 128),  # Right_Sock
        (192, 0, 192),  # Right_Upper_Arm
        (128, 0, 0),  # Right_Upper_Leg
        (0, 255, 0),  # Torso
        (0, 128, 0),  # Upper_Clothing
        (192, 64, 128),  # Lower_Lip
        (255, 96, 192),  # Upper_Lip
        (224, 224, 224),  # Lower_Teeth
        (160, 160, 160),  # Upper_Teeth
        (255, 160, 64),  # Tongue
    ],
    dtype=np.uint8,
)  # [29, 3]
PALETTE.flags.writeable = False


def hflip_labels(labels: Tensor, ignore_index: int = 255) -> Tensor:
    """Label map [..., H, W] of an image → the label map of its horizontal mirror: pixels are mirrored and left/right
    classes swapped; `ignore_index` pixels stay ignored."""
    ignored = labels == ignore_index
    if not bool((ignored | ((labels >= 0) & (labels < NUM_CLASSES))).all()):
        raise ValueError(f"labels must lie in [0, {NUM_CLASSES}) or equal ignore_index ({ignore_index})")
    lut = torch.tensor(FLIP_INDEX, dtype=labels.dtype, device=labels.device)  # [29]
    flipped = torch.where(ignored, labels, lut[labels.masked_fill(ignored, 0).long()])
    return flipped.flip(-1)
