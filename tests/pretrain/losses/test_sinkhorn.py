import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from pretrain.losses.sinkhorn import sinkhorn_knopp

TEMP = 0.05


def _cosine_logits(batch: int, k: int, seed: int = 0) -> torch.Tensor:
    """Scores like the DINO head's: cosines between unit vectors, with the samples clustered around one direction so
    that a plain softmax piles them onto a few prototypes."""
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(batch, 16, generator=g) + torch.eye(16)[0], dim=-1)
    w = F.normalize(torch.randn(k, 16, generator=g), dim=-1)
    return z @ w.t()  # [B, K]


def test_rows_sum_to_one_and_columns_to_b_over_k_after_many_iterations():
    logits = _cosine_logits(64, 16)
    q = sinkhorn_knopp(logits, TEMP, iterations=500)
    assert q.shape == (64, 16) and (q >= 0).all()
    torch.testing.assert_close(q.sum(dim=1), torch.ones(64), rtol=0, atol=1e-5)
    torch.testing.assert_close(q.sum(dim=0), torch.full((16,), 64 / 16), rtol=0, atol=1e-4)


def test_three_iterations_are_near_the_marginals():
    logits = _cosine_logits(64, 16)
    temp = 0.07

    def worst_column(q: torch.Tensor) -> float:  # largest relative deviation of a column sum from B/K = 4
        return float((q.sum(dim=0) / 4.0 - 1.0).abs().max())

    q = sinkhorn_knopp(logits, temp, iterations=3)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(64), rtol=0, atol=1e-5)
    softmax = worst_column(torch.softmax(logits / temp, dim=-1))
    assert softmax > 1.0  # the uncentred teacher is far off: some prototype gets more than twice its share
    assert worst_column(q) < 0.4 and worst_column(q) < 0.3 * softmax
    deviations = [worst_column(sinkhorn_knopp(logits, temp, iterations=n)) for n in (1, 2, 3, 10)]
    assert deviations == sorted(deviations, reverse=True)


def test_a_constant_shift_of_the_logits_changes_nothing():
    logits = _cosine_logits(32, 8)
    torch.testing.assert_close(sinkhorn_knopp(logits, TEMP), sinkhorn_knopp(logits + 7.0, TEMP))


def test_logits_that_would_overflow_exp_stay_finite():
    logits = _cosine_logits(32, 8)
    q = sinkhorn_knopp(logits + 100.0, TEMP)  # exp(100 / TEMP) is inf without the shift
    assert torch.isfinite(q).all()
    # Only the float32 rounding of the shifted input differs (ulp(100) / TEMP ~ 2e-4 in the exponent).
    torch.testing.assert_close(q, sinkhorn_knopp(logits, TEMP), rtol=1e-3, atol=1e-5)


def test_iterations_must_be_positive():
    with pytest.raises(ValueError, match="iterations"):
        sinkhorn_knopp(torch.zeros(2, 3), TEMP, iterations=0)


def _rank_worker(rank: int, world: int, store_path: str, logits: torch.Tensor, out: torch.Tensor) -> None:
    store = dist.FileStore(store_path, world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    try:
        local = logits.chunk(world)[rank]
        out.chunk(world)[rank].copy_(sinkhorn_knopp(local, TEMP, iterations=3))
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_single_process_result_on_the_full_batch(tmp_path):
    logits = _cosine_logits(24, 8)
    out = torch.zeros(24, 8).share_memory_()
    # fork: the children need no fresh interpreter and torch import, which would cost seconds.
    mp.start_processes(
        _rank_worker, args=(2, str(tmp_path / "store"), logits, out), nprocs=2, join=True, start_method="fork"
    )
    assert not (dist.is_available() and dist.is_initialized())
    torch.testing.assert_close(out, sinkhorn_knopp(logits, TEMP, iterations=3))
