"""`humans1b curate [PHASE]`: the whole curation (score -> select -> write -> report) or one phase of it, on local
Ray or on a cluster (--address). Every phase reads the same config, so a phase re-run sees the same settings.
Each command holds its output directory's lock (common.run_lock) from start to end: one run per directory."""

import argparse
from pathlib import Path

from omegaconf import DictConfig

from common.config import ConfigError, add_config_arguments, to_object
from common.ray_bootstrap import ray_session
from common.run_lock import output_lock
from curation.config import CurateConfig, load_curate_config, output_hash
from curation.curate import run_curate
from curation.download import load_download_config, run_download
from curation.download.runner import summary_line as download_summary
from curation.report import build_report
from curation.score.runner import run_score
from curation.select.runner import run_select
from curation.write.runner import run_write

NAME = "curate"
HELP = "curate raw images into shards: score, select, write and report (or one PHASE of them)"
PHASES = ("score", "select", "write", "report")
DOWNLOAD = "download"  # runs before the four, from URL lists, with its own config file (DownloadConfig)
EPILOG = """phases (default: all four, in order):
  score   decode, validate, hash and score every input image into candidates/*.parquet
  select  phash dedup, embedding dedup, hierarchical k-means and balanced sampling into selection.parquet
  write   the selected images as WebDataset shards under shards/, plus manifest.json
  report  report/index.html, stats.json and plots (also: humans1b stats DIR)

download (never part of the default run; its own config, e.g. configs/curation/download.yaml):
  download  URL lists (parquet/CSV/JSONL) into img2dataset shards: 00000.tar + .parquet + _stats.json,
            the input of score: humans1b curate download --config configs/curation/download.yaml \
                input=[urls.parquet] output=/data/raw

example: humans1b curate --config configs/curation/production.yaml input=[/data/raw] output=/data/curated"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    add_config_arguments(parser)
    parser.add_argument("--address", help="Ray cluster to run on (host:port, ray://host:port or auto)")


def _phase_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    words = list(args.overrides)
    phase = words.pop(0) if words and words[0] in (*PHASES, DOWNLOAD) else None
    if any("=" not in w for w in words):
        bad = next(w for w in words if "=" not in w)
        raise ConfigError(
            f"{bad!r} is neither a phase ({', '.join(PHASES)}) nor a KEY=VALUE override "
            f"(`{DOWNLOAD}` downloads URL lists into shards first)"
        )
    return phase, words + ([f"address={args.address}"] if args.address else [])


def run(args: argparse.Namespace) -> int:
    phase, overrides = _phase_and_overrides(args)
    if phase == DOWNLOAD:
        download_node = load_download_config(args.config, overrides)
        with output_lock(download_node.output):
            print(download_summary(run_download(download_node)))
        return 0
    cfg_node = load_curate_config(args.config, overrides)
    cfg: CurateConfig = to_object(cfg_node)
    out = Path(cfg.output)
    with output_lock(out):
        _run_phase(phase, cfg_node, cfg, out)
    return 0


def _run_phase(phase: str | None, cfg_node: DictConfig, cfg: CurateConfig, out: Path) -> None:
    if phase is None:
        result = run_curate(cfg_node)
        for line in summary_lines(result.score, result.select, result.write):
            print(line)
        print(f"report: {result.report.html}")
    elif phase == "score":
        print(summary_lines(score=run_score(cfg_node))[0])
    elif phase == "select":
        with ray_session(cfg.address, num_cpus=cfg.num_cpus, host=cfg.host):
            select = run_select(out, cfg.select, seed=cfg.seed)
        print(summary_lines(select=select)[0])
    elif phase == "write":
        with ray_session(cfg.address, num_cpus=cfg.num_cpus, host=cfg.host):
            write = run_write(out, cfg.write, cfg.decode, config_hash=output_hash(cfg_node))
        print(summary_lines(write=write)[0])
    else:
        print(f"report: {build_report(out, config=cfg.report).html}")


def summary_lines(score=None, select=None, write=None) -> list[str]:
    """One line per phase that ran: what went in, what came out, what was rejected."""
    lines = []
    if score is not None:
        stats = score.stats
        rejected = ", ".join(f"{reason} {n}" for reason, n in stats["rejected"].items()) or "none"
        done_all = score.shards_done_now == score.shards_total
        rate = (
            f"{stats['rows_in'] / score.seconds:.1f} images/s"
            if done_all and stats["rows_in"] and score.seconds > 0
            else f"{score.shards_done_now}/{score.shards_total} shards"
        )
        lines.append(f"score: {stats['rows_in']} rows in, {stats['kept']} kept; rejected: {rejected}; {rate}")
    if select is not None:
        stats = select.stats
        removed = {r: n for step in stats["steps"].values() for r, n in step["rejected"].items()}
        removed_text = ", ".join(f"{r} {n}" for r, n in removed.items()) or "none"
        lines.append(f"select: {stats['rows_in']} rows in, {stats['kept']} selected; removed: {removed_text}")
    if write is not None:
        m = write.manifest
        lines.append(
            f"write: {m['samples']} samples in {len(m['shards'])} shards ({write.shards_done_now} written now); "
            f"failed {len(m['failed'])}"
        )
    return lines
