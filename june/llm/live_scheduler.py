"""june's vLLM scheduler on CPU: vLLM's own, plus a pause of lower-class work while a live turn waits.

vLLM's priority policy orders the queue by each request's `priority` (june's classes:
core.priority.VLLM_PRIORITY), but a generation that is already running goes on, batched with the live
one, and on a CPU box it also takes the cores from the live turn's transcription and speech, which
run outside vLLM. While the live window file (`core.live_signal`: LLMSettings.live_signal, which
june.llm.server passes on to vLLM as LIVE_SIGNAL_ENV) names a deadline still ahead, this
scheduler gives steps only to live requests (priority 0):

- running requests of a lower class are skipped step by step (vLLM's own per-request
  `next_decode_eligible_step`), so they keep their KV cache and their place, and go on with the next
  token once the window closes;
- waiting requests of a lower class are not admitted (skipped like a blocked request);
- a step with nothing to run sleeps `IDLE_SLEEP_S` instead of vLLM's 1 ms poll, so the paused engine
  does not itself take a core.

The window's second level (interactive work in flight in the gateway: a bot's voice message, an
API call without a class) holds batch requests the same way, except that one step in every
`BATCH_GAP_S` lets them run: the bots' transcription and speech, which run outside vLLM at a lower
OS priority, get the cores, and batch still finishes.

The gateway opens the window while a live turn waits for its answer (its transcription, then its
response until the first audio; gateway.admission), each time for at most its `live_hold_s`;
without the file (GPU hosts, or a vLLM on another host) nothing changes. Loaded by vLLM with
`--scheduler-cls june.llm.live_scheduler.LiveFirstScheduler` (june.llm.server, CPU presets only:
on a GPU, vLLM's async scheduler, which this one does not subclass, keeps the GPU busy, and the LLM
does not share the CPU's cores with speech).
"""

from __future__ import annotations

import os
import time
from typing import Any

from vllm.v1.core.sched.scheduler import Scheduler

from core.live_signal import live_signal_at
from core.priority import VLLM_PRIORITY
from june.llm.settings import LIVE_SIGNAL_ENV

__all__ = ["BATCH_GAP_S", "IDLE_SLEEP_S", "LiveFirstScheduler"]

IDLE_SLEEP_S = 0.01
"""How long a step with nothing to run waits while a window is open (seconds): also the longest
a request of the class in front arriving then waits for its first step."""
BATCH_GAP_S = 0.5
"""While interactive work is in flight (the window's second level) and no live turn waits, batch
requests get one step at most this often (seconds). A CPU step is ~0.05 s, so batch keeps about a
tenth of the time: slowed, never starved."""
LIVE = VLLM_PRIORITY["live"]
INTERACTIVE = VLLM_PRIORITY["interactive"]


class LiveFirstScheduler(Scheduler):
    """vLLM's Scheduler that runs only live requests while the live window is open, and batch ones
    only in a small share of the steps while interactive work is in flight (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live_signal = live_signal_at(os.environ.get(LIVE_SIGNAL_ENV))
        self.held_above: int | None = None
        """Requests with a priority above this get no step now (None: every request may run)."""
        self.window_s = 0.0
        """Seconds the window that holds them stays open, as read at the start of this step."""
        self._free_step_at = -BATCH_GAP_S  # when a step last left every class free to run

    def schedule(self, throttle_prefills: bool = False) -> Any:
        """vLLM's step schedule, with lower-class requests left out while a window is open."""
        now = time.monotonic()
        windows = self.live_signal.windows(now) if self.live_signal is not None else None
        self.held_above, self.window_s = None, 0.0
        if windows is not None and windows["live"] > 0:
            self.held_above, self.window_s = LIVE, windows["live"]
        elif windows is not None and windows["interactive"] > 0 and now - self._free_step_at < BATCH_GAP_S:
            self.held_above, self.window_s = INTERACTIVE, windows["interactive"]
        else:
            self._free_step_at = now
        if self.held_above is not None:
            for request in self.running:
                if request.priority > self.held_above:  # vLLM's check: current_step (advanced first) < this → skipped
                    request.next_decode_eligible_step = max(request.next_decode_eligible_step, self.current_step + 2)
        output = super().schedule(throttle_prefills)
        if self.held_above is not None and output.total_num_scheduled_tokens == 0:
            time.sleep(min(IDLE_SLEEP_S, self.window_s))
        return output

    def _handle_blocked_waiting_request(self, request: Any) -> bool:
        """False (not this step) for a request held by an open window; else vLLM's check."""
        if self.held_above is not None and request.priority > self.held_above:
            return False
        return bool(super()._handle_blocked_waiting_request(request))
