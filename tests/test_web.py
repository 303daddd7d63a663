"""core.web.serve: a service serves under uvicorn with its start-up heap frozen out of the collector."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx

from tests.conftest import free_port, run_service

SERVICE = textwrap.dedent(
    """
    import gc, sys
    from litestar import Litestar, get
    from core.web import serve

    @get("/health", sync_to_thread=False)
    def health() -> dict:
        return {"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}

    serve(Litestar([health]), "127.0.0.1", int(sys.argv[1]), access_log=False)
    """
)


def test_a_served_app_has_its_start_up_heap_frozen(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/health"
    with run_service("served", ["-c", SERVICE, str(port)], {}, url, tmp_path, timeout=60):
        heap = httpx.get(url).json()
    # Litestar and its imports are tens of thousands of objects: frozen, full collections skip them.
    assert heap["frozen"] > 20_000 and heap["tracked"] < heap["frozen"] / 10, heap
