"""URL lists (parquet, CSV, JSONL; local paths or URIs) into one table with img2dataset column names, and its
split into output shards of `number_sample_per_shard` rows each, in input order (files sorted by path)."""

import logging
import math
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq

from common.filesystem import resolve
from curation.download.config import DownloadConfig

log = logging.getLogger(__name__)

URL, CAPTION = "url", "caption"
FORMAT_OF_SUFFIX = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


def list_url_files(inputs: Sequence[str]) -> list[str]:
    """The files of `inputs`: files as given, folders walked for *.parquet / *.csv / *.jsonl, sorted by path."""
    if isinstance(inputs, str):
        raise TypeError(f"input must be a list of files or folders, got the string {inputs!r}")
    files: list[str] = []
    for given in inputs:
        fs, base = resolve(given)
        info = fs.get_file_info(base)
        if info.type == pafs.FileType.File:
            files.append(given)
        elif info.type == pafs.FileType.Directory:
            found = fs.get_file_info(pafs.FileSelector(base, recursive=True))
            names = sorted(
                f.path for f in found if f.type == pafs.FileType.File and _suffix(f.path) in FORMAT_OF_SUFFIX
            )
            prefix = given.partition("://")[0] + "://" if "://" in given else ""
            files += [prefix + name for name in names]
        else:
            raise FileNotFoundError(f"input {given!r} is not an existing file or folder of URL lists")
    if not files:
        raise FileNotFoundError(f"no URL lists ({', '.join(FORMAT_OF_SUFFIX)}) under {list(inputs)}")
    return files


def _suffix(path: str) -> str:
    name = path.rpartition("/")[2].lower()
    return "." + name.rpartition(".")[2] if "." in name else ""


def _read_file(path: str, fmt: str | None) -> pa.Table:
    fmt = fmt or FORMAT_OF_SUFFIX.get(_suffix(path))
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path}: name it *.parquet, *.csv or *.jsonl, or set input_format")
    fs, inner = resolve(path)
    if fmt == "parquet":
        return pq.read_table(inner, filesystem=fs)
    with fs.open_input_stream(inner) as stream:
        return pacsv.read_csv(stream) if fmt == "csv" else pajson.read_json(stream)


def read_url_table(cfg: DownloadConfig) -> pa.Table:
    """Columns `url`, `caption` (null when there is none), then `save_additional_columns`, as in the input."""
    tables = []
    for path in list_url_files(cfg.input):
        table = _read_file(path, cfg.input_format)
        wanted = [cfg.url_col, *cfg.save_additional_columns]
        missing = [c for c in wanted if c not in table.column_names]
        if missing:
            raise ValueError(
                f"{path} has no column {missing} (columns: {table.column_names}); set url_col / "
                "save_additional_columns to the names in the file"
            )
        has_caption = cfg.caption_col is not None and cfg.caption_col in table.column_names
        caption = table[cfg.caption_col].cast(pa.string()) if has_caption else pa.nulls(table.num_rows, pa.string())
        extra = {c: table[c] for c in cfg.save_additional_columns}
        tables.append(pa.table({URL: table[cfg.url_col].cast(pa.string()), CAPTION: caption, **extra}))
    table = pa.concat_tables(tables, promote_options="permissive")
    log.info("%d URLs from %d files", table.num_rows, len(tables))
    return table


def split_shards(table: pa.Table, number_sample_per_shard: int) -> list[pa.Table]:
    n = number_sample_per_shard
    return [table.slice(start, n) for start in range(0, table.num_rows, n)]


def sample_keys(shard_id: int, count: int, number_sample_per_shard: int, shard_count: int) -> list[str]:
    """img2dataset's keys: the shard id then the row inside the shard, zero-padded ("000010002")."""
    shard_digits = max(5, math.ceil(math.log10(max(shard_count, 1) + 1)))
    row_digits = max(1, math.ceil(math.log10(number_sample_per_shard)))
    return [f"{shard_id:0{shard_digits}d}{row:0{row_digits}d}" for row in range(count)]
