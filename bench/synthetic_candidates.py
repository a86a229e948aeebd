"""A scored run directory made up at any size: what `humans1b curate score` leaves behind, without images or models.

    write_synthetic_run(run_dir, rows=10**6, dim=768)

Writes `candidates/part-XXXXX.parquet` (common.schemas.candidate_schema) with its completion marker
`part-XXXXX.done.json` (size and SHA-256 of the part, as curation/score/sink.py records it), `stats.json` and the
resolved `config.yaml`, so `humans1b curate select output=RUN_DIR` runs on it. Also written, for checks only:
`planted/part-XXXXX.parquet` (key, kind, original: every planted copy and the row it copies) and `synthetic.json`
(the parameters, first; the planted counts and `finished: true` once every file is written).

Rows: fresh rows (L2-normalised float16 CLIP embeddings from a Zipf-weighted mixture of Gaussian topics, random
64-bit phashes) and planted copies of earlier fresh rows, from this part or an earlier one:
- phash_exact (~1 %): the original's phash, embedding at cosine >= 0.995;
- phash_near (~2 %): the original's phash with 1-4 bits flipped (never twice the same bits of one original),
  embedding at cosine >= 0.99;
- embedding_near (~1 %): a fresh phash, embedding at cosine in [0.975, 0.995];
- rejected (~1 %): reject_reason "too_small", an exact copy with a high aesthetic, so a select that read rejected
  rows would keep them over their originals.
Aesthetic is rounded to 0.1 and the largest person's short side to whole pixels, so the dedup keep rule
(aesthetic, then max_person_short_side, then key) meets ties at every level.

Parts are generated one at a time from a generator seeded by (seed, part); originals are drawn from a bounded pool
of earlier fresh rows, so memory is one part plus the pool, whatever the row count.
"""

import json
import logging
import os
import sys
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.config import save_resolved_config
from common.file_digest import write_parquet
from common.schemas import candidate_schema
from curation.config import load_curate_config

log = logging.getLogger("bench.synthetic_candidates")

SYNTHETIC = "synthetic.json"
PLANTED_DIR = "planted"
CANDIDATES = "candidates"  # curation.layout.CANDIDATES_DIR
SCORE_STATS = "stats.json"  # curation.layout.SCORE_STATS
TOO_SMALL = "too_small"

