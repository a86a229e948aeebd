"""Runs the score phase: discover input shards, skip the finished ones, stream the rest through the stages on
Ray Data, write each shard's candidates as it completes, then sum every shard's funnel into stats.json."""

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import ray
from omegaconf import DictConfig

from common.config import ConfigError, save_resolved_config, to_object
from common.ray_bootstrap import ray_session
from common.schemas import candidate_schema
from curation.models.registry import check_weights
from curation.readers import READER_REASONS, InputShard, discover_input_shards, read_dataset
from curation.score.config import ScoreConfig
from curation.score.funnel import add_counts, check_invariant, reason_owner
from curation.score.sink import FRAGMENTS, RECORD_SCHEMA, CandidateSink, part_is_intact, read_marker, write_fragments
from curation.score.stage_groups import StageGroup, group_stages
from curation.score.stage_runner import apply_stage
from curation.stages.aesthetic import AestheticStage
from curation.stages.base import Stage
from curation.stages.clip_embed import ClipStage, clip_embed_dim
from curation.stages.decode import DecodeStage
from curation.stages.detect import DetectStage
from curation.stages.head_pose import HeadPoseStage
from curation.stages.nsfw import NsfwStage
from curation.stages.phash import PhashStage
from curation.stages.pixels import IMAGE
from curation.stages.zero_shot import ZeroShotStage

log = logging.getLogger(__name__)

CANDIDATES_DIR = "candidates"
STATS_NAME = "stats.json"


@dataclass
class ScoreRun:
    stats: dict
    shards_done_now: int
    shards_total: int
    seconds: float


def build_stages(cfg: ScoreConfig) -> list[Stage]:
    """The stages in pipeline order: cheap first, so models never see what a cheap check rejected."""
    s, m = cfg.stages, cfg.models
    return [
        DecodeStage(cfg.decode, s.decode.resources),
        PhashStage(cfg.decode, s.phash.resources),
        DetectStage(s.detect, m.detector, cfg.decode),
        HeadPoseStage(s.head_pose, m.pose, cfg.decode),
        ClipStage(s.clip, m.clip, cfg.decode),
        AestheticStage(s.aesthetic, m.aesthetic),
        NsfwStage(s.nsfw, m.nsfw),
        ZeroShotStage(s.zero_shot, m.zero_shot, m.clip),
    ]


def check_cpu_budget(stages: Sequence[Stage | StageGroup], cluster_cpus: float) -> None:
    """Model actors hold their CPUs for the whole run (a pool's floor, min_workers; Ray Data grows a pool above it
    only within the stage's share of the cluster); if they take them all, no read or decode task ever runs."""
    held = {s.name: s.resources.num_cpus * s.resources.min_workers for s in stages if s.needs_model}
    if sum(held.values()) > cluster_cpus - 1:
        raise ConfigError(
            f"model stages hold {sum(held.values()):g} CPUs ({held}) on a cluster of {cluster_cpus:g}, leaving less "
            "than one for reading and decoding: lower stages.<name>.resources.num_cpus or .min_workers "
            "(configs/curation/demo.yaml runs on 2 CPUs with 0.2 each)"
        )


def require_weights(cfg: ScoreConfig) -> None:
    """Fail before Ray starts, naming every missing weights file and the key to set; never downloads."""
    problems = check_weights(cfg.models)
    if problems:
        raise ConfigError("model weights are missing:\n  - " + "\n  - ".join(problems))


def check_resume_matches(shards: Sequence[InputShard], candidates: Path) -> None:
    for shard in shards:
        marker = read_marker(candidates, shard.shard_id)
        if marker is not None and marker["source"] != shard.shard_name:
            raise RuntimeError(
                f"{candidates} holds shard {shard.shard_id} of {marker['source']}, but the inputs now give "
                f"{shard.shard_name} there: the input set changed since that run; write to a new output directory"
            )


def shards_to_score(shards: Sequence[InputShard], candidates: Path) -> list[InputShard]:
    """Shards without a marker, or whose part no longer matches its marker (a stat and a footer read per shard:
    see part_is_intact, which logs and removes what it cannot trust)."""
    check_resume_matches(shards, candidates)
    todo = []
    for shard in shards:
        marker = read_marker(candidates, shard.shard_id)
        if marker is None or not part_is_intact(candidates, shard.shard_id, marker):
            todo.append(shard)
    return todo


