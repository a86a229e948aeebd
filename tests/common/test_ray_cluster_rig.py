"""The sealed two-node rig (tests/ray_cluster_rig.py): a real 2-node Ray cluster that tasks spread over, with no way
out of its namespaces, and nothing left behind once it is closed."""

import json
import subprocess
import sys
from collections import Counter

import psutil

from tests.ray_cluster_rig import HEAD_IP, IP, SUBNET, WORKER_IP, namespace_pids, sealed_ray_cluster

TASKS = 8

# Joins sys.argv[1] from the head's namespace and runs TASKS tasks with SPREAD; prints the driver's node id and the
# node id each task ran on.
SPREAD = f"""
import json, sys, time, ray
from common.ray_bootstrap import init_ray, shutdown_ray

@ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
def where(i):
    time.sleep(0.2)  # each task holds its node's one CPU a moment, so no node can take them all at once
    return ray.get_runtime_context().get_node_id()

init_ray(sys.argv[1])
tasks = ray.get([where.remote(i) for i in range({TASKS})])
seen = {{"driver": ray.get_runtime_context().get_node_id(), "tasks": tasks}}
shutdown_ray()
print(json.dumps(seen))
"""


def _lines(*command: str) -> list[str]:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()


def test_tasks_spread_over_both_nodes_of_a_sealed_cluster():
    with sealed_ray_cluster() as cluster:
        assert cluster.address == f"{HEAD_IP}:6379"
        assert set(cluster.node_ids) == {HEAD_IP, WORKER_IP}
        done = cluster.run(sys.executable, "-c", SPREAD, cluster.address)
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen["driver"] == cluster.head_node_id
        counts = Counter(seen["tasks"])
        assert set(counts) == {cluster.head_node_id, cluster.worker_node_id}, counts
        assert sum(counts.values()) == TASKS
        for ns in (cluster.head_ns, cluster.worker_ns):
            # Loopback and one veth; the veth's own subnet is the only route: no default route, nowhere to go.
            routes = _lines(IP, "-n", ns, "route", "show")
            assert len(routes) == 1 and routes[0].startswith(f"{SUBNET}.0/24 dev "), routes
            links = [line.split(":")[1].strip().split("@")[0] for line in _lines(IP, "-n", ns, "-o", "link")]
            assert len(links) == 2 and "lo" in links, links
        namespaces, root = {cluster.head_ns, cluster.worker_ns}, cluster.root
        processes = [psutil.Process(pid) for pid in namespace_pids(*namespaces)]
        assert len(processes) > 5  # a head is a GCS, a raylet and their helpers
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)
    assert not {line.split()[0] for line in _lines(IP, "netns", "list")} & namespaces
    assert not root.exists()
