import itertools

import numpy as np
import pyarrow as pa
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from common.image_decode import DecodeConfig, decode_image
from curation.sample_corpus import NEAR_DUPLICATE, ORIGINAL, SampleCorpusConfig, build_sample_corpus
from curation.select import phash_index
from curation.select.components import keep_best, preference_rank
from curation.select.phash_dedup import PhashDedupConfig, phash_dedup
from curation.select.phash_index import index_plan, near_duplicate_pairs
from curation.stages.phash import phash_uint64

# Near-duplicate variants whose phash stays within 4 bits by construction: re-encoding, resizing and global
# brightness/contrast/saturation changes keep the low-frequency DCT signs phash reads. The corpus's crops remove up
# to 5 % per side, which shifts those frequencies: measured 2-10 bits from the original over seeds 0-2, so they are
# not asserted. The corpus records only kind and origin, not the expected distance, hence this list.
PHASH_NEAR_VARIANTS = {"jpeg_q30", "jpeg_q60", "jpeg_q90", "resize", "color_jitter"}


def flip(value: int, bits: np.ndarray) -> int:
    return value ^ int(sum(1 << int(b) for b in bits))


def planted_hashes(seed: int = 0) -> tuple[np.ndarray, dict[str, list[tuple[int, int]]]]:
    """~5,000 hashes: random ones, copies at 1-4 bits, decoys at 5-6 bits, chains a ~ b ~ c (3 bits per step, 6 from a
    to c), and exact repeats. Returns the values (one per row) and the planted (row, row) pairs by kind."""
    rng = np.random.default_rng(seed)
    values = [int(v) for v in rng.integers(0, 2**64, size=4300, dtype=np.uint64)]
    kinds: dict[str, list[tuple[int, int]]] = {"near": [], "decoy": [], "chain": [], "chain_ends": [], "exact": []}
    for i in range(300):
        values.append(flip(values[i], rng.choice(64, size=1 + i % 4, replace=False)))
        kinds["near"].append((i, len(values) - 1))
    for i in range(300, 400):
        values.append(flip(values[i], rng.choice(64, size=5 + i % 2, replace=False)))
        kinds["decoy"].append((i, len(values) - 1))
    for i in range(400, 500):
        bits = rng.choice(64, size=6, replace=False)
        values += [flip(values[i], bits[:3]), flip(values[i], bits)]
        kinds["chain"] += [(i, len(values) - 2), (len(values) - 2, len(values) - 1)]
        kinds["chain_ends"].append((i, len(values) - 1))
    for i in rng.choice(len(values), size=100, replace=False):
        values.append(values[i])
        kinds["exact"].append((int(i), len(values) - 1))
    return np.array(values, dtype=np.uint64), kinds


def distances(values: np.ndarray) -> np.ndarray:
    return np.bitwise_count(values[:, None] ^ values[None, :]).astype(np.uint8)


@pytest.fixture(scope="module")
def planted():
    return planted_hashes()


@pytest.fixture(scope="module")
def distinct(planted):
    values, _ = planted
    unique = np.unique(values)
    return unique, distances(unique)


def pair_set(left: np.ndarray, right: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(left.tolist(), right.tolist(), strict=True))


def brute_force_pairs(dist: np.ndarray, t: int) -> set[tuple[int, int]]:
    return pair_set(*np.nonzero(np.triu(dist <= t, k=1))) if t > 0 else set()


@pytest.mark.parametrize("max_distance", [0, 2, 4, 6])
def test_pairs_equal_brute_force(distinct, max_distance):
    unique, dist = distinct
    expected = brute_force_pairs(dist, max_distance)
    left, right = near_duplicate_pairs(unique, max_distance, progress=False)
    assert pair_set(left, right) == expected
    assert np.all(left < right)
    assert np.array_equal(left * len(unique) + right, np.sort(left * len(unique) + right))


@pytest.mark.parametrize("max_distance", [1, 2, 3, 4, 6])
def test_plans_for_large_inputs_are_exact_too(distinct, max_distance, monkeypatch):
    # At 10^7 hashes the planner picks longer keys (t = 4: 35 tables of 3 blocks): run those plans on the small set.
    plan = index_plan(max_distance, 10**7)
    monkeypatch.setattr(phash_index, "index_plan", lambda t, n: plan)
    unique, dist = distinct
    assert pair_set(*near_duplicate_pairs(unique, max_distance, progress=False)) == brute_force_pairs(
        dist, max_distance
    )


