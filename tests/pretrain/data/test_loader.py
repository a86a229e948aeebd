import itertools

import pytest
import torch

from pretrain.data.loader import LoaderState, build_loader
from pretrain.data.shards import list_shards


def _loader(shard_set, **kwargs):
    settings = {"batch_size": 2, "num_workers": 0, "crops": shard_set.crops, "shuffle_buffer": 4, "seed": 7, **kwargs}
    return build_loader(list_shards(shard_set.dir), **settings)


def _keys(batches: list[dict]) -> list[str]:
    return [k for b in batches for k in b["keys"]]


def test_batch_layout(shard_set):
    loader, _ = _loader(shard_set)
    batch = next(iter(loader))
    assert set(batch) == {"global", "local", "keys"}
    assert batch["global"].shape == (2, 2, 3, 64, 48) and batch["global"].dtype == torch.float32
    assert batch["local"].shape == (2, 2, 3, 32, 24) and batch["local"].dtype == torch.float32
    assert len(batch["keys"]) == 2 and all(isinstance(k, str) for k in batch["keys"])


@pytest.mark.parametrize("world_size", [2, 4])  # 4 ranks x 2 workers: more streams than the 5 shards
def test_every_sample_once_across_ranks_and_workers_and_corrupt_counted(shard_set, world_size):
    seen, skipped = [], {}
    for rank in range(world_size):
        loader, state = _loader(shard_set, num_workers=2, rank=rank, world_size=world_size)
        batches = list(loader)
        assert all(len(b["keys"]) <= 2 for b in batches)
        seen += _keys(batches)
        for reason, n in state.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        assert state.epoch == 1  # a finished epoch moves the state on
    assert sorted(seen) == sorted(shard_set.keys)
    assert shard_set.corrupt_key not in seen
    assert skipped == {"truncated": 1}


def test_corrupt_sample_is_counted(shard_set):
    loader, state = _loader(shard_set)
    batches = list(itertools.islice(loader, 100))  # stops before the epoch ends: the counts stay readable
    assert len(_keys(batches)) == len(shard_set.keys)
    assert state.skipped == {"truncated": 1}
    assert state.samples == len(shard_set.keys)


def test_same_seed_same_batches_new_epoch_new_order(shard_set):
    first, second = (list(_loader(shard_set, num_workers=2)[0]) for _ in range(2))
    assert _keys(first) == _keys(second)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a["global"], b["global"]) and torch.equal(a["local"], b["local"])
    loader, _ = _loader(shard_set, num_workers=2)
    epoch0, epoch1 = _keys(list(loader)), _keys(list(loader))
    assert sorted(epoch0) == sorted(epoch1) and epoch0 != epoch1
    assert _keys(list(_loader(shard_set, num_workers=2, seed=8)[0])) != epoch0


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_continues_with_the_uninterrupted_batches(shard_set, num_workers):
    reference = list(_loader(shard_set, num_workers=num_workers)[0])
    for k in range(1, len(reference)):
        loader, state = _loader(shard_set, num_workers=num_workers)
        head = list(itertools.islice(loader, k))
        saved = state.state_dict()
        resumed, resumed_state = _loader(shard_set, num_workers=num_workers)
        resumed.load_state_dict(saved)
        tail = list(resumed)
        assert _keys(head) + _keys(tail) == _keys(reference), f"resume after {k} batches"
        for a, b in zip(head + tail, reference, strict=True):
            assert torch.equal(a["global"], b["global"]) and torch.equal(a["local"], b["local"])
        assert resumed_state.epoch == 1
        assert resumed_state.skipped == {"truncated": 1} and resumed_state.samples == len(shard_set.keys)


def test_resume_refuses_another_layout(shard_set):
    _, state = _loader(shard_set, num_workers=2)
    other = LoaderState(rank=0, world_size=1, num_workers=1, seed=7, batch_size=2)
    with pytest.raises(ValueError, match="num_workers"):
        other.load_state_dict(state.state_dict())


def test_drop_last_counts_dropped_samples(shard_set):
    loader, state = _loader(shard_set, batch_size=4, drop_last=True)
    batches = list(itertools.islice(loader, 100))
    assert all(len(b["keys"]) == 4 for b in batches)
    assert state.samples + state.skipped.get("dropped_partial_batch", 0) == len(shard_set.keys)


def test_shards_behind_a_uri(shard_set):
    loader, _ = build_loader(
        list_shards(f"file://{shard_set.dir}"),
        batch_size=3,
        num_workers=0,
        crops=shard_set.crops,
        shuffle_buffer=0,
        seed=0,
    )
    assert sorted(_keys(list(loader))) == sorted(shard_set.keys)


def test_iterating_again_after_a_break_continues_the_epoch(shard_set):
    reference = _keys(list(_loader(shard_set, num_workers=2)[0]))
    loader, state = _loader(shard_set, num_workers=2)
    head = _keys(list(itertools.islice(loader, 2)))
    assert state.epoch == 0 and state.batches == 2
    assert head + _keys(list(loader)) == reference
    assert state.epoch == 1 and state.batches == 0