# Row kinds and their shares; "fresh" takes the rest.
SHARES = {"phash_exact": 0.01, "phash_near": 0.02, "embedding_near": 0.01, "rejected": 0.01}
KINDS = ("fresh", *SHARES)
# Cosine of a copy's embedding to its original's, per kind: [low, high)
COSINE = {"phash_exact": (0.995, 0.9995), "phash_near": (0.99, 0.999), "embedding_near": (0.975, 0.995)}
COSINE["rejected"] = COSINE["phash_exact"]
WRITERS = 2
POOL = 4096  # originals held for copying
POOL_REFRESH = POOL // 8  # fresh rows each part puts in the pool: an original stays copyable for ~8 parts
YAW = pa.array(["frontal", "three_quarter", "profile", "back"])
YAW_SHARES = (0.5, 0.25, 0.15, 0.1)
PERSONS_SHARES = (0.6, 0.3, 0.1)  # 1, 2 or 3 persons per image
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def write_synthetic_run(
    run_dir: Path,
    rows: int,
    dim: int = 768,
    *,
    rows_per_part: int = 10_000,
    components: int = 50,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Write the run into `run_dir` (see the module doc) and return its record, also saved as synthetic.json:
    parameters, parts, kept rows and the planted rows per kind (`planted`)."""
    if rows < 1 or dim < 2 or rows_per_part < 1 or components < 1:
        raise ValueError(
            f"need rows >= 1, dim >= 2, rows_per_part >= 1 and components >= 1; got rows={rows}, dim={dim}, "
            f"rows_per_part={rows_per_part}, components={components}"
        )
    start = time.perf_counter()
    run_dir = Path(run_dir)
    params = {"rows": rows, "dim": dim, "rows_per_part": rows_per_part, "components": components, "seed": seed}
    run_dir.mkdir(parents=True, exist_ok=True)
    # Written first, so the folder is known to be synthetic even when cut off; `finished` only at the end.
    (run_dir / SYNTHETIC).write_text(json.dumps({**params, "finished": False}, indent=2) + "\n")
    for sub in (CANDIDATES, PLANTED_DIR):
        (run_dir / sub).mkdir(exist_ok=True)
    topics = Topics(components, dim, seed)
    pool = OriginalPool(dim)
    schema = candidate_schema(dim)
    parts = -(-rows // rows_per_part)
    planted: Counter = Counter()
    # Parquet encoding takes longer than generating a part and releases the GIL: WRITERS threads encode and write
    # earlier parts while the next one is generated, WRITERS + 1 parts in memory at most.
    with ThreadPoolExecutor(max_workers=WRITERS) as writer:
        writing: deque[Future] = deque()
        for part in range(parts):
            n = min(rows_per_part, rows - part * rows_per_part)
            table, copies = make_part(part, n, rows_per_part, seed, topics, pool, schema)
            planted.update(copies["kind"].to_pylist())
            if len(writing) == WRITERS:
                writing.popleft().result()
            writing.append(writer.submit(write_part, run_dir, part, table, copies, seed))
            if progress and (part + 1) % max(1, parts // 20) == 0:
                done = part * rows_per_part + n
                rate = done / (time.perf_counter() - start)
                log.info("synthetic run: %d / %d parts, %d rows, %.0f rows/s", part + 1, parts, done, rate)
        for pending in writing:
            pending.result()
    rejected = planted["rejected"]
    write_score_stats(run_dir, rows, rejected, parts)
    save_resolved_config(load_curate_config(None, [f"output={run_dir}"]), run_dir)  # as score saves its config
    record = {
        **params,
        "finished": True,
        "parts": parts,
        "kept": rows - rejected,
        "planted": {kind: planted[kind] for kind in SHARES},
        "seconds": round(time.perf_counter() - start, 3),
    }
    (run_dir / SYNTHETIC).write_text(json.dumps(record, indent=2) + "\n")
    return record


class Topics:
    """A long-tailed mixture of Gaussian topics on the unit sphere: topic i has weight 1 / (i + 1) and its own
    spread, so some topics are tight and some diffuse; two rows of one topic stay well below cosine 0.95."""

    def __init__(self, components: int, dim: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 1 << 32])
        self.centres = unit(rng.standard_normal((components, dim), dtype=np.float32))
        weights = 1.0 / np.arange(1, components + 1)
        self.weights = weights / weights.sum()
        # noise of norm 0.6-1.2 around a unit centre: same-topic cosine ~0.4-0.75 in high dimensions
        self.spread = rng.uniform(0.6, 1.2, components).astype(np.float32) / np.sqrt(dim, dtype=np.float32)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        topic = rng.choice(len(self.weights), n, p=self.weights)
        x = rng.standard_normal((n, self.centres.shape[1]), dtype=np.float32)  # [n, d], in place from here on
        x *= self.spread[topic, None]
        x += self.centres[topic]
        x /= np.sqrt(np.einsum("nd,nd->n", x, x))[:, None]
        return x


class OriginalPool:
    """Fresh rows that later rows may copy, at most POOL of them: key, phash, embedding, and the bit masks already
    used for near copies of each, so no two near copies of one original share a phash."""

    def __init__(self, dim: int) -> None:
        self.keys = np.empty(POOL, dtype=object)
        self.phash = np.zeros(POOL, dtype=np.uint64)
        self.emb = np.zeros((POOL, dim), dtype=np.float32)
        self.masks: list[set[int]] = [set() for _ in range(POOL)]
        self.size = 0

    def add(self, rng: np.random.Generator, rows: np.ndarray, keys: np.ndarray, phash: np.ndarray, emb: np.ndarray):
        """Put up to POOL_REFRESH of `rows` in, at free slots first, then over random ones."""
        take = rows[rng.permutation(len(rows))[:POOL_REFRESH]]
        room = min(POOL - self.size, len(take))
        slots = np.concatenate([np.arange(self.size, self.size + room), rng.integers(0, POOL, len(take) - room)])
        self.size += room
        # a slot drawn twice keeps its last row; masks of replaced rows go with them
        self.keys[slots], self.phash[slots] = keys[take].astype(str), phash[take]
        self.emb[slots] = unit(emb[take].astype(np.float16).astype(np.float32))  # as stored, so cosines hold on disk
        for slot in slots.tolist():
            self.masks[slot] = set()

    def near_masks(self, rng: np.random.Generator, slots: np.ndarray) -> np.ndarray:
        """One mask of 1-4 set bits per slot, new for that slot's original."""
        out = np.empty(len(slots), dtype=np.uint64)
        for i, slot in enumerate(slots.tolist()):
            while True:
                bits = rng.choice(64, int(rng.integers(1, 5)), replace=False)
                mask = int(np.bitwise_or.reduce(np.uint64(1) << bits.astype(np.uint64)))
                if mask not in self.masks[slot]:
                    break
            self.masks[slot].add(mask)
            out[i] = mask
        return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def near_copy(rng: np.random.Generator, originals: np.ndarray, low: float, high: float) -> np.ndarray:
    """Unit rows at a cosine drawn from [low, high) to each original: c * o + sqrt(1 - c^2) * u, u a random unit
    direction orthogonal to o."""
    u = rng.standard_normal(originals.shape, dtype=np.float32)
    u = unit(u - np.sum(u * originals, axis=1, keepdims=True) * originals)
    c = rng.uniform(low, high, (len(originals), 1)).astype(np.float32)
    return c * originals + np.sqrt(1 - c * c) * u


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64, so distinct inputs give distinct outputs."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hex_keys(ids: np.ndarray, seed: int) -> np.ndarray:
    """20 hex characters per row id (as common.keys.sample_key), unique: the first 16 are a bijection of the id."""
    salt = mix64(np.array([seed], dtype=np.uint64) + _GOLDEN)
    high, low = mix64(ids + salt), mix64(ids ^ ~salt)
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    nibbles = np.concatenate([(high[:, None] >> shifts) & 15, (low[:, None] >> shifts[:4]) & 15], axis=1)
    return np.ascontiguousarray(_HEX[nibbles]).view("S20").ravel()


def make_part(
    part: int,
    n: int,
    rows_per_part: int,
    seed: int,
    topics: Topics,
    pool: OriginalPool,
    schema: pa.Schema,
) -> tuple[pa.Table, pa.Table]:
    """(the part's candidate rows sorted by key, its planted copies: key, kind, original)."""
    rng = np.random.default_rng([seed, part])
    kind = rng.choice(len(KINDS), n, p=[1 - sum(SHARES.values()), *SHARES.values()])
    if pool.size == 0 and not (kind == 0).any():
        kind[:] = 0  # nothing to copy from yet
    keys = hex_keys(np.arange(part * rows_per_part, part * rows_per_part + n, dtype=np.uint64), seed)
    phash = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    emb = np.empty((n, topics.centres.shape[1]), dtype=np.float32)
    fresh = np.flatnonzero(kind == 0)
    emb[fresh] = topics.sample(rng, len(fresh))
    pool.add(rng, fresh, keys, phash, emb)

    copy_rows, originals, copy_kinds = [], [], []
    for k, name in enumerate(KINDS[1:], start=1):
        rows = np.flatnonzero(kind == k)
        slots = rng.integers(0, pool.size, len(rows))
        emb[rows] = near_copy(rng, pool.emb[slots], *COSINE[name])
        if name in ("phash_exact", "rejected"):
            phash[rows] = pool.phash[slots]
        elif name == "phash_near":
            phash[rows] = pool.phash[slots] ^ pool.near_masks(rng, slots)
        copy_rows.append(rows)
        originals.append(pool.keys[slots])
        copy_kinds += [name] * len(rows)
    copy_rows = np.concatenate(copy_rows)
    copies = pa.table(
        {
            "key": pa.array(keys[copy_rows]).cast(pa.string()),
            "kind": pa.array(copy_kinds, pa.string()),
            "original": pa.array(np.concatenate(originals).tolist(), pa.string()),
        }
    ).sort_by("key")
    rejected = kind == KINDS.index("rejected")
    table = candidate_columns(rng, n, keys, phash, emb, rejected, f"synthetic://seed-{seed}/{part:05d}.tar", schema)
    return table.sort_by("key"), copies


def candidate_columns(
    rng: np.random.Generator,
    n: int,
    keys: np.ndarray,
    phash: np.ndarray,
    emb: np.ndarray,
    rejected: np.ndarray,
    source: str,
    schema: pa.Schema,
) -> pa.Table:
    """The full candidate schema around the planted keys, phashes and embeddings; rejected rows are small images
    with a high aesthetic."""
    dim = emb.shape[1]
    key = pa.array(keys).cast(pa.string())
    width = np.where(rejected, rng.integers(32, 200, n), rng.integers(320, 4097, n)).astype(np.int32)
    height = np.where(rejected, rng.integers(32, 200, n), rng.integers(320, 4097, n)).astype(np.int32)

    count = rng.choice(3, n, p=PERSONS_SHARES) + 1
    offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int32)
    owner = np.repeat(np.arange(n), count)  # [persons] row of each person
    short = np.minimum(width, height)[owner].astype(np.float32)
    side = np.round(short * rng.uniform(0.05, 0.9, len(owner)).astype(np.float32))  # box short side, px
    tall = np.minimum(np.round(side * rng.uniform(1.2, 3.0, len(owner)).astype(np.float32)), height[owner])
    x0 = np.floor(rng.uniform(0, 1, len(owner)) * (width[owner] - side)).astype(np.float32)
    y0 = np.floor(rng.uniform(0, 1, len(owner)) * (height[owner] - tall)).astype(np.float32)
    boxes = np.stack([x0, y0, x0 + side, y0 + tall], axis=1).astype(np.float32)  # [persons, 4]
    person = pa.StructArray.from_arrays(
        [
            pa.FixedSizeListArray.from_arrays(pa.array(boxes.reshape(-1)), 4),
            pa.array(rng.uniform(0.3, 1.0, len(owner)).astype(np.float32)),
        ],
        fields=list(schema.field("persons").type.value_type),
    )
    max_short = np.maximum.reduceat(np.minimum(side, tall), offsets[:-1])

    aesthetic = np.where(rejected, rng.uniform(9.0, 10.0, n), np.clip(rng.normal(5.5, 1.2, n), 1.0, 10.0))
    head_pose = pa.StructArray.from_arrays(
        [pc.take(YAW, pa.array(rng.choice(len(YAW), n, p=YAW_SHARES))), pa.array(rng.integers(0, 6, n, dtype=np.int8))],
        fields=list(schema.field("head_pose").type),
    )
    reason = pc.if_else(pa.array(rejected), pa.scalar(TOO_SMALL), pa.scalar(None, pa.string()))
    columns = {
        "key": key,
        "source": pa.repeat(pa.scalar(source), n),
        "member": pc.binary_join_element_wise(key, ".jpg", ""),
        "member_offset": pa.nulls(n, pa.int64()),  # no real tar to locate members in
        "member_bytes": pa.nulls(n, pa.int64()),
        "width": pa.array(width),
        "height": pa.array(height),
        "phash": pa.array(phash),
        "persons": pa.ListArray.from_arrays(pa.array(offsets), person),
        "max_person_short_side": pa.array(max_short.astype(np.float32)),
        "head_pose": head_pose,
        "clip": pa.FixedSizeListArray.from_arrays(pa.array(emb.astype(np.float16).reshape(-1)), dim),
        "aesthetic": pa.array(np.round(aesthetic, 1).astype(np.float32)),
        "nsfw": pa.array(rng.beta(1, 30, n).astype(np.float32)),
        "realism": pa.array(rng.beta(8, 2, n).astype(np.float32)),
        "text_overlay": pa.array(rng.beta(1, 10, n).astype(np.float32)),
        "would_reject": pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string())),
        "reject_reason": reason,
    }
    return pa.table({f.name: columns[f.name].cast(f.type) for f in schema}, schema=schema)


