"""The rows still in the running before a step, as that step sees them: global positions 0..n-1 over the parts in
shard order, each part's rows in key order, skipping what earlier steps removed.

`AliveRows` is what k-means is given instead of an embedding matrix: `len`, `shape`, `rows[sorted positions]` for a
bounded training sample (read from the memory-mapped parts), and `assign_all` for a full pass, which runs one Ray task
per part. Only per-part counts live in the caller; per-row data stays in the part files.

Every k-means task (sample fits, assignment, Lloyd steps) asks Ray for `task_gpus` GPUs: Ray hides the GPUs from a
task that asks for none, and faiss then runs on CPU. The coordinating tasks that wait on them ask for none: a task
blocked in `ray.get` keeps its GPUs, so a coordinator holding one could starve its own children.
"""

from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import ray
from scipy.sparse import csr_matrix

from curation.select.kmeans import centroid_index, train_sample
from curation.select.step_files import alive_positions
from curation.select.store import Store, embedding_path
from curation.select.tasks import run_tasks, select_task

CHUNK = 65_536  # rows converted to float32 at a time: 192 MiB at d = 768


@dataclass
class AliveRows:
    store: Store
    removal_dirs: list[str]  # steps whose removals are skipped
    alive_counts: np.ndarray  # [parts] rows left per part
    nodes: set[str] = field(default_factory=set)  # Ray nodes that ran this object's tasks
    # A k-means fit whose training sample would pass this many bytes (float32) is run as distributed Lloyd steps
    # seeded on a sample of this size instead (`kmeans.fit_centroids`)
    fit_budget_bytes: int = 1 << 31
    task_gpus: float = 0.0  # GPUs each k-means task asks Ray for (`select.task_gpus`)

    @property
    def fit_budget_rows(self) -> int:
        return max(1, self.fit_budget_bytes // (4 * max(self.store.dim, 1)))

    @classmethod
    def after(cls, store: Store, removal_dirs: list[str], removed: list[dict[int, int]]) -> "AliveRows":
        counts = store.counts.copy()
        index = {int(s): i for i, s in enumerate(store.shard_ids)}
        for step in removed:
            for shard_id, n in step.items():
                counts[index[shard_id]] -= n
        return cls(store, [str(d) for d in removal_dirs], counts)

    def __len__(self) -> int:
        return int(self.alive_counts.sum())

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.store.dim

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.alive_counts)]).astype(np.int64)

    def positions(self, part: int) -> np.ndarray:
        """Positions in the store's part `part` (index into shard_ids) of its alive rows."""
        return alive_positions(self.removal_dirs, int(self.store.shard_ids[part]), int(self.store.counts[part]))

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """Embeddings [len(rows), d] float16 of sorted alive positions, read part by part."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.store.dim), dtype=np.float16)
        offsets = self.offsets
        part_of = np.searchsorted(offsets, rows, side="right") - 1
        starts = np.searchsorted(part_of, np.arange(len(self.alive_counts) + 1))
        for part in np.flatnonzero(np.diff(starts)):
            local = rows[starts[part] : starts[part + 1]] - offsets[part]
            mapped = self.store.embeddings(int(self.store.shard_ids[part]))
            out[starts[part] : starts[part + 1]] = mapped[self.positions(part)[local]]
        return out

    def part_args(self, part: int) -> tuple[str, int, int, list[str]]:
        return str(self.store.folder), int(self.store.shard_ids[part]), int(self.store.counts[part]), self.removal_dirs

    def kmeans_task(self, fn):
        return select_task(fn, num_gpus=self.task_gpus)

    def train_sample(
        self, rows: np.ndarray, k: int, *, seed: int, iterations: int, seeding: str, rng: np.random.Generator
    ) -> np.ndarray:
        """`kmeans.train_sample` on the rows at sorted positions `rows`, in this process without GPUs, else as a Ray
        task that asks for them (it reads the rows itself: only their positions travel)."""
        if not self.task_gpus:
            return train_sample(self[rows], k, seed=seed, iterations=iterations, seeding=seeding, rng=rng)
        ref = self.kmeans_task(_train_rows).remote(self, rows, k, seed, iterations, seeding, rng)
        return run_tasks([ref], desc="k-means fit", nodes=self.nodes, progress=False)[0]

    def assign_all(self, centroids: np.ndarray, *, metric: str = "ip", progress: bool = False):
        """(labels int64 [n], distances float32 [n]) of every alive row to its nearest centroid, by Ray tasks."""
        ref = ray.put(np.ascontiguousarray(centroids, dtype=np.float32))
        task = self.kmeans_task(assign_part)
        parts = [p for p in range(len(self.alive_counts)) if self.alive_counts[p]]
        results = run_tasks(
            [task.remote(*self.part_args(p), ref, metric) for p in parts],
            desc="assign",
            nodes=self.nodes,
            progress=progress,
        )
        labels = np.concatenate([r[0] for r in results]).astype(np.int64) if results else np.zeros(0, np.int64)
        distances = np.concatenate([r[1] for r in results]) if results else np.zeros(0, np.float32)
        return labels, distances

    def lloyd_fit(self, centroids: np.ndarray, *, iterations: int, subset: np.ndarray | None = None) -> np.ndarray:
        """Spherical Lloyd steps from `centroids` over the alive rows (or the sorted positions `subset`), as tasks."""
        return lloyd_fit(self, centroids, iterations=iterations, spherical=True, subset=subset)


def _train_rows(
    rows: AliveRows, positions: np.ndarray, k: int, seed: int, iterations: int, seeding: str, rng: np.random.Generator
) -> np.ndarray:
    return train_sample(rows[positions], k, seed=seed, iterations=iterations, seeding=seeding, rng=rng)


def part_embeddings(folder: str, shard_id: int, count: int, removal_dirs: list[str]):
    """(alive positions, memory-mapped float16 embeddings of the whole part)."""
    positions = alive_positions(removal_dirs, shard_id, count)
    mapped = np.load(embedding_path(Path(folder), shard_id), mmap_mode="r", allow_pickle=False)
    return positions, mapped


def nearest(
    index: faiss.Index, mapped: np.ndarray, positions: np.ndarray, m: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """(ids [n, m], distances [n, m]) of the m nearest centroids, CHUNK rows converted to float32 at a time:
    1 - cosine for 'ip', squared L2 for 'l2'."""
    ids = np.empty((len(positions), m), dtype=np.int64)
    dist = np.empty((len(positions), m), dtype=np.float32)
    for start in range(0, len(positions), CHUNK):
        chunk = np.ascontiguousarray(mapped[positions[start : start + CHUNK]], dtype=np.float32)
        d, i = index.search(chunk, m)
        ids[start : start + len(chunk)] = i
        dist[start : start + len(chunk)] = 1.0 - d if metric == "ip" else d
    return ids, dist


def assign_part(folder: str, shard_id: int, count: int, removal_dirs: list[str], centroids: np.ndarray, metric: str):
    positions, mapped = part_embeddings(folder, shard_id, count, removal_dirs)
    ids, dist = nearest(centroid_index(centroids, metric), mapped, positions, 1, metric)
    return ids[:, 0].astype(np.int32), dist[:, 0]


def lloyd_part(
    folder: str,
    shard_id: int,
    count: int,
    removal_dirs: list[str],
    centroids: np.ndarray,
    metric: str,
    subset: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One Lloyd step's share of one part: per-centroid sums [k, d] float64 and counts [k] of its nearest rows (of
    its alive rows, or of those at the sorted indices `subset` among them)."""
    positions, mapped = part_embeddings(folder, shard_id, count, removal_dirs)
    if subset is not None:
        positions = positions[subset]
    index = centroid_index(centroids, metric)
    sums = np.zeros(centroids.shape, dtype=np.float64)
    counts = np.zeros(len(centroids), dtype=np.int64)
    for start in range(0, len(positions), CHUNK):
        chunk = np.ascontiguousarray(mapped[positions[start : start + CHUNK]], dtype=np.float32)
        labels = index.search(chunk, 1)[1][:, 0]
        members = csr_matrix(
            (np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(len(centroids), len(labels))
        )
        sums += members @ chunk.astype(np.float64)
        counts += np.bincount(labels, minlength=len(centroids))
    return sums, counts


def lloyd_fit(
    rows: AliveRows, centroids: np.ndarray, *, iterations: int, spherical: bool, subset: np.ndarray | None = None
) -> np.ndarray:
    """`iterations` Lloyd steps over every alive row (or the sorted global positions `subset`), each one Ray task per
    part returning per-centroid sums and counts; memory here is the centroids and one running sum (k x d), never the
    rows. A centroid that gets no rows keeps its place."""
    metric = "ip" if spherical else "l2"
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    task = rows.kmeans_task(lloyd_part)
    parts = [p for p in range(len(rows.alive_counts)) if rows.alive_counts[p]]
    local = {p: None for p in parts}
    if subset is not None:
        offsets = rows.offsets
        cuts = np.searchsorted(subset, offsets)
        local = {p: ray.put(subset[cuts[p] : cuts[p + 1]] - offsets[p]) for p in parts if cuts[p + 1] > cuts[p]}
        parts = list(local)
    for _ in range(iterations):
        ref = ray.put(centroids)
        total = {"sums": np.zeros(centroids.shape, np.float64), "counts": np.zeros(len(centroids), np.int64)}

        def fold(result: tuple[np.ndarray, np.ndarray], total: dict = total) -> None:
            total["sums"] += result[0]
            total["counts"] += result[1]

        run_tasks(
            [task.remote(*rows.part_args(p), ref, metric, local[p]) for p in parts],
            desc="lloyd",
            nodes=rows.nodes,
            progress=False,
            fold=fold,
        )
        filled = total["counts"] > 0
        updated = centroids.copy()
        updated[filled] = (total["sums"][filled] / total["counts"][filled, None]).astype(np.float32)
        if spherical:
            updated /= np.maximum(np.linalg.norm(updated, axis=1, keepdims=True), 1e-12)
        centroids = updated
    return centroids
