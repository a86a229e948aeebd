"""Stable sample keys: a hash of where the bytes came from, usable as a WebDataset key (no dots)."""

import hashlib

KEY_HEX_CHARS = 20  # 80 bits: a collision among 4 B keys has probability ~1e-5


def sample_key(source: str, member: str | None = None) -> str:
    """Key of the image at `source` (a file or tar URI) and, inside a container, `member`."""
    digest = hashlib.sha256(f"{source}\0{member or ''}".encode()).hexdigest()
    return digest[:KEY_HEX_CHARS]