@pytest.mark.parametrize("plan_size", [10**3, 10**5, 10**7])  # at t = 4: 1, 2 and 3 blocks per key
@pytest.mark.parametrize("max_distance", range(1, 9))
def test_worst_case_pairs_need_every_table(max_distance, plan_size, monkeypatch):
    """Per table, a pair whose only identical blocks are that table's (one differing bit in each other block, t in
    all): each is found by that table alone, so a missing or mis-keyed table fails here."""
    plan = index_plan(max_distance, plan_size)
    monkeypatch.setattr(phash_index, "index_plan", lambda t, n: plan)
    rng = np.random.default_rng(max_distance)
    values = []
    for combo in plan.combos:
        base = int(rng.integers(0, 2**64, dtype=np.uint64))
        others = [b for b in range(len(plan.blocks)) if b not in combo]
        values += [base, flip(base, np.array([rng.choice(plan.blocks[b]) for b in others]))]
    values = np.array(values, dtype=np.uint64)
    assert len(np.unique(values)) == len(values)
    found = pair_set(*near_duplicate_pairs(values, max_distance, progress=False))
    assert found == brute_force_pairs(distances(values), max_distance)
    assert {(2 * i, 2 * i + 1) for i in range(len(plan.combos))} <= found


@pytest.mark.parametrize("max_distance", range(1, 9))
@pytest.mark.parametrize("n", [10, 10**5, 10**7, 10**9])
def test_plan_covers_every_block_combination(max_distance, n):
    plan = index_plan(max_distance, n)
    k = len(plan.combos[0])
    assert len(plan.blocks) == max_distance + k  # pigeonhole: at least k blocks of m = t + k are clean
    assert sorted(b for r in plan.blocks for b in r) == list(range(64))
    assert sorted(plan.combos) == list(itertools.combinations(range(len(plan.blocks)), k))
    key_bits = max(sum(len(plan.blocks[b]) for b in combo) for combo in plan.combos)
    assert key_bits + (n - 1).bit_length() <= 64  # key and row index share one uint64


@pytest.mark.parametrize("max_distance", [0, 2, 4, 6])
def test_components_equal_brute_force(planted, max_distance):
    values, kinds = planted
    rng = np.random.default_rng(1)
    n = len(values)
    aesthetic = np.where(rng.random(n) < 0.2, np.nan, rng.uniform(1, 10, n))
    null = np.zeros(n, dtype=bool)
    null[rng.choice(n, size=20, replace=False)] = True
    table = pa.table(
        {
            "key": [f"{i:06d}" for i in rng.permutation(n)],
            "phash": pa.array(values, mask=null),
            "aesthetic": pa.array(aesthetic, type=pa.float32(), from_pandas=True),
            "max_person_short_side": pa.array(rng.integers(0, 3, n) * 100.0, type=pa.float32()),
        }
    )
    result = phash_dedup(table, PhashDedupConfig(max_distance=max_distance), progress=False)

    dist = distances(values)
    within = np.triu(dist <= max_distance, k=1) & ~null[:, None] & ~null[None, :]
    left, right = np.nonzero(within)
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    kept = keep_best(labels, preference_rank(table, ["aesthetic", "max_person_short_side"]))
    assert np.array_equal(result.dup_of, np.where(kept == np.arange(n), -1, kept))
    sizes = np.bincount(labels)
    assert result.components == int((sizes >= 2).sum())
    assert result.removed == int((sizes - 1).sum())
    unique, counts = np.unique(values[~null], return_counts=True)
    assert result.exact_groups == int((counts >= 2).sum())
    assert result.near_pairs == len(brute_force_pairs(distances(unique), max_distance))
    assert np.all(result.dup_of[null] == -1)

    root = np.where(result.dup_of < 0, np.arange(n), result.dup_of)
    together = {
        kind: [root[a] == root[b] for a, b in pairs if not null[a] and not null[b]] for kind, pairs in kinds.items()
    }
    assert all(together["exact"])
    if max_distance == 4:  # the planted structure, spelled out at the default radius
        assert all(together["near"]) and all(together["chain"]) and all(together["chain_ends"])
        assert not any(together["decoy"])
        assert all(dist[a, c] == 6 for a, c in kinds["chain_ends"])  # a and c are joined through b only


def candidates(rows: list[tuple[str, int | None, float | None, float | None]]) -> pa.Table:
    keys, phashes, aesthetic, person = zip(*rows, strict=True)
    return pa.table(
        {
            "key": list(keys),
            "phash": pa.array(phashes, type=pa.uint64()),
            "aesthetic": pa.array(aesthetic, type=pa.float32()),
            "max_person_short_side": pa.array(person, type=pa.float32()),
        }
    )


