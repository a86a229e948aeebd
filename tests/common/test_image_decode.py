import io
import random
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from common.image_decode import DecodeConfig, DecodedImage, decode_image
from common.reasons import RejectReason
from curation.sample_corpus import NEAR_DUPLICATE, ORIGINAL, CorpusFile, SampleCorpusConfig, corpus_files

PERMISSIVE = DecodeConfig(min_short_side=1, max_aspect_ratio=1000.0)
MALFORMED_REASONS = {
    "empty_file": RejectReason.EMPTY_FILE,
    "truncated_jpeg": RejectReason.TRUNCATED,
    "text_as_jpg": RejectReason.NOT_AN_IMAGE,
    "decompression_bomb_png": RejectReason.TOO_LARGE,
    "corrupt_png": RejectReason.DECODE_ERROR,
    "one_pixel": RejectReason.TOO_SMALL,
    "extreme_aspect_ratio": RejectReason.BAD_ASPECT_RATIO,
}
VALID_ODD_KINDS = ["cmyk_jpeg", "png_16bit", "palette_transparency_png", "la_png", "animated_gif", "exif_rotated_jpeg"]


@pytest.fixture(scope="module")
def files() -> dict[str, CorpusFile]:
    """The sample corpus in memory: originals by origin name, every other kind by kind, near-duplicates by name."""
    by_id = {}
    for f in corpus_files(SampleCorpusConfig(seed=0)):
        by_id[f.origin if f.kind == ORIGINAL else f.name if f.kind == NEAR_DUPLICATE else f.kind] = f
    return by_id


def pixels(decoded: DecodedImage) -> np.ndarray:
    assert decoded.reason is None and decoded.image is not None
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (decoded.width, decoded.height)
    return np.asarray(decoded.image, dtype=np.int32)


def reference(data: bytes, mode: str = "RGB") -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert(mode), dtype=np.int32)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """An 8-bit RGB PNG cut after its first row: Pillow needs an IDAT to identify a PNG, the rest is missing."""
    first_row = zlib.compressobj().compress(b"\x00" * (1 + 3 * width))
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", first_row)


# --- the sample corpus ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MALFORMED_REASONS))
def test_malformed_kind_yields_its_reason(files, kind):
    f = files[kind]
    decoded = decode_image(f.data)
    assert decoded.reason == MALFORMED_REASONS[kind].value == f.expected_reason
    assert decoded.image is None
    assert (decoded.width, decoded.height) == (f.width, f.height)


def test_every_corpus_file_decodes_as_its_manifest_says(files):
    assert set(VALID_ODD_KINDS) | set(MALFORMED_REASONS) <= set(files)
    for f in files.values():
        decoded = decode_image(f.data)
        assert (decoded.reason, decoded.width, decoded.height) == (f.expected_reason, f.width, f.height), f.name
        if f.expected_reason is None:
            pixels(decoded)
    # The run changed none of Pillow's global switches.
    assert DecodeConfig().max_pixels == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_decode_sizes_match_the_defaults():
    assert DecodeConfig() == DecodeConfig(min_short_side=384, max_pixels=89_478_485, max_aspect_ratio=4.0)


def test_exif_rotated_jpeg_comes_out_upright(files):
    f = files["exif_rotated_jpeg"]
    with Image.open(io.BytesIO(f.data)) as stored:
        assert stored.size == (1080, 810)  # stored sideways
    upright = reference(files["bus"].data)
    decoded = pixels(decode_image(f.data))
    assert decoded.shape == upright.shape == (1080, 810, 3)
    assert np.abs(decoded - upright).mean() < 2.0  # one JPEG re-encode apart
    assert np.abs(decoded - upright[::-1, ::-1]).mean() > 30.0  # the other way up is far off


def test_png_16bit_is_scaled_not_clipped(files):
    f = files["png_16bit"]
    with Image.open(io.BytesIO(f.data)) as stored:
        assert stored.mode == "I;16"
        wide = np.asarray(stored, dtype=np.int32)
        assert np.array_equal(np.asarray(stored.convert("L")), np.minimum(wide, 255))  # convert() clips, not scales
    decoded = pixels(decode_image(f.data))
    gray = reference(files["camera"].data, "L")
    assert np.array_equal(decoded[..., 0], gray)  # noise under half an 8-bit step rounds away
    assert np.array_equal(decoded[..., 0], decoded[..., 1]) and np.array_equal(decoded[..., 0], decoded[..., 2])
    assert decoded.min() < 20 and decoded.max() > 230


