"""Pixels for the report: read back the images of chosen rows in one pass, shrink them to square tiles, and lay
tiles out as captioned PNG grids. An image that cannot be read back becomes a grey placeholder tile."""

import logging
from collections.abc import Iterable, Sequence

from PIL import Image, ImageDraw, ImageOps

from common.image_decode import DecodeConfig, decode_image
from curation.readers.fetch import Location, fetch_images

log = logging.getLogger(__name__)

BACKGROUND = (255, 255, 255)
PLACEHOLDER = (200, 200, 200)
INK = (40, 40, 40)
GAP = 4  # px between tiles
LINE = 16  # px per line of text


def load_thumbnails(locations: Iterable[Location], size: int) -> dict[Location, Image.Image]:
    """Square tiles (the whole image, padded) for every location whose bytes are still readable and decode."""
    wanted = sorted(set(locations), key=lambda loc: (loc[0], loc[1] or ""))
    if not wanted:
        return {}
    data = fetch_images(wanted)
    tiles = {}
    for loc in wanted:
        if loc not in data:
            continue
        decoded = decode_image(data[loc], DecodeConfig(min_short_side=1))
        if decoded.image is None:
            log.warning("thumbnail of %s: cannot decode (%s)", loc, decoded.reason)
            continue
        tiles[loc] = ImageOps.pad(decoded.image, (size, size), color=BACKGROUND)
    log.info("thumbnails: %d of %d images read back", len(tiles), len(wanted))
    return tiles


def placeholder(size: int) -> Image.Image:
    tile = Image.new("RGB", (size, size), PLACEHOLDER)
    draw = ImageDraw.Draw(tile)
    draw.line([(0, 0), (size - 1, size - 1)], fill=BACKGROUND, width=2)
    draw.line([(0, size - 1), (size - 1, 0)], fill=BACKGROUND, width=2)
    return tile


def tile_for(tiles: dict[Location, Image.Image], loc: Location | None, size: int) -> Image.Image:
    return tiles.get(loc) if loc in tiles else placeholder(size)


def grid_image(tiles: Sequence[Image.Image], columns: int, size: int, title: str) -> Image.Image:
    """Tiles in rows of `columns` under a one-line title."""
    columns = max(1, min(columns, len(tiles))) if tiles else 1
    rows = -(-len(tiles) // columns) if tiles else 0
    width = max(columns * (size + GAP) + GAP, 8 * len(title) + 2 * GAP)
    image = Image.new("RGB", (width, LINE + GAP + rows * (size + GAP) + GAP), BACKGROUND)
    ImageDraw.Draw(image).text((GAP, GAP), title, fill=INK)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        image.paste(tile, (GAP + c * (size + GAP), LINE + 2 * GAP + r * (size + GAP)))
    return image


def pairs_image(pairs: Sequence[tuple[Image.Image, Image.Image, str]], size: int, title: str) -> Image.Image:
    """One row per pair: removed tile, kept tile, caption; under a title and column headings."""
    captions = 8 * max([len(p[2]) for p in pairs] + [16])  # the default font is about 6 px a character
    width = max(3 * GAP + 2 * size + captions, 8 * len(title) + 2 * GAP)
    top = 2 * LINE + 2 * GAP
    image = Image.new("RGB", (width, top + max(len(pairs), 1) * (size + GAP) + GAP), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((GAP, GAP), title, fill=INK)
    draw.text((GAP, GAP + LINE), "removed", fill=INK)
    draw.text((2 * GAP + size, GAP + LINE), "kept (dup_of)", fill=INK)
    if not pairs:
        draw.text((GAP, top), "no pairs to show", fill=INK)
    for i, (removed, kept, caption) in enumerate(pairs):
        y = top + i * (size + GAP)
        image.paste(removed, (GAP, y))
        image.paste(kept, (2 * GAP + size, y))
        draw.text((3 * GAP + 2 * size, y + size // 2 - LINE // 2), caption, fill=INK)
    return image
