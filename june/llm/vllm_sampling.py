"""A vLLM general plugin (entry point `vllm.general_plugins`, loaded in every vLLM process): top-k then
top-p sampling on the CPU without sorting the whole vocabulary.

vLLM's CPU sampler (vllm/v1/sample/ops/topk_topp_sampler.py, `apply_top_k_top_p_pytorch`) sorts every
row of logits whenever a request asks for top-p, and Qwen's generation config asks for top-k 20 and
top-p 0.8 (or 0.95) on every request. For Qwen's 151,936-token vocabulary that sort takes 13.7 ms a
step at batch 1 and 31 ms at batch 4 on june's 2-core box, against 0.44 ms for `torch.topk(20)`; a
py-spy profile of the 0.5B's decode put 13–16 % of the worker's time in it (TPOT 60 ms). vLLM tried
the same idea upstream (vllm-project/vllm#32234, #48913); the CPU path of the version june pins still
sorts.

The result is the same as vLLM's: top-k keeps every logit at or above the k-th largest (ties
included, as vLLM's sort-based mask does, via its own `apply_top_k_only`); top-p is then applied to
what is left, in ascending order, exactly as vLLM's cumulative sum over the sorted row does: masked
logits are -inf there, add 0 to the sum and stay masked. So only the kept logits (k, or a few more
on ties) need sorting. A batch in which some row has no top-k (k = vocabulary size) keeps all of
that row, and the sort then covers the vocabulary as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

TopKTopP = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]


def top_k_then_top_p(logits: torch.Tensor, k: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Mask `logits` ([batch, vocab], float) in place to each row's top `k` ([batch], int, 1..vocab;
    ties at the k-th value kept) and then its top-`p` nucleus ([batch], float in (0, 1]); masked
    entries become -inf and at least one entry per row stays. Returns `logits`."""
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_only

    logits = apply_top_k_only(logits, k.clone())  # it writes into k
    kept = int((logits > float("-inf")).sum(dim=1).max())
    ascending, index = logits.topk(max(kept, 1), dim=1, largest=True, sorted=True)
    ascending, index = ascending.flip(1), index.flip(1)
    below = ascending.softmax(dim=-1).cumsum(dim=-1) <= 1 - p.unsqueeze(1)
    below[:, -1] = False  # the most likely token always stays
    return logits.scatter_(1, index, ascending.masked_fill_(below, float("-inf")))


def register() -> None:
    """Route vLLM's CPU top-k/top-p masking through `top_k_then_top_p` when a batch asks for both
    (on a CPU platform only; other cases and platforms keep vLLM's own); idempotent."""
    try:
        from vllm.platforms import current_platform
        from vllm.v1.sample.ops import topk_topp_sampler
    except ImportError as e:  # another vLLM layout: leave it as it is
        log.warning("june: vLLM's top-k/top-p sampler not found (%s); it keeps its full sort", e)
        return
    if not current_platform.is_cpu() or getattr(topk_topp_sampler.apply_top_k_top_p, "june_own", None):
        return
    own: TopKTopP = topk_topp_sampler.apply_top_k_top_p

    def apply_top_k_top_p(logits: torch.Tensor, k: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
        if k is None or p is None:
            return own(logits, k, p)
        return top_k_then_top_p(logits, k, p)

    apply_top_k_top_p.june_own = own  # type: ignore[attr-defined]  # the mark `register` looks for, to patch once
    topk_topp_sampler.apply_top_k_top_p = apply_top_k_top_p  # patching vLLM's function is this plugin's purpose
