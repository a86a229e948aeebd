"""`humans1b curate select` on a sealed two-node Ray cluster selects exactly what it selects on one node, and its
tasks ran on both nodes."""

import importlib.util
import json
import shutil
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from common.config import to_object
from curation.config import load_curate_config
from curation.layout import SELECT_STATS, SELECTION
from curation.select.runner import run_select
from tests.cli_runs import HUMANS1B, REPO
from tests.ray_cluster_rig import SealedCluster, two_node_cluster

__all__ = ["two_node_cluster"]  # a fixture: pytest finds it among this module's names

ROWS, DIM, ROWS_PER_PART = 3000, 32, 250
STEPS = ("phash_dedup", "semdedup", "clustering", "sampling")
# Small enough for 3,000 rows on 1 CPU per node.
OVERRIDES = ("select.clusters.clusters=[24,6,2]", "select.semdedup.num_clusters=6", "select.sampling.fraction=0.5")
PER_RUN = {"seconds", "nodes"}  # where and how fast: the only stats allowed to differ between the two runs


def _bench_module(name: str):
    """bench/ holds scripts, not an installed package, and the repository root is not on sys.path under `pytest`:
    load the module from its file."""
    spec = importlib.util.spec_from_file_location(f"bench.{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """One synthetic scored run, and a byte-identical copy of it for the single-node select."""
    root = tmp_path_factory.mktemp("select-multinode")
    write_synthetic_run = _bench_module("synthetic_candidates").write_synthetic_run
    write_synthetic_run(root / "cluster", ROWS, DIM, rows_per_part=ROWS_PER_PART, seed=3, progress=False)
    shutil.copytree(root / "cluster", root / "local")
    return root / "cluster", root / "local"


def _selected_keys(run: Path) -> list[str]:
    # selection.parquet may be one file or a folder of parts
    return sorted(ds.dataset(run / SELECTION, format="parquet").to_table(columns=["key"]).column("key").to_pylist())


def _stats(run: Path) -> dict:
    return json.loads((run / SELECT_STATS).read_text())


def _counts(value):
    """`value` without the per-run fields, at any depth."""
    if isinstance(value, dict):
        return {k: _counts(v) for k, v in value.items() if k not in PER_RUN}
    if isinstance(value, list):
        return [_counts(v) for v in value]
    return value


def test_select_on_two_nodes_matches_one_node(two_node_cluster: SealedCluster, runs, ray_local):
    cluster_run, local_run = runs
    on_cluster = two_node_cluster.run(
        HUMANS1B, "curate", "select", f"output={cluster_run}", *OVERRIDES, "--address", two_node_cluster.address
    )
    assert on_cluster.returncode == 0, on_cluster.stderr[-3000:]
    # One node: the same config, run in this process on the session's local head (127.0.0.1).
    cfg = to_object(load_curate_config(None, [f"output={local_run}", *OVERRIDES]))
    run_select(local_run, cfg.select, seed=cfg.seed)

    keys = _selected_keys(cluster_run)
    assert keys == _selected_keys(local_run)
    stats, local_stats = _stats(cluster_run), _stats(local_run)
    assert 0 < stats["kept"] == len(keys) < stats["rows_in"]
    assert all(stats["steps"][step]["rejected"] for step in ("phash_dedup", "semdedup", "sampling"))  # all decided
    assert _counts(stats) == _counts(local_stats)

    node_ids = set(two_node_cluster.node_ids.values())
    assert len(node_ids) == 2
    assert sorted(stats["nodes"]) == stats["nodes"] and set(stats["nodes"]) == node_ids
    for step in STEPS:
        assert stats["steps"][step]["nodes"] and set(stats["steps"][step]["nodes"]) <= node_ids, step
    assert len(local_stats["nodes"]) == 1 and not set(local_stats["nodes"]) & node_ids
