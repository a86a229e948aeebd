"""Paths and URIs through pyarrow's filesystem layer, so local folders and object stores read the same way."""

import os

import pyarrow.fs as pafs


def resolve(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI such as s3://bucket/prefix."""
    path = os.fspath(path)
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def open_input_stream(path: str | os.PathLike):
    fs, inner = resolve(path)
    return fs.open_input_stream(inner)


def open_input_file(path: str | os.PathLike):
    """A seekable file, for random access by byte offset."""
    fs, inner = resolve(path)
    return fs.open_input_file(inner)
