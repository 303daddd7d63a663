"""`ModelRegistry`: named models loaded on first use (or preloaded), unloaded after an idle TTL.

Loading is blocking (seconds: reading weights) and runs in a worker thread; concurrent requests for
a model that is loading wait for the same load. Pinned models (the preloaded ones) stay loaded.
The registry is async-only: use it from the event loop (handlers, lifespan tasks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio
import anyio.to_thread

log = logging.getLogger(__name__)

T = TypeVar("T")


class UnknownModel(KeyError):
    """A model name the registry has no loader for; `.args[0]` is the name."""


@dataclass
class _Entry(Generic[T]):
    model: T | None = None
    lock: anyio.Lock | None = None
    last_used: float = 0.0
    in_use: int = 0


class ModelRegistry(Generic[T]):
    """Models by name, each built by `loaders[name]()` (blocking) when first needed.

    `ttl_s` < 0 keeps models forever; otherwise `reap()` unloads any model not in `pinned` that has
    been idle (no `use` in progress) for `ttl_s` seconds.
    """

    def __init__(
        self,
        loaders: Mapping[str, Callable[[], T]],
        *,
        ttl_s: float = -1,
        pinned: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        self.loaders = dict(loaders)
        self.ttl_s = ttl_s
        self.pinned = frozenset(pinned)
        self._entries: dict[str, _Entry[T]] = {name: _Entry() for name in self.loaders}

    @property
    def names(self) -> tuple[str, ...]:
        """Every model name, in configuration order."""
        return tuple(self.loaders)

    def loaded(self, name: str) -> bool:
        """Whether `name` is in memory now."""
        entry = self._entries.get(name)
        return entry is not None and entry.model is not None

    def put(self, name: str, model: T) -> None:
        """Register an already built `model` (tests, or a host that built it) as loaded and pinned."""
        self.loaders.setdefault(name, lambda: model)
        self._entries[name] = _Entry(model=model, last_used=time.monotonic())
        self.pinned = self.pinned | {name}

    async def get(self, name: str, *, abandon_on_cancel: bool = False) -> T:
        """The model `name`, loading it first if needed. Raises UnknownModel.

        `abandon_on_cancel`: a cancelled caller returns at once, leaving the loading thread to finish
        unseen (for preloads at shutdown); otherwise cancellation waits for the load to end.
        """
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownModel(name)
        if entry.model is None:
            if entry.lock is None:
                entry.lock = anyio.Lock()
            async with entry.lock:
                if entry.model is None:
                    start = time.perf_counter()
                    entry.model = await anyio.to_thread.run_sync(
                        self.loaders[name], abandon_on_cancel=abandon_on_cancel
                    )
                    log.info("loaded model %r in %.2f s", name, time.perf_counter() - start)
        entry.last_used = time.monotonic()
        return entry.model

    def acquire(self, name: str) -> None:
        """Mark `name` in use (not reaped) until `release`."""
        self._entries[name].in_use += 1

    def release(self, name: str) -> None:
        """End a use started with `acquire`; restarts the idle clock."""
        entry = self._entries[name]
        entry.in_use = max(0, entry.in_use - 1)
        entry.last_used = time.monotonic()

    def reap(self, now: float | None = None) -> list[str]:
        """Unload idle, unpinned models past the TTL; returns their names."""
        if self.ttl_s < 0:
            return []
        now = time.monotonic() if now is None else now
        gone = []
        for name, entry in self._entries.items():
            if (
                entry.model is not None
                and name not in self.pinned
                and entry.in_use == 0
                and now - entry.last_used >= self.ttl_s
            ):
                entry.model = None
                gone.append(name)
                log.info("unloaded model %r after %.0f s idle", name, now - entry.last_used)
        return gone

    async def reap_forever(self) -> None:
        """Call `reap` periodically (every quarter of the TTL, 1-30 s); run it as a task."""
        if self.ttl_s < 0:
            return
        every = min(30.0, max(1.0, self.ttl_s / 4))
        while True:
            await anyio.sleep(every)
            self.reap()
