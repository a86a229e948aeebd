"""`humans1b curate` on a sealed two-node Ray cluster (tests/ray_cluster_rig.py), run from the head's namespace and
submitted with `ray job submit`: the score stages run on both nodes (stats.json names them) and the shards are
byte-identical to a single-node run's; a worker node killed mid-score loses nothing: the run, or its re-run on what
is left of the cluster, ends with the same shards."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus
from tests.cli_runs import DEMO_CONFIG, HUMANS1B, REPO
from tests.ray_cluster_rig import RAY, SealedCluster, sealed_ray_cluster, stop_namespace_processes

FILES_PER_SHARD = 4  # many input shards, so the read and model work spreads over both nodes
SCORE_STAGES = ("decode", "phash", "detect", "head_pose", "clip", "aesthetic", "nsfw", "zero_shot")


def curate(out: Path, corpus: Path, *extra: str) -> list[str]:
    return [
        str(HUMANS1B), "curate", "--config", str(DEMO_CONFIG), f"input=[{corpus}]", f"output={out}",
        f"files_per_shard={FILES_PER_SHARD}", *extra,
    ]  # fmt: skip


def shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").iterdir())}


@pytest.fixture(scope="module")
def cluster() -> SealedCluster:
    with sealed_ray_cluster(num_cpus=2, dashboard=True) as running:
        yield running


@pytest.fixture(scope="module")
def single_node(tmp_path_factory) -> Path:
    """The sample corpus and one run of it on a local head of this machine (2 CPUs, 127.0.0.1)."""
    root = tmp_path_factory.mktemp("curate-multinode")
    build_sample_corpus(root / "corpus", SampleCorpusConfig())
    out = root / "single"
    env = {**os.environ, "TMPDIR": str(root)}
    done = subprocess.run(
        [*curate(out, root / "corpus" / "images"), "num_cpus=2"], capture_output=True, text=True, cwd=REPO, env=env,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_curate_on_two_nodes_matches_one_node(cluster: SealedCluster, single_node: Path):
    out = single_node.parent / "cluster"
    done = cluster.run(
        *curate(out, single_node.parent / "corpus" / "images", "--address", cluster.address), timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert shards(out) == shards(single_node)
    nodes = json.loads((out / "stats.json").read_text())["nodes"]
    assert set(SCORE_STAGES) <= set(nodes)
    both = set(cluster.node_ids.values())
    assert set().union(*(nodes[s] for s in SCORE_STAGES)) == both  # the score stages used the whole cluster
    assert set(nodes["candidates"]) <= both
    assert (
        json.loads((out / "stats.json").read_text())["stages"]
        == json.loads((single_node / "stats.json").read_text())["stages"]
    )  # the same funnel, stage by stage


def test_curate_submitted_as_a_ray_job_to_two_nodes_matches_one_node(cluster: SealedCluster, single_node: Path):
    out = single_node.parent / "job"
    corpus = single_node.parent / "corpus" / "images"
    job = cluster.run(
        RAY, "job", "submit", "--address", cluster.dashboard_url, "--working-dir", REPO, "--",
        sys.executable, "-m", "pipelines.curate_job", "--config", "configs/curation/demo.yaml", f"input=[{corpus}]",
        f"output={out}", f"files_per_shard={FILES_PER_SHARD}", timeout=900,
    )  # fmt: skip
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "succeeded" in job.stdout
    assert shards(out) == shards(single_node)
    nodes = json.loads((out / "stats.json").read_text())["nodes"]
    assert set().union(*(nodes[s] for s in SCORE_STAGES)) == set(cluster.node_ids.values())


def test_a_worker_node_killed_mid_score_loses_nothing(single_node: Path):
    """Its own cluster: the worker node's processes are all killed once a few input shards are scored."""
    out = single_node.parent / "node-killed"
    corpus = single_node.parent / "corpus" / "images"
    log = single_node.parent / "node-killed.log"
    with sealed_ray_cluster(num_cpus=2) as cluster, log.open("w") as stderr:
        job = subprocess.Popen(
            cluster.argv(*curate(out, corpus, "--address", cluster.address)),
            env=cluster.env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        deadline = time.monotonic() + 600
        while len(list((out / "candidates").glob("*.done.json"))) < 2:
            assert job.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "score never got to its second shard"
            time.sleep(0.2)
        stop_namespace_processes(cluster.worker_ns)
        try:
            status = job.wait(timeout=900)
        finally:
            job.kill()
        if status != 0:  # the run may fail with its node gone; its re-run on the head alone finishes the work
            again = cluster.run(*curate(out, corpus, "--address", cluster.address), timeout=900)
            assert again.returncode == 0, again.stderr[-3000:]
    assert shards(out) == shards(single_node)
