"""Lists a local input tree with os.scandir, never following a symlink, and sorts out what each symlink leads to.

A walk that followed folder symlinks (as pyarrow's recursive listing does) reads a tree with `d/self -> ..` many
times over and one with two such loops for ever. Here every real folder is listed once; a symlink is an entry of
its own, resolved against the containment root (the realpath of the input root):

- to a folder inside the root: not descended (the folder is listed under its real path);
- to a file inside the root: read once per real file; skipped when that file is an input itself or an earlier
  link (in sorted order) already leads to it;
- outside the root, dangling or in a loop: a row with its reason, never opened.

FIFOs, sockets and devices are rows too (`not_a_regular_file`), whatever their names: they are never opened.
"""

import os
import stat
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from common.reasons import RejectReason
from curation.readers.globs import match_glob
from curation.readers.open_input import Refused, resolve_link


class LocalListing(NamedTuple):
    """Entries under an input root, as '/'-separated paths relative to it."""

    files: list[str]  # regular files
    links: list[str]  # symlinks, whatever they lead to
    others: list[str]  # FIFOs, sockets, character and block devices
    folders: list[str]  # real folders (for glob matching; folder symlinks are in `links`)


class SortedLinks(NamedTuple):
    accepted: dict[str, str]  # links to read -> their targets: distinct regular files inside the root
    refused: list[tuple[str, RejectReason]]  # links that get a row with a reason and are never opened
    skipped: Counter  # links that are neither, by why


def list_tree(base: str) -> LocalListing:
    """Every entry under the folder `base`; linear in the number of real entries (no symlink is followed)."""
    out = LocalListing([], [], [], [])
    pending = [""]
    while pending:
        relative = pending.pop()
        folder = os.path.join(base, relative) if relative else base
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as e:
            raise OSError(
                e.errno, f"cannot list the input folder {folder} ({e.strerror}): make it readable or leave it out"
            ) from e
        for entry in entries:
            path = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_symlink():
                out.links.append(path)
            elif entry.is_dir(follow_symlinks=False):
                out.folders.append(path)
                pending.append(path)
            elif entry.is_file(follow_symlinks=False):
                out.files.append(path)
            else:
                out.others.append(path)
    return out


def list_named(folder: str, name: str) -> LocalListing:
    """The single entry `name` of `folder`, as list_tree would list it (a file input: its folder is the root)."""
    mode = os.lstat(os.path.join(folder, name)).st_mode
    out = LocalListing([], [], [], [])
    if stat.S_ISLNK(mode):
        out.links.append(name)
    elif stat.S_ISDIR(mode):
        out.folders.append(name)
    elif stat.S_ISREG(mode):
        out.files.append(name)
    else:
        out.others.append(name)
    return out


def matching(listing: LocalListing, pattern: str) -> LocalListing:
    """The entries a glob pattern selects (an entry under a matched folder is selected too)."""
    selected = set(match_glob(pattern, listing.files + listing.links + listing.others, listing.folders))
    return LocalListing(
        *([p for p in entries if p in selected] for entries in (listing.files, listing.links, listing.others)),
        listing.folders,
    )


def sort_links(root: str, links: list[str], with_rows: set[str], is_input_name: Callable[[str], bool]) -> SortedLinks:
    """What each link becomes. `root` is the containment root, `with_rows` the paths that already give rows (the
    inputs and the non-regular entries of the walk), `is_input_name` the name rule regular files follow."""
    out = SortedLinks({}, [], Counter())
    claimed: set[str] = set()  # real files an earlier link already reads or records
    for link in sorted(links):
        try:
            target = resolve_link(root, link)
            mode = os.stat(os.path.join(root, target)).st_mode
        except Refused as e:
            out.refused.append((link, e.reason))
            continue
        except FileNotFoundError:  # the target went away between the two looks
            out.refused.append((link, RejectReason.DANGLING_SYMLINK))
            continue
        except OSError:  # e.g. a folder on the way that cannot be searched: the read records why
            out.refused.append((link, RejectReason.READ_ERROR))
            continue
        if stat.S_ISDIR(mode):
            out.skipped["links_to_folders"] += 1  # the folder is walked under its real path
        elif target in with_rows:
            out.skipped["links_to_inputs"] += 1
        elif target in claimed:
            out.skipped["more_links_to_one_file"] += 1
        elif not stat.S_ISREG(mode):
            claimed.add(target)
            out.refused.append((link, RejectReason.NOT_A_REGULAR_FILE))
        elif not is_input_name(link):
            out.skipped["other_files"] += 1
        else:
            claimed.add(target)
            out.accepted[link] = target
    return out
