"""Inputs that attack the readers rather than the decoder: broken and tricky tars, a parquet without images, a
header that declares 30,000 x 30,000 pixels, a file name that is not UTF-8. Built next to a sample corpus, each
with the row it must give (reader or decoder reason, None = a valid image)."""

import io
import os
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common.reasons import RejectReason
from curation.sample_corpus.sources import Original, load_originals

HUGE_SIDE = 30_000  # 900 M pixels declared in a header of a few hundred bytes
NON_UTF8_NAME = b"caf\xe9.jpg"  # Latin-1 e-acute: what an old Windows or FTP crawl leaves on disk
_MTIME = 1_700_000_000  # fixed, so the tars are byte-identical from build to build


@dataclass(frozen=True)
class HostileRow:
    """One row an input must give: `path` relative to the hostile folder (undecodable bytes as \\xNN)."""

    kind: str
    path: str
    member: str | None
    reason: str | None  # None = a valid image


def huge_header_jpeg(image_bytes: bytes, side: int = HUGE_SIDE) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to declare side x side pixels; the data stays small."""
    sof = image_bytes.index(b"\xff\xc0")
    size = struct.pack(">HH", side, side)  # height, width after the segment length and the sample precision
    return image_bytes[: sof + 5] + size + image_bytes[sof + 9 :]


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.mtime = _MTIME
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    return info


def corrupt_tar(first: bytes, second: bytes) -> bytes:
    """Two samples, the second one's header overwritten by junk: the first is read, the damage is one row."""
    data = _tar([(_member("000000000.jpg"), first), (_member("000000001.jpg"), second)])
    header = 512 + -(-len(first) // 512) * 512  # where the second member's header starts
    return data[:header] + b"\xde\xad\xbe\xef" * 128 + data[header + 512 :]


def tricky_members_tar(image: bytes) -> bytes:
    """A valid sample next to a folder named as an image, a symlink, a `..` path and a sample with only json."""
    return _tar(
        [
            (_member("000000000.jpg"), image),
            (_member("000000001.jpg", tarfile.DIRTYPE), None),
            (_member("000000002.jpg", tarfile.SYMTYPE, "../../../etc/passwd"), None),
            (_member("../000000003.jpg"), image),
            (_member("000000004.json"), b'{"caption": "no image in this sample"}'),
        ]
    )


def build_hostile_inputs(out_dir: Path, originals: list[Original] | None = None) -> list[HostileRow]:
    """Write the hostile inputs under `out_dir` (a new folder); returns every row they must give, in no order."""
    by_name = {o.name: o for o in originals or load_originals()}
    bus, astronaut, zidane = by_name["bus"].data, by_name["astronaut"].data, by_name["zidane"].data
    out = Path(out_dir)
    for folder in ("mid_list", "tars"):
        (out / folder).mkdir(parents=True)
    files: dict[str, bytes] = {
        # "mid_list/" sorts between the sample corpus's malformed/ and near_duplicates/: damage mid-list.
        "mid_list/corrupt.tar": corrupt_tar(bus, zidane),
        "tars/tricky_members.tar": tricky_members_tar(zidane),
        # Two img2dataset runs both number their samples from 000000000: same member names, same bytes.
        "tars/dup_a.tar": _tar([(_member("000000000.jpg"), astronaut)]),
        "tars/dup_b.tar": _tar([(_member("000000000.jpg"), astronaut)]),
        "huge_30000x30000.jpg": huge_header_jpeg(bus),
    }
    for path, data in files.items():
        (out / path).write_bytes(data)
    os.makedirs(os.fsencode(out / "odd_names"))
    with open(os.path.join(os.fsencode(out / "odd_names"), NON_UTF8_NAME), "wb") as handle:
        handle.write(zidane)  # a valid image: only its name is wrong
    # A metadata parquet without image bytes is not an image input: discovery skips and counts it.
    pq.write_table(pa.table({"caption": ["a person", "two people"]}), out / "captions.parquet")
    pq.write_table(pa.table({"jpg": pa.array([bus, None], pa.binary())}), out / "with_null.parquet")
    odd_name = "odd_names/" + NON_UTF8_NAME.decode("utf-8", "backslashreplace")
    return [
        HostileRow("corrupt_tar_mid_list", "mid_list/corrupt.tar", "000000000.jpg", None),
        HostileRow("corrupt_tar_mid_list", "mid_list/corrupt.tar", None, RejectReason.ARCHIVE_DAMAGED),
        HostileRow("tar_member_valid", "tars/tricky_members.tar", "000000000.jpg", None),
        HostileRow("tar_member_directory", "tars/tricky_members.tar", "000000001.jpg", RejectReason.UNSAFE_MEMBER),
        HostileRow("tar_member_symlink", "tars/tricky_members.tar", "000000002.jpg", RejectReason.UNSAFE_MEMBER),
        HostileRow("tar_member_dotdot", "tars/tricky_members.tar", "../000000003.jpg", RejectReason.UNSAFE_MEMBER),
        HostileRow("tar_sample_json_only", "tars/tricky_members.tar", "000000004", RejectReason.NO_IMAGE_MEMBER),
        HostileRow("duplicate_keys_across_inputs", "tars/dup_a.tar", "000000000.jpg", None),
        HostileRow("duplicate_keys_across_inputs", "tars/dup_b.tar", "000000000.jpg", None),
        HostileRow("huge_header_30000x30000", "huge_30000x30000.jpg", None, RejectReason.TOO_LARGE),
        HostileRow("non_utf8_file_name", odd_name, None, RejectReason.BAD_FILE_NAME),
        HostileRow("parquet_null_image", "with_null.parquet", "0", None),
        HostileRow("parquet_null_image", "with_null.parquet", "1", RejectReason.NULL_IMAGE),
    ]
