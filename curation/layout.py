"""File names inside a curation run directory: the contract between the phases and the report."""

from common.config import ConfigError

CONFIG = "config.yaml"  # the resolved config of the run
CANDIDATES_DIR = "candidates"  # score: part-XXXXX.parquet + part-XXXXX.done.json per input shard
SCORE_STATS = "stats.json"  # score: funnel per stage, written when every input shard is done
SELECT_DIR = "select"  # select: one parquet per step, then rejected.parquet
SELECT_REJECTED = "rejected.parquet"
SELECTION = "selection.parquet"  # select: the rows to write, with cluster ids
SELECT_STATS = "select_stats.json"
SHARDS_DIR = "shards"  # write: %05d.tar + %05d.parquet + %05d_stats.json
MANIFEST = "manifest.json"
REPORT_DIR = "report"


class PhaseNotRunError(ConfigError):
    """A phase was asked for before the phase it reads from has finished in that directory: a usage error."""
