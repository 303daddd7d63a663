"""june's vLLM sampling plugin: top-k then top-p on the CPU gives vLLM's own mask without its full sort."""

from __future__ import annotations

import pytest
import torch

from june.llm.vllm_sampling import register, top_k_then_top_p

topk_topp_sampler = pytest.importorskip("vllm.v1.sample.ops.topk_topp_sampler")
VOCAB = 151_936  # Qwen's


def _vllms(logits: torch.Tensor, k: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """vLLM's sort-based mask, the reference."""
    return topk_topp_sampler.apply_top_k_top_p_pytorch(logits.clone(), k.clone(), p.clone(), allow_cpu_sync=True)


@pytest.mark.parametrize("seed", range(6))
def test_the_mask_is_vllms_own(seed: int) -> None:
    """Random rows with a mix of top-k (1, Qwen's 20, 500, none = the vocabulary) and top-p (a tight
    0.1, Qwen's 0.8, none = 1.0), sharp and flat distributions, a row with banned tokens (-inf)."""
    gen = torch.Generator().manual_seed(seed)
    batch = 6
    logits = torch.randn(batch, VOCAB, generator=gen) * torch.tensor([0.5, 1, 3, 8, 3, 1]).unsqueeze(1)
    logits[4, torch.randperm(VOCAB, generator=gen)[: VOCAB // 2]] = float("-inf")
    k = torch.tensor([20, 1, 500, 20, 20, VOCAB])[torch.randperm(batch, generator=gen)]
    p = torch.tensor([0.8, 0.1, 1.0, 0.95, 0.8, 0.8])[torch.randperm(batch, generator=gen)]
    expected = _vllms(logits, k, p)
    got = top_k_then_top_p(logits.clone(), k, p)
    assert torch.equal(torch.isinf(got), torch.isinf(expected))  # the same tokens kept
    kept = ~torch.isinf(expected)
    assert torch.equal(got[kept], logits[kept])  # with their own logits
    assert (kept.sum(dim=1) >= 1).all() and (kept.sum(dim=1) <= torch.minimum(k, torch.tensor(VOCAB))).all()


def test_ties_at_the_kth_logit_are_kept_as_vllm_keeps_them() -> None:
    logits = torch.full((1, 1000), -5.0)
    logits[0, :3] = torch.tensor([4.0, 3.0, 3.0])
    logits[0, 10:14] = 2.0  # four tied at the 4th place
    k, p = torch.tensor([4]), torch.tensor([1.0])
    got = top_k_then_top_p(logits.clone(), k, p)
    assert torch.equal(torch.isinf(got), torch.isinf(_vllms(logits, k, p)))
    assert int((~torch.isinf(got)).sum()) == 7


def test_register_routes_vllms_cpu_sampler_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    own = topk_topp_sampler.apply_top_k_top_p
    monkeypatch.setattr(topk_topp_sampler, "apply_top_k_top_p", own)  # undone after the test
    register()
    register()  # loaded once per vLLM process, maybe more: patched once
    patched = topk_topp_sampler.apply_top_k_top_p
    assert patched is not own and patched.june_own is own

    def full_sort(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("vLLM's full-vocabulary sort ran")

    monkeypatch.setattr(topk_topp_sampler, "apply_top_k_top_p_pytorch", full_sort)
    logits = torch.randn(2, VOCAB)
    sampler = topk_topp_sampler.TopKTopPSampler()  # forward_cpu needs vLLM's compiled ops: the native path
    tokens, _ = sampler.forward_native(logits.clone(), {}, torch.tensor([20, 20]), torch.tensor([0.8, 0.8]))
    assert all(int(t) in logits[row].topk(20).indices for row, t in enumerate(tokens))
    with pytest.raises(AssertionError, match="full-vocabulary sort"):  # top-k alone stays vLLM's own
        sampler.forward_native(logits.clone(), {}, torch.tensor([20, 20]), None)
