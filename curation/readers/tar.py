"""img2dataset / WebDataset tars, streamed (works on non-seekable object-store streams): one row per image member.

An image row of an uncompressed tar records where its bytes lie in the file (`member_offset`, `member_bytes`), so
the write phase reads them back with one bounded read instead of streaming the tar again.

Every sample is accounted for: an image member gives its row; a sample without one gives a `no_image_member` row
keyed by the sample's key; unsafe and duplicate members give rows; damage ends the read with one row for it,
after the rows of everything read before it.
"""

import logging
import lzma
import tarfile
import zlib

import pyarrow as pa

from common.reasons import RejectReason
from common.safe_tar import UnsafeTarError, check_member_name
from common.shard_reader import split_member_name
from curation.readers.open_input import InputTree, Refused
from curation.readers.rows import MAX_FILE_BYTES, ShardRows
from curation.readers.shard import IMAGE_EXTENSIONS, InputShard

log = logging.getLogger(__name__)

_END_ERROR = "_humans1b_end_error"
# What a damaged tar (or its gzip/xz layer) raises while streaming; OSError is the byte stream itself failing.
_DAMAGE_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError)


class _EndTrackingTarInfo(tarfile.TarInfo):
    """Keeps the header error that ended iteration: after the first member, tarfile stops quietly on a truncated,
    corrupt or missing header just as on the end-of-archive zero blocks, and only the latter is a complete tar."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tar)
        except tarfile.HeaderError as e:
            setattr(tar, _END_ERROR, e)
            raise


class _TarRows:
    def __init__(self, shard: InputShard) -> None:
        self.rows = ShardRows(shard.shard_id)
        self.source, self.key_source = shard.uris[0], shard.key_source(shard.paths[0])
        self.sample: str | None = None  # key of the sample being read
        self.sample_has_row = False
        self.seen: set[str] = set()  # member names read
        self.used: dict[str | None, int] = {}  # row members so far: keys are a hash of them, so they must differ

    def add(
        self, member: str | None, image: bytes | None, reason: str | None = None, at: tuple[int, int] | None = None
    ) -> None:
        count = self.used[member] = self.used.get(member, 0) + 1
        if count > 1:  # a repeated name, or a sample key that comes back after other samples
            member = f"{member}#{count}"
        self.rows.add(source=self.source, key_source=self.key_source, member=member, image=image, reason=reason, at=at)

    def start_member(self, name: str, normalised: str) -> str | None:
        """The member's sample key, after closing the previous sample; None for a repeated name (row added)."""
        sample, _ = split_member_name(normalised)
        if sample != self.sample:
            self.end_sample()
            self.sample = sample
        if normalised in self.seen:
            self.add(name, None, RejectReason.DUPLICATE_MEMBER)
            self.sample_has_row = True
            return None
        self.seen.add(normalised)
        return sample

    def end_sample(self) -> None:
        if self.sample is not None and not self.sample_has_row:
            self.add(self.sample, None, RejectReason.NO_IMAGE_MEMBER)
        self.sample, self.sample_has_row = None, False


def read_tar_shard(shard: InputShard, *, max_file_bytes: int = MAX_FILE_BYTES) -> pa.Table:
    """One row per image member in archive order, plus the rows that account for everything else."""
    out = _TarRows(shard)
    reading: str | None = None  # the member whose data is being read when damage hits
    try:
        # Opened as stored: tarfile's "r|*" detects gzip/bz2/xz itself, from the bytes rather than the name.
        with (
            InputTree(shard.root).open(shard.paths[0]) as stream,
            tarfile.open(
                fileobj=stream, mode="r|*", tarinfo=_EndTrackingTarInfo, encoding="utf-8", errors="backslashreplace"
            ) as tar,
        ):
            # Offsets count bytes of the tar stream: they are file offsets only when no gzip/bz2/xz layer is under it.
            plain = getattr(tar.fileobj, "comptype", None) == "tar"
            for info in tar:
                try:
                    normalised = check_member_name(info.name)
                except UnsafeTarError as e:
                    log.warning("%s: %s", out.source, e)
                    out.add(info.name, None, RejectReason.UNSAFE_MEMBER)
                    continue
                _, ext = split_member_name(normalised)
                # A folder entry is structure, not a sample, unless it is named as an image: then it is recorded.
                if (info.isdir() and ext.lower() not in IMAGE_EXTENSIONS) or out.start_member(
                    info.name, normalised
                ) is None:
                    continue
                if not info.isfile():  # a link or device could point anywhere outside the archive; a folder is no image
                    out.add(info.name, None, RejectReason.UNSAFE_MEMBER)
                elif ext.lower() not in IMAGE_EXTENSIONS:
                    continue  # metadata (json, txt, ...): its data is skipped unread
                elif info.size > max_file_bytes:
                    out.add(info.name, None, RejectReason.FILE_TOO_LARGE)
                else:
                    reading = info.name
                    data = tar.extractfile(info).read()
                    reading = None
                    out.add(info.name, data, at=(info.offset_data, info.size) if plain else None)
                out.sample_has_row = True
            end = getattr(tar, _END_ERROR, None)
        if not isinstance(end, tarfile.EOFHeaderError):
            raise tarfile.ReadError(f"the archive ends without its end-of-archive blocks ({end})")
    except _DAMAGE_ERRORS as e:
        _record_failure(out, reading, RejectReason.ARCHIVE_DAMAGED, e)
    except Refused as e:  # a symlink out of the tree, a FIFO, a device: not opened
        _record_failure(out, reading, e.reason, e)
    except OSError as e:
        _record_failure(out, reading, RejectReason.READ_ERROR, e)
    out.end_sample()
    return out.rows.table()


def _record_failure(out: _TarRows, reading: str | None, reason: RejectReason, error: Exception) -> None:
    """One row for the failure: on the member being read, else on the current sample if it has no row yet."""
    log.warning("%s: %s after %d rows: %s", out.source, reason, len(out.rows), error)
    if reading is not None:
        out.add(reading, None, reason)
        out.sample_has_row = True
    elif out.sample is not None and not out.sample_has_row:
        out.add(out.sample, None, reason)
        out.sample_has_row = True
    else:
        out.add(None, None, reason)
