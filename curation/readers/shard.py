"""The input shard: the unit of work and of resume of the score phase, and the names its rows are keyed by."""

import json
from dataclasses import asdict, dataclass
from typing import Literal

ShardKind = Literal["folder", "tar", "parquet"]

# Files of a folder are taken by extension only: a web folder holds files with wrong extensions (a text page
# saved as .jpg), which the decode stage rejects by content; files outside this list are never read.
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "heic", "heif", "avif"})
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
PARQUET_SUFFIX = ".parquet"


def is_uri(path: str) -> bool:
    return "://" in path


def has_image_extension(name: str) -> bool:
    _, dot, ext = name.rpartition(".")
    return bool(dot) and ext.lower() in IMAGE_EXTENSIONS


def is_utf8(name: str) -> bool:
    """False for a name read from disk that is not valid UTF-8 (os.fsdecode leaves surrogate escapes in it)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(name: str) -> str:
    """A name with its undecodable bytes spelled as \\xNN: storable in parquet and hashable into a key."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def join(root: str, path: str) -> str:
    """`path` (relative, '/'-separated) under `root`; a URI keeps its ?query (filesystem options) at the end."""
    base, question, query = root.partition("?") if is_uri(root) else (root, "", "")
    return f"{base.rstrip('/')}/{path}{question}{query}"


@dataclass(frozen=True)
class InputShard:
    """One tar, one parquet file, or a chunk of a folder's files (sorted)."""

    shard_id: int  # index in the sorted list discover_input_shards returns
    kind: ShardKind
    root: str  # the input root: an absolute local folder, or a URI prefix as given
    paths: tuple[str, ...]  # '/'-separated, relative to root: the tar or parquet file, or the chunk's files
    image_column: str | None = None  # parquet: the column holding the image bytes

    @property
    def uris(self) -> tuple[str, ...]:
        """Where each file of the shard is read from."""
        return tuple(join(self.root, path) for path in self.paths)

    @property
    def uri(self) -> str:
        """The tar or parquet file; for a folder chunk, its input root (`paths` says which files)."""
        return self.uris[0] if self.kind != "folder" else self.root

    @property
    def shard_name(self) -> str:
        """Stable across runs and machines: the key source of the file, or `first..last` of a folder chunk."""
        first = self.key_source(self.paths[0])
        return first if len(self.paths) == 1 else f"{first}..{self.paths[-1]}"

    def key_source(self, path: str) -> str:
        """What keys are hashed from: the path relative to the input root for local files, so a moved corpus keeps
        its keys; the whole URI (without ?query options) for object stores."""
        if not is_uri(self.root):
            return path
        return join(self.root.partition("?")[0], path)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "InputShard":
        fields = json.loads(text)
        return cls(**{**fields, "paths": tuple(fields["paths"])})