def run_score(cfg_node: DictConfig) -> ScoreRun:
    cfg: ScoreConfig = to_object(cfg_node)
    out = Path(cfg.output)
    candidates = out / CANDIDATES_DIR
    if not cfg.input:
        raise ConfigError("no input given: set input=[folder, tar, parquet file or glob, ...]")
    shards = discover_input_shards(cfg.input, files_per_shard=cfg.files_per_shard)
    if not shards:
        raise ValueError(f"no input images, tars or parquet files found under {list(cfg.input)}")
    todo = shards_to_score(shards, candidates)
    save_resolved_config(cfg_node, out)
    if todo:
        require_weights(cfg)
    stages = build_stages(cfg)
    owner = reason_owner([(s.name, s.reasons) for s in stages], READER_REASONS)
    start = time.perf_counter()
    if todo:
        log.info("%d of %d input shards to score", len(todo), len(shards))
        schema = candidate_schema(clip_embed_dim(cfg.models.clip))
        try:
            _score(cfg, todo, shards, stages, owner, schema, candidates)
        except BaseException:  # stopped or failed: a shard without its marker is redone from scratch anyway
            shutil.rmtree(candidates / FRAGMENTS, ignore_errors=True)
            raise
    else:
        log.info("all %d input shards already scored; nothing to do", len(shards))
    stats = write_stats(out, shards, time.perf_counter() - start, len(todo))
    return ScoreRun(stats, len(todo), len(shards), time.perf_counter() - start)


def _score(
    cfg: ScoreConfig,
    todo: list[InputShard],
    shards: list[InputShard],
    stages: list[Stage],
    owner: dict[str, str],
    schema: pa.Schema,
    candidates: Path,
) -> None:
    """Streams `todo` through the stages on Ray; each shard's part and marker are written as it completes."""
    with ray_session(cfg.address, num_cpus=cfg.num_cpus, host=cfg.host):
        units = group_stages(stages)  # pixel stages share one worker and one decode per image
        check_cpu_budget(units, ray.cluster_resources().get("CPU", 0.0))
        sink = CandidateSink(
            candidates,
            schema=schema,
            shard_sources={s.shard_id: s.shard_name for s in shards},
            stage_names=[s.name for s in stages],
            owner=owner,
        )
        sink.clear_fragments()
        ds = read_dataset(todo)
        for unit in units:
            ds = apply_stage(ds, unit)
        # Candidates are written where they were scored: only one small record per fragment reaches here
        records = ds.drop_columns([IMAGE]).map_batches(
            write_fragments,
            fn_kwargs={"out_dir": str(candidates), "schema": schema},
            batch_format="pyarrow",
            batch_size=None,
            num_cpus=0.25,
        )
        for batch in records.iter_batches(batch_format="pyarrow", batch_size=None):
            sink.add(batch.cast(RECORD_SCHEMA))
        if sink.pending:
            raise RuntimeError(f"the stream ended with incomplete shards (id -> rows): {sink.pending}")
        empty = {s.shard_id for s in todo} - set(sink.started)
        for shard_id in sorted(empty):  # a shard with no rows at all never shows up in the stream
            sink.write_empty(shard_id)
        sink.finish()


def _later_phases_nodes(path: Path, score_nodes: dict) -> dict:
    try:
        old = json.loads(path.read_text()).get("nodes", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return (
        {k: v for k, v in old.items() if k not in score_nodes and isinstance(v, list)} if isinstance(old, dict) else {}
    )


def write_stats(out: Path, shards: Sequence[InputShard], seconds: float, done_now: int) -> dict:
    """Sum the markers of every shard (this run and earlier ones) into stats.json; checks the funnel invariant."""
    funnel: dict = {}
    stage_seconds: dict[str, float] = {}
    nodes: dict[str, set[str]] = {}
    for shard in shards:
        marker = read_marker(out / CANDIDATES_DIR, shard.shard_id)
        funnel = add_counts(funnel, marker["funnel"])
        for name, s in marker["stage_seconds"].items():
            stage_seconds[name] = stage_seconds.get(name, 0.0) + s
        for name, ids in marker.get("nodes", {}).items():  # markers of older runs have none
            nodes.setdefault(name, set()).update(ids)
    check_invariant(funnel)
    rows_in = next(iter(funnel.values()))["in"] if funnel else 0
    kept = list(funnel.values())[-1]["kept"] if funnel else 0
    rejected: dict[str, int] = {}
    for counts in funnel.values():
        rejected.update(counts["rejected"])
    stats = {
        "rows_in": rows_in,
        "kept": kept,
        "rejected": dict(sorted(rejected.items())),
        "stages": funnel,
        "stage_seconds": {k: round(v, 3) for k, v in stage_seconds.items()},
        # Ray node ids that ran each stage; later phases add theirs (write), kept when score is re-run
        "nodes": {**_later_phases_nodes(out / STATS_NAME, nodes), **{name: sorted(ids) for name, ids in nodes.items()}},
        "shards": len(shards),
        "last_run": {"shards_scored": done_now, "seconds": round(seconds, 3)},
    }
    (out / STATS_NAME).write_text(json.dumps(stats, indent=2) + "\n")
    return stats
