"""Named reasons a row is rejected. Every drop in the project is one of these, never a bare exception."""

from enum import StrEnum


class RejectReason(StrEnum):
    # reading the raw input, before any decode
    READ_ERROR = "read_error"  # a file could not be opened or read (missing, permissions, network)
    ARCHIVE_DAMAGED = "archive_damaged"  # a tar or parquet truncated or corrupt: rows after the damage are lost
    UNSAFE_MEMBER = "unsafe_member"  # tar member with an absolute or `..` path, a link or a device
    FILE_TOO_LARGE = "file_too_large"  # over the per-file byte cap
    NO_IMAGE_MEMBER = "no_image_member"  # a tar sample with no image member (only json, txt, ...)
    DUPLICATE_MEMBER = "duplicate_member"  # a tar member name seen before in the same tar
    NULL_IMAGE = "null_image"  # a parquet row whose image cell is null
    # decode + validate
    EMPTY_FILE = "empty_file"
    NOT_AN_IMAGE = "not_an_image"
    TRUNCATED = "truncated"
    DECODE_ERROR = "decode_error"
    TOO_LARGE = "too_large"  # over the pixel cap: decompression-bomb guard
    TOO_SMALL = "too_small"  # short side under the minimum
    BAD_ASPECT_RATIO = "bad_aspect_ratio"
    # model-based filters
    NO_PERSON = "no_person"
    LOW_AESTHETIC = "low_aesthetic"
    NOT_PHOTO = "not_photo"
    TEXT_OVERLAY = "text_overlay"
    NSFW = "nsfw"  # the CLIP NSFW detector's P(nsfw) over the threshold
    # selection
    DUP_PHASH = "dup_phash"
    DUP_EMBEDDING = "dup_embedding"
    BALANCE_DOWNSAMPLED = "balance_downsampled"
    # reading the raw input (listed here to keep the order above)
    BAD_FILE_NAME = "bad_file_name"  # a file name that is not valid UTF-8: it cannot be stored or fetched again
    SYMLINK_OUTSIDE_INPUT = "symlink_outside_input"  # a symlink resolving outside its input root: never opened
    DANGLING_SYMLINK = "dangling_symlink"  # a symlink to nothing, or in a loop of symlinks (ELOOP)
    NOT_A_REGULAR_FILE = "not_a_regular_file"  # a FIFO, socket or device: never opened (a FIFO would block)


def stage_error(stage: str) -> str:
    """Reason for rows of a batch whose stage raised: the run goes on, the rows say where it failed."""
    return f"stage_error:{stage}"
