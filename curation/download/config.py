"""Typed config of the download phase (configs/curation/download.yaml fills it; any key is overridable)."""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from omegaconf import MISSING, DictConfig

from common.config import bounded, check_ranges, load_config

# img2dataset's default opt-out directives: X-Robots-Tag values that forbid using an image for training.
DISALLOWED_DIRECTIVES = ["noai", "noimageai", "noindex", "noimageindex"]


@dataclass
class DownloadConfig:
    input: list[str] = field(default_factory=list)  # parquet / CSV / JSONL files or folders of them
    output: str = MISSING  # %05d.tar + %05d.parquet + %05d_stats.json go here
    input_format: str | None = None  # parquet | csv | jsonl; None: from each file's extension
    url_col: str = "url"  # img2dataset names: the input column holding the URL ...
    caption_col: str | None = "caption"  # ... and the caption (None or absent column: no captions)
    save_additional_columns: list[str] = field(default_factory=list)  # input columns copied to parquet and json
    number_sample_per_shard: int = bounded(10000, ge=1)  # URLs per output shard: the unit of work and of resume
    thread_count: int = bounded(32, ge=1)  # concurrent downloads inside one shard task
    timeout: float = bounded(10.0, gt=0)  # seconds for one socket operation: connecting, the TLS handshake, one read
    # seconds for one URL's whole fetch: every hop, retry, backoff wait, connect, headers and body. It holds against
    # a server that trickles bytes (where `timeout` never fires); past it the URL is `deadline_exceeded`.
    deadline: float = bounded(60.0, gt=0)
    retries: int = bounded(2, ge=0)  # extra attempts after a timeout, a connection error, HTTP 429 or 5xx
    backoff: float = bounded(0.5, ge=0)  # retry n waits uniform [0, backoff * 2**n] seconds ("full jitter")
    # a 429 or 503 with Retry-After waits that long instead of the backoff when it is at most this many seconds
    # and fits the deadline; a longer one ends the URL at once with http_429 / http_503
    retry_after_cap: float = bounded(30.0, ge=0)
    per_host_concurrency: int = bounded(4, ge=1)  # open requests to one host from one shard task
    max_bytes: int = bounded(32 * 1024 * 1024, ge=1)  # larger responses are cut off and reported too_large
    max_redirects: int = bounded(5, ge=0)
    allow_loopback: bool = False  # tests only: lets 127.0.0.0/8 and ::1 through the address guard
    user_agent: str = "humans1b-downloader/0.1 (+https://github.com/humans1b)"
    user_agent_token: str = "humans1b"  # X-Robots-Tag "humans1b: noai" applies to us, "otherbot: noai" does not
    disallowed_header_directives: list[str] = field(default_factory=lambda: list(DISALLOWED_DIRECTIVES))
    address: str | None = None  # a running Ray cluster; None starts a private local one on 127.0.0.1
    num_cpus: int | None = bounded(None, ge=1)  # local Ray only
    host: str = "127.0.0.1"  # where a local Ray head listens; see ScoreConfig.host
    task_num_cpus: float = bounded(0.5, gt=0)  # CPUs a shard task reserves: downloading is I/O bound

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.input_format not in (None, "parquet", "csv", "jsonl"):
            raise ValueError(f"input_format must be parquet, csv or jsonl (or null), got {self.input_format!r}")


def load_download_config(config_path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    return load_config(DownloadConfig, config_path=config_path, overrides=overrides)
