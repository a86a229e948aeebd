"""One curation run end to end: score -> select -> write -> report, on one Ray session (local or a cluster)."""

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from common.config import to_object
from common.ray_bootstrap import ray_session
from curation.config import CurateConfig, output_hash
from curation.report import ReportResult, build_report
from curation.score.runner import ScoreRun, run_score
from curation.select.runner import SelectRun, run_select
from curation.write.runner import WriteRun, run_write

log = logging.getLogger(__name__)


@dataclass
class CurateRun:
    score: ScoreRun
    select: SelectRun
    write: WriteRun
    report: ReportResult


def run_curate(cfg_node: DictConfig) -> CurateRun:
    cfg: CurateConfig = to_object(cfg_node)
    out = Path(cfg.output)
    with ray_session(cfg.address, num_cpus=cfg.num_cpus, host=cfg.host):
        score = run_score(cfg_node)
        select = run_select(out, cfg.select, seed=cfg.seed)
        write = run_write(out, cfg.write, cfg.decode, config_hash=output_hash(cfg_node))
    report = build_report(out, config=cfg.report)
    log.info("report: %s", report.html)
    return CurateRun(score, select, write, report)