def test_palette_transparency_is_white(files):
    f = files["palette_transparency_png"]
    with Image.open(io.BytesIO(f.data)) as stored:
        assert stored.mode == "P"
        index = np.asarray(stored)
        transparent = index == stored.info["transparency"]
        palette = np.asarray(stored.convert("RGB"), dtype=np.int32)
    assert transparent.sum() == (f.width // 3) * (f.height // 3)
    assert (palette[transparent] == 0).all()  # the hidden colour is black
    decoded = pixels(decode_image(f.data))
    assert (decoded[transparent] == 255).all()
    assert np.array_equal(decoded[~transparent], palette[~transparent])


def test_la_png_is_composited_on_white(files):
    f = files["la_png"]
    with Image.open(io.BytesIO(f.data)) as stored:
        assert stored.mode == "LA"
        gray, alpha = (np.asarray(band, dtype=np.float64) for band in stored.split())
    expected = gray * alpha / 255 + 255 * (1 - alpha / 255)
    decoded = pixels(decode_image(f.data))
    assert np.abs(decoded[..., 0] - expected).max() <= 1.0
    assert (decoded[:, -1] == 255).all()  # alpha 0 on the right edge
    assert np.array_equal(decoded[:, 0, 0], gray[:, 0])  # opaque on the left edge


def test_animated_gif_gives_its_first_frame(files):
    f = files["animated_gif"]
    with Image.open(io.BytesIO(f.data)) as stored:
        assert stored.n_frames == 3
        first = np.asarray(stored.convert("RGB"), dtype=np.int32)
        stored.seek(1)
        second = np.asarray(stored.convert("RGB"), dtype=np.int32)
    decoded = pixels(decode_image(f.data))
    assert np.array_equal(decoded, first)
    assert np.abs(decoded - second).mean() > 20.0
    assert np.abs(decoded - reference(files["motorcycle"].data)).mean() < 10.0  # a GIF palette apart


def test_cmyk_jpeg_matches_its_rgb_original(files):
    f = files["cmyk_jpeg"]
    with Image.open(io.BytesIO(f.data)) as stored:
        assert stored.mode == "CMYK"
    decoded = pixels(decode_image(f.data))
    assert np.abs(decoded - reference(files["astronaut"].data)).mean() < 3.0


# --- unit cases ----------------------------------------------------------------------------------------------------


def test_cmyk_colours():
    cmyk = Image.new("CMYK", (400, 400), (0, 255, 255, 0))  # red
    cmyk.paste((0, 0, 0, 255), (0, 0, 200, 400))  # black on the left
    decoded = pixels(decode_image(encode(cmyk, "JPEG", quality=95)))
    assert np.abs(decoded[:, 250:] - [255, 0, 0]).max() <= 8
    assert np.abs(decoded[:, :150]).max() <= 8


def test_la_grey_with_alpha():
    la = Image.new("LA", (400, 400), (0, 0))  # transparent black
    la.paste((100, 255), (0, 0, 200, 400))  # opaque grey on the left
    la.paste((0, 128), (200, 0, 400, 200))  # half-transparent black top right
    decoded = pixels(decode_image(encode(la, "PNG")))
    assert (decoded[:, :200] == 100).all()
    assert (np.abs(decoded[:200, 200:] - 127) <= 1).all()
    assert (decoded[200:, 200:] == 255).all()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_gradient_round_trip(fmt):
    wide = np.arange(400 * 400 * 2, dtype=np.int64).reshape(400, 800) % 65536  # every 16-bit value at least once
    data = encode(Image.fromarray(wide.astype(np.uint16)), fmt)
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.mode == "I;16"
    decoded = pixels(decode_image(data))
    expected = np.floor(wide / 257 + 0.5)  # 8-bit v is stored as 257 v
    assert np.array_equal(decoded[..., 0], expected)
    exact = wide % 257 == 0
    assert np.array_equal(decoded[..., 0][exact], wide[exact] // 257)


def test_32bit_int_and_float_images():
    ints = np.tile(np.array([0, 257 * 100, 65535, 70000, -5], dtype=np.int32), (400, 80))
    decoded = pixels(decode_image(encode(Image.fromarray(ints), "TIFF")))
    assert decoded[0, :5, 0].tolist() == [0, 100, 255, 255, 0]

    unit = np.tile(np.array([0.0, 0.5, 1.0, 0.25], dtype=np.float32), (400, 100))
    decoded = pixels(decode_image(encode(Image.fromarray(unit), "TIFF")))
    assert decoded[0, :4, 0].tolist() == [0, 128, 255, 64]

    byte_range = np.tile(np.array([0.0, 10.4, 300.0, 200.0], dtype=np.float32), (400, 100))
    decoded = pixels(decode_image(encode(Image.fromarray(byte_range), "TIFF")))
    assert decoded[0, :4, 0].tolist() == [0, 10, 255, 200]


@pytest.mark.parametrize(
    ("image", "fmt", "params", "expected"),
    [
        (Image.new("1", (400, 400), 1), "PNG", {}, (255, 255, 255)),
        (Image.new("L", (400, 400), 77), "JPEG", {"quality": 100}, (77, 77, 77)),
        (Image.new("P", (400, 400), 3), "PNG", {}, (9, 10, 11)),
        (Image.new("RGB", (400, 400), (0, 0, 0)), "PNG", {"transparency": (0, 0, 0)}, (255, 255, 255)),
        (Image.new("L", (400, 400), 5), "PNG", {"transparency": 5}, (255, 255, 255)),
        (Image.new("RGBA", (400, 400), (200, 0, 0, 0)), "WEBP", {"lossless": True}, (255, 255, 255)),
    ],
    ids=["1", "L", "P", "RGB-tRNS", "L-tRNS", "RGBA-webp"],
)
def test_modes_to_rgb(image, fmt, params, expected):
    if image.mode == "P":
        image.putpalette([v % 256 for i in range(256) for v in (3 * i, 3 * i + 1, 3 * i + 2)])
    decoded = pixels(decode_image(encode(image, fmt, **params)))
    assert (decoded == expected).all()


def test_too_large_is_decided_from_the_header():
    data = png_header_only(2000, 1500)  # no pixel data: decoding would fail
    assert decode_image(data, PERMISSIVE).reason == RejectReason.TRUNCATED
    decoded = decode_image(data, DecodeConfig(max_pixels=2000 * 1500 - 1))
    assert (decoded.reason, decoded.width, decoded.height, decoded.format) == ("too_large", 2000, 1500, "PNG")


def test_over_the_default_pixel_cap_under_pillows_hard_limit():
    data = png_header_only(10_000, 10_000)  # 100 M pixels: Pillow only warns, the size rule rejects
    with pytest.warns(Image.DecompressionBombWarning):
        decoded = decode_image(data)
    assert (decoded.reason, decoded.width, decoded.height) == ("too_large", 10_000, 10_000)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_raised_as_error_is_too_large():
    decoded = decode_image(png_header_only(10_000, 10_000), DecodeConfig(max_pixels=10**9))
    assert decoded.reason == RejectReason.TOO_LARGE


def test_size_rules_use_the_oriented_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(Image.new("RGB", (300, 1000)), "JPEG", exif=exif.tobytes())
    decoded = decode_image(data)
    assert (decoded.reason, decoded.width, decoded.height) == ("too_small", 1000, 300)
    decoded = decode_image(data, DecodeConfig(min_short_side=300, max_aspect_ratio=3.0))
    assert (decoded.reason, decoded.width, decoded.height) == ("bad_aspect_ratio", 1000, 300)
    decoded = decode_image(data, DecodeConfig(min_short_side=300))
    assert pixels(decoded).shape == (300, 1000, 3)


@pytest.mark.parametrize(
    ("size", "config", "reason"),
    [
        ((383, 1000), DecodeConfig(), "too_small"),
        ((384, 1000), DecodeConfig(), None),
        ((400, 1600), DecodeConfig(), None),  # exactly 4:1
        ((400, 1601), DecodeConfig(), "bad_aspect_ratio"),
        ((1601, 400), DecodeConfig(), "bad_aspect_ratio"),
        ((300, 900), DecodeConfig(min_short_side=300, max_aspect_ratio=2.5), "bad_aspect_ratio"),
        ((300, 900), DecodeConfig(min_short_side=300, max_aspect_ratio=3.0), None),
    ],
)
def test_size_thresholds(size, config, reason):
    decoded = decode_image(encode(Image.new("RGB", size), "PNG"), config)
    assert (decoded.reason, decoded.width, decoded.height) == (reason, *size)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # a mutated header can ask for it
def test_mutated_files_never_raise(files):
    rng = random.Random(0)
    sources = [files[kind].data for kind in ("la_png", "one_pixel", "extreme_aspect_ratio")]
    sources.append(encode(Image.new("RGB", (400, 400), (10, 20, 30)), "WEBP"))
    reasons = set()
    for _ in range(300):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(min(len(data), 600))] = rng.randrange(256)
        reasons.add(decode_image(bytes(data), PERMISSIVE).reason)
    assert reasons <= {None, *RejectReason}
    assert len(reasons) >= 3  # the mutations reached more than one failure path


def test_decoding_does_not_depend_on_ultralytics_being_imported(tmp_path, monkeypatch):
    # ultralytics patches Image.open to fetch a HEIF plugin on the first unidentified file; the decoder must give
    # the same answers in a process that imported it (a Ray worker that also runs a YOLO stage).
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("YOLO_AUTOINSTALL", "0")
    import ultralytics.utils.patches  # noqa: F401 - imported for its side effect on PIL

    assert decode_image(b"<html>404 not found</html>").reason == "not_an_image"
    assert decode_image(b"\x00" * 64).reason == "not_an_image"
