"""june.web.serve: a service serves under uvicorn with its start-up heap frozen out of the collector."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx

from june.procs import wait_ready
from tests.conftest import free_port

SERVICE = textwrap.dedent(
    """
    import gc, sys
    from litestar import Litestar, get
    from june.web import serve

    @get("/health", sync_to_thread=False)
    def health() -> dict:
        return {"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}

    serve(Litestar([health]), "127.0.0.1", int(sys.argv[1]), access_log=False)
    """
)


def test_a_served_app_has_its_start_up_heap_frozen() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVICE, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", timeout=60, proc=proc, name="service")
        heap = httpx.get(f"http://127.0.0.1:{port}/health").json()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # Litestar and its imports are tens of thousands of objects: frozen, full collections skip them.
    assert heap["frozen"] > 20_000 and heap["tracked"] < heap["frozen"] / 10, heap
