"""Valid images in the forms that trip up naive decoders: CMYK, 16-bit, palette transparency, grey + alpha,
animation, EXIF rotation. Each is built from an original large enough to pass the default DecodeConfig."""

from collections.abc import Callable

import numpy as np
from PIL import ExifTags, Image

from curation.sample_corpus.files import CorpusFile, encode
from curation.sample_corpus.sources import Original

EXIF_ROTATE_90_CW = 6  # the orientation a phone held upright writes: display = stored rotated 90° clockwise
TRANSPARENT_INDEX = 255  # palette entry left free by quantizing to 255 colours


def cmyk_jpeg(original: Original, rng: np.random.Generator) -> tuple[Image.Image, bytes]:
    cmyk = original.load().convert("RGB").convert("CMYK")
    return cmyk, encode(cmyk, "JPEG", quality=95)


def png_16bit(original: Original, rng: np.random.Generator) -> tuple[Image.Image, bytes]:
    # 8-bit v widened to v * 257 plus noise under half a step: a correct decoder gives back v exactly.
    gray = np.asarray(original.load().convert("L"), dtype=np.int32)
    noise = rng.integers(-128, 129, size=gray.shape)
    wide = np.clip(gray * 257 + noise, 0, 65535).astype(np.uint16)
    image = Image.fromarray(wide)  # mode I;16
    return image, encode(image, "PNG")


def palette_transparency_png(original: Original, rng: np.random.Generator) -> tuple[Image.Image, bytes]:
    # A block of the transparent entry, whose colour is black: a decoder must show it white.
    image = original.load().convert("RGB").quantize(colors=TRANSPARENT_INDEX)
    palette = ((image.getpalette() or []) + [0] * 768)[: 3 * TRANSPARENT_INDEX]
    image.putpalette(palette + [0, 0, 0] * (256 - TRANSPARENT_INDEX))
    w, h = image.width // 3, image.height // 3
    x, y = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
    image.paste(TRANSPARENT_INDEX, (x, y, x + w, y + h))
    return image, encode(image, "PNG", transparency=TRANSPARENT_INDEX)


def la_png(original: Original, rng: np.random.Generator) -> tuple[Image.Image, bytes]:
    # Alpha falls from opaque on the left to fully transparent on the right.
    gray = original.load().convert("L")
    alpha = np.tile(np.linspace(255, 0, gray.width).round().astype(np.uint8), (gray.height, 1))
    image = Image.merge("LA", (gray, Image.fromarray(alpha)))
    return image, encode(image, "PNG")


def animated_gif(original: Original, rng: np.random.Generator) -> tuple[Image.Image, bytes]:
    first = original.load().convert("RGB")
    frames = [first.transpose(Image.Transpose.ROTATE_180), first.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return first, encode(first, "GIF", save_all=True, append_images=frames, duration=200, loop=0)


def exif_rotated_jpeg(original: Original, rng: np.random.Generator) -> tuple[Image.Image, bytes]:
    # Stored sideways; the Orientation tag says how to turn it upright again.
    upright = original.load()
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = EXIF_ROTATE_90_CW
    return upright, encode(stored, "JPEG", quality=95, exif=exif.tobytes())


OddBuilder = Callable[[Original, np.random.Generator], tuple[Image.Image, bytes]]

# kind -> (original it is built from, extension, builder returning the upright image and the file bytes).
ODD_FORMATS: dict[str, tuple[str, str, OddBuilder]] = {
    "cmyk_jpeg": ("astronaut", "jpg", cmyk_jpeg),
    "png_16bit": ("camera", "png", png_16bit),
    "palette_transparency_png": ("rocket", "png", palette_transparency_png),
    "la_png": ("grace_hopper", "png", la_png),
    "animated_gif": ("motorcycle", "gif", animated_gif),
    "exif_rotated_jpeg": ("bus", "jpg", exif_rotated_jpeg),
}


def odd_format_files(originals: dict[str, Original], rng: Callable[[str], np.random.Generator]) -> list[CorpusFile]:
    files = []
    for kind, (origin, ext, build) in ODD_FORMATS.items():
        upright, data = build(originals[origin], rng(kind))
        files.append(
            CorpusFile(
                path=f"odd_formats/{kind}.{ext}",
                kind=kind,
                data=data,
                origin=origin,
                expected_reason=None,
                width=upright.width,
                height=upright.height,
            )
        )
    return files
