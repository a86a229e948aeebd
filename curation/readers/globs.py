"""Globs over any pyarrow filesystem: the root a glob lists from, and which listed paths it matches."""

import os
import re

from curation.readers.shard import is_uri

_WILDCARD = re.compile(r"[*?\[]")


def split_glob(given: str) -> tuple[str, str | None]:
    """(root, glob pattern relative to it, or None without wildcards); local roots become absolute."""
    path, question, query = given.partition("?") if is_uri(given) else (given, "", "")
    parts = path.split("/")
    first = next((i for i, part in enumerate(parts) if _WILDCARD.search(part)), None)
    if first is None:
        return (given if is_uri(given) else os.path.abspath(given)), None
    if is_uri(given):
        if first <= 2:  # "s3:", "", "bucket": a wildcard in the scheme or the bucket
            raise ValueError(f"input {given!r}: wildcards are supported below the bucket only")
        return "/".join(parts[:first]) + question + query, "/".join(parts[first:])
    root = "/".join(parts[:first]) or ("/" if path.startswith("/") else ".")
    return os.path.abspath(root), "/".join(parts[first:])


def glob_regex(pattern: str) -> re.Pattern[str]:
    """`*` and `?` stay inside one path component, `**` spans any number of them, `[...]` is a character class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def match_glob(pattern: str, files: list[str], dirs: list[str]) -> list[str]:
    """Files the pattern matches, and every file under a folder it matches (as a shell glob would give them)."""
    regex = glob_regex(pattern)
    matched_dirs = {d for d in dirs if regex.match(d)}

    def under_matched(path: str) -> bool:
        parts = path.split("/")
        return any("/".join(parts[:n]) in matched_dirs for n in range(1, len(parts)))

    return [f for f in files if regex.match(f) or under_matched(f)]
