"""`humans1b curate download`: URL lists (parquet, CSV, JSONL) into img2dataset-layout shards, one row per URL.

The download refuses private, loopback, link-local and cloud-metadata addresses on every hop, honours X-Robots-Tag
opt-outs, and resumes per output shard (a shard is done once its `_stats.json` exists).
"""

from curation.download.config import DownloadConfig, load_download_config
from curation.download.runner import DownloadRun, run_download

__all__ = ["DownloadConfig", "DownloadRun", "load_download_config", "run_download"]
