"""k-means on GPUs where there are some: faiss indexes move to the GPUs the process sees, and every k-means task asks
Ray for `select.task_gpus` (Ray hides GPUs from a task that asks for none). This machine has no GPU: faiss's GPU
calls are stood in for, and the Ray tasks run with their GPU request recorded, then dropped so they can be placed."""

import json
import subprocess
import sys
import time
from pathlib import Path

import faiss
import faiss.extra_wrappers
import numpy as np
import pytest

import curation.select.alive_rows as alive_rows
from curation.select.config import SelectConfig
from curation.select.hierarchical_kmeans import HierarchyConfig
from curation.select.kmeans import centroid_index, fit_centroids
from curation.select.runner import run_select
from curation.select.semdedup import SemDedupConfig, nearest_clusters
from curation.select.tasks import select_task
from tests.curation.select.test_partitioned_steps import planted_rows, scored_run

REPO = Path(__file__).resolve().parents[3]
KMEANS_TASKS = {"assign_part", "lloyd_part", "_train_rows", "_assign_part"}


@pytest.fixture
def fake_gpu(monkeypatch):
    """faiss reports one GPU; indexes 'moved' to it are recorded and stay on CPU."""
    moved = []

    def to_all_gpus(index, co=None, ngpu=-1):
        moved.append(index)
        return index

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss.extra_wrappers, "get_num_gpus", lambda: 1)  # faiss.Kmeans asks again for gpu=True
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", to_all_gpus)
    return moved


@pytest.fixture
def gpu_requests(monkeypatch) -> dict[str, set]:
    """Task function name -> the num_gpus values its select tasks asked for."""
    asked: dict[str, set] = {}

    def recording(fn, **options):
        asked.setdefault(fn.__name__, set()).add(options.pop("num_gpus", None))
        return select_task(fn, **options)

    monkeypatch.setattr(alive_rows, "select_task", recording)
    return asked


def test_centroid_index_moves_to_the_gpus_faiss_sees(fake_gpu):
    centroids = np.eye(4, dtype=np.float32)
    index = centroid_index(centroids, "l2")
    assert fake_gpu == [index] and index.ntotal == 4
    x = np.eye(4, dtype=np.float32)[[2, 0, 3]]
    np.testing.assert_array_equal(nearest_clusters(x, centroids, 1)[:, 0], [2, 0, 3])
    assert len(fake_gpu) == 2  # SemDeDup's routing index too


def test_without_gpus_faiss_stays_on_cpu(monkeypatch):
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda *a, **k: pytest.fail("moved to a GPU"))
    assert faiss.get_num_gpus() == 0  # the CPU wheel
    assert isinstance(centroid_index(np.eye(3, dtype=np.float32)), faiss.IndexFlatIP)


def test_training_asks_faiss_for_gpus_when_it_has_some(fake_gpu):
    x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    fit_centroids(x, 5, seed=0, iterations=2)
    assert any(isinstance(index, faiss.IndexFlatIP) for index in fake_gpu)  # faiss.Kmeans(gpu=True)'s index


@pytest.mark.usefixtures("ray_local")
def test_every_kmeans_task_asks_for_task_gpus_and_gets_the_same_centroids(tmp_path, gpu_requests):
    store = scored_run(tmp_path / "run", planted_rows(600, seed=2), parts=3)
    on_cpu = alive_rows.AliveRows.after(store, [], [])
    on_gpu = alive_rows.AliveRows.after(store, [], [])
    on_gpu.task_gpus = 0.25
    for rows in (on_cpu, on_gpu):
        rows.fit_budget_bytes = 60 * 4 * store.dim  # past the budget: seeded on a sample, then Lloyd tasks
    gpu_requests.clear()  # building the store
    expected = fit_centroids(on_cpu, 6, seed=1, iterations=3, max_points_per_centroid=64)
    assert gpu_requests == {"lloyd_part": {0.0}}  # the sample fit ran here
    gpu_requests.clear()
    found = fit_centroids(on_gpu, 6, seed=1, iterations=3, max_points_per_centroid=64)
    np.testing.assert_array_equal(found, expected)
    assert gpu_requests == {"_train_rows": {0.25}, "lloyd_part": {0.25}}
    gpu_requests.clear()
    labels, _ = on_gpu.assign_all(found)
    assert gpu_requests == {"assign_part": {0.25}}
    np.testing.assert_array_equal(labels, on_cpu.assign_all(found)[0])


def gpus_asked_by_a_select_run(run: str) -> None:
    """Runs select with task_gpus 0.5 on a fresh local Ray that declares one GPU; prints {task name: [GPUs asked]}
    from Ray's state API."""
    from ray.util.state import list_tasks

    from common.ray_bootstrap import ray_session

    cfg = SelectConfig(
        semdedup=SemDedupConfig(num_clusters=6), clusters=HierarchyConfig(clusters=[12, 4, 2]), task_gpus=0.5
    )
    with ray_session(num_cpus=2, num_gpus=1) as handle:
        run_select(Path(run), cfg, seed=0)
        asked: dict[str, set] = {}
        deadline = time.monotonic() + 60
        while "finish_part" not in asked and time.monotonic() < deadline:  # task events reach the API within seconds
            time.sleep(1)
            tasks = list_tasks(address=handle.dashboard_url, detail=True, limit=10_000, raise_on_missing_output=False)
            asked = {}
            for task in tasks:
                asked.setdefault(task.name, set()).add(task.required_resources.get("GPU", 0.0))
    print(json.dumps({name: sorted(gpus) for name, gpus in asked.items()}))


def test_select_asks_task_gpus_for_every_kmeans_task_and_none_for_a_coordinator(tmp_path):
    """Nested tasks too (the coordinators start the k-means tasks from their own workers): a Ray that declares one
    GPU runs the whole select, two k-means tasks at a time, and its state API lists what each task asked for."""
    scored_run(tmp_path / "run", planted_rows(900, seed=4), parts=3)
    script = f"from {__name__} import gpus_asked_by_a_select_run as f; f({str(tmp_path / 'run')!r})"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600, check=True
    ).stdout
    asked = json.loads(out.strip().splitlines()[-1])
    assert {name: asked[name] for name in KMEANS_TASKS if name in asked} == {
        "_train_rows": [0.5],
        "assign_part": [0.5],
        "_assign_part": [0.5],
    }
    coordinators = {name: gpus for name, gpus in asked.items() if name not in KMEANS_TASKS}
    assert {"cluster_task", "_fit", "sample_task", "finish_part"} <= set(coordinators)
    assert all(gpus == [0.0] for gpus in coordinators.values())
