"""Near-duplicates of an original, as the web makes them: re-encoded, resized, cropped, colour-shifted."""

import numpy as np
from PIL import Image, ImageEnhance

from curation.sample_corpus.files import NEAR_DUPLICATE, CorpusFile, encode, photo_file
from curation.sample_corpus.sources import Original

JPEG_QUALITIES = (30, 60, 90)
EDIT_QUALITY = 90  # JPEG quality of the resized, cropped and jittered copies
MIN_SHORT_SIDE = 384  # edits keep the copies valid under the default DecodeConfig
MAX_CROP = 0.05  # share of each side a crop may remove
MAX_JITTER = 0.1  # brightness, contrast and saturation change by at most this factor


def near_duplicates(original: Original, rng: np.random.Generator) -> list[CorpusFile]:
    image = original.load()
    edits: dict[str, tuple[Image.Image, int]] = {f"jpeg_q{q}": (image, q) for q in JPEG_QUALITIES}
    edits["resize"] = (_resize(image, rng), EDIT_QUALITY)
    edits["crop"] = (_crop(image, rng), EDIT_QUALITY)
    edits["color_jitter"] = (_color_jitter(image, rng), EDIT_QUALITY)
    return [
        photo_file(
            f"near_duplicates/{original.name}/{variant}.jpg",
            NEAR_DUPLICATE,
            encode(edited, "JPEG", quality=quality),
            original.name,
            edited.size,
        )
        for variant, (edited, quality) in edits.items()
    ]


def _resize(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    short = min(image.size)
    low = min(short, MIN_SHORT_SIDE)
    high = max(int(short * 0.9), min(short - 1, low + 32))  # keeps a range to draw from when 90 % is under the low end
    target = int(rng.integers(low, max(low, high) + 1))  # the new short side
    scale = target / short
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    # Each side loses up to MAX_CROP of its length, never so much that the short side drops under the minimum.
    slack = max(0, min(image.size) - MIN_SHORT_SIDE) // 2
    left, right = (int(rng.integers(0, min(slack, int(image.width * MAX_CROP)) + 1)) for _ in range(2))
    top, bottom = (int(rng.integers(0, min(slack, int(image.height * MAX_CROP)) + 1)) for _ in range(2))
    return image.crop((left, top, image.width - right, image.height - bottom))


def _color_jitter(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(float(rng.uniform(1 - MAX_JITTER, 1 + MAX_JITTER)))
    return image