def test_keep_rule():
    h, g, e, c = 0x0123456789ABCDEF, 0xFEDCBA9876543210, 0x00FF00FF00FF00FF, 0x5555AAAA5555AAAA
    table = candidates(
        [
            ("k0", h, 5.0, 100.0),
            ("k1", h ^ 0b11, 6.0, 50.0),  # highest aesthetic wins
            ("k2", g, 5.0, 100.0),
            ("k3", g ^ 0b1, 5.0, 400.0),  # same aesthetic: the largest person wins
            ("k4", e, None, 1000.0),
            ("k5", e ^ 0b1111, 1.0, 10.0),  # a null aesthetic loses to any value
            ("k7", c, 3.0, 3.0),
            ("k6", c ^ (1 << 63), 3.0, 3.0),  # a tie on everything: the smallest key, not the first row
        ]
    )
    result = phash_dedup(table, PhashDedupConfig(), progress=False)
    assert result.dup_of.tolist() == [1, -1, 3, -1, 5, -1, 7, -1]
    assert (result.exact_groups, result.near_pairs, result.components, result.removed) == (0, 4, 4, 4)


def test_exact_duplicates_grouped_and_null_phash_kept():
    h = 0x0123456789ABCDEF
    table = candidates(
        [
            ("a", h, 2.0, None),
            ("b", None, 9.0, None),
            ("c", h, 3.0, None),
            ("d", h, 1.0, None),
            ("e", None, 9.0, None),
            ("f", ~h & (2**64 - 1), 9.0, None),  # 64 bits away
        ]
    )
    for max_distance in (0, 4):
        result = phash_dedup(table, PhashDedupConfig(max_distance=max_distance), progress=False)
        assert result.dup_of.tolist() == [2, -1, -1, 2, -1, -1]
        assert (result.exact_groups, result.near_pairs, result.components, result.removed) == (1, 0, 1, 2)


def test_popcount_fallback_for_old_numpy():
    x = np.random.default_rng(0).integers(0, 2**64, size=10_000, dtype=np.uint64)
    x[:3] = [0, 1, 2**64 - 1]
    assert np.array_equal(phash_index._popcount_swar(x), np.bitwise_count(x))


def test_small_and_invalid_inputs():
    assert all(len(x) == 0 for x in near_duplicate_pairs(np.array([7], dtype=np.uint64), 4, progress=False))
    assert all(len(x) == 0 for x in near_duplicate_pairs(np.zeros(0, dtype=np.uint64), 4, progress=False))
    for bad in (-1, 32):
        with pytest.raises(ValueError, match="max_distance"):
            near_duplicate_pairs(np.arange(3, dtype=np.uint64), bad)
        with pytest.raises(ValueError, match="max_distance"):
            PhashDedupConfig(max_distance=bad)
    result = phash_dedup(candidates([("a", None, None, None)]).slice(0, 0), PhashDedupConfig(), progress=False)
    assert (len(result.dup_of), result.components, result.removed) == (0, 0, 0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_sample_corpus(tmp_path_factory.mktemp("corpus"), SampleCorpusConfig())


def test_sample_corpus_near_duplicates_join_their_original(corpus):
    # The phash stage's hash of every decodable file (rejected files never reach the select phase).
    entries, hashes = [], []
    for entry in corpus.entries:
        image = decode_image((corpus.images_dir / entry.path).read_bytes(), DecodeConfig(min_short_side=1)).image
        if image is not None:
            entries.append(entry)
            hashes.append(phash_uint64(image))
    table = candidates([(e.key, h, None, None) for e, h in zip(entries, hashes, strict=True)])
    result = phash_dedup(table, PhashDedupConfig(), progress=False)
    root = np.where(result.dup_of < 0, np.arange(len(entries)), result.dup_of)
    component = {e.name: int(r) for e, r in zip(entries, root, strict=True)}

    originals = [e for e in entries if e.kind == ORIGINAL]
    checked = [e for e in entries if e.kind == NEAR_DUPLICATE and e.name.rsplit("/", 1)[1] in PHASH_NEAR_VARIANTS]
    origins = {e.origin for e in entries if e.kind == NEAR_DUPLICATE}
    assert len(origins) == SampleCorpusConfig().near_duplicate_origins
    assert len(checked) == len(origins) * len(PHASH_NEAR_VARIANTS)
    for entry in checked:
        assert component[entry.name] == component[f"originals/{entry.origin}"], entry.name
    assert len({component[e.name] for e in originals}) == len(originals)  # different photos stay apart