def write_part(run_dir: Path, part: int, table: pa.Table, copies: pa.Table, seed: int) -> None:
    """The part, then its completion marker, each renamed into place as the score phase's sink does; then the
    part's planted copies."""
    candidates = run_dir / CANDIDATES
    path = candidates / f"part-{part:05d}.parquet"
    tmp = path.with_name(path.name + ".partial")
    record = write_parquet(table, tmp)  # hashed as it is written, as the sink does
    os.replace(tmp, path)
    marker = {
        "shard_id": part,
        "source": f"synthetic://seed-{seed}/{part:05d}.tar",
        "rows": table.num_rows,
        "funnel": funnel(table.num_rows, pc.sum(pc.is_valid(table["reject_reason"])).as_py()),
        "stage_seconds": {},
        "files": {path.name: record},
    }
    done = candidates / f"part-{part:05d}.done.json"
    tmp = done.with_name(done.name + ".partial")
    tmp.write_text(json.dumps(marker, indent=1))
    os.replace(tmp, done)
    pq.write_table(copies, run_dir / PLANTED_DIR / f"part-{part:05d}.parquet")


def funnel(rows: int, rejected: int) -> dict[str, dict]:
    """The score funnel of synthetic rows: the reader keeps all, decode rejects the small images."""
    return {
        "read": {"in": rows, "kept": rows, "rejected": {}, "would_reject": {}},
        "decode": {
            "in": rows,
            "kept": rows - rejected,
            "rejected": {TOO_SMALL: rejected} if rejected else {},
            "would_reject": {},
        },
    }


def write_score_stats(run_dir: Path, rows: int, rejected: int, parts: int) -> None:
    """stats.json as the score phase leaves it; select reads its `shards` count."""
    stats = {
        "rows_in": rows,
        "kept": rows - rejected,
        "rejected": {TOO_SMALL: rejected} if rejected else {},
        "stages": funnel(rows, rejected),
        "stage_seconds": {},
        "shards": parts,
        "last_run": {"shards_scored": parts, "seconds": 0.0},
    }
    (run_dir / SCORE_STATS).write_text(json.dumps(stats, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """`python bench/synthetic_candidates.py RUN_DIR ROWS [DIM]`: write a run and print its record."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    record = write_synthetic_run(Path(args[0]), int(args[1]), int(args[2]) if len(args) > 2 else 768)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
