"""The voice page at `/` in a real headless Chromium (Debian's package, driven by Playwright), with a
fake microphone that plays a spoken WAV, against the real stack: speech, vLLM on CPU, the gateway."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.perf.realtime import clip_pcm, pcm_wav
from tests.clips import espeak_wav, wer
from tests.conftest import free_port, require_program

pytestmark = pytest.mark.slow  # the whole stack: vLLM through `gateway_url`

QUESTION = "What is the capital of Germany?"
STATIC = Path(__file__).parents[2] / "gateway" / "static"
SCREENSHOT = Path(__file__).parents[2] / "docs" / "voice-page.png"
TIMEOUT_MS = 240_000  # the shared 2-core machine is slow when busy
ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_program("chromium", "chromium")


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """QUESTION, then silence long enough for the whole test: the fake microphone loops the file, and
    a second question would (rightly) barge in on the first reply."""
    d = tmp_path_factory.mktemp("mic")
    wav = d / "mic.wav"
    wav.write_bytes(pcm_wav(clip_pcm(espeak_wav(QUESTION, d / "q.wav"), lead_s=0.5, tail_s=TIMEOUT_MS / 1000 + 30)))
    return wav


@contextlib.contextmanager
def _browser(chromium: str, *extra: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[*ARGS, *extra])
        try:
            yield browser
        finally:
            browser.close()


def test_page_talks_with_june(chromium: str, gateway_url: str, mic_wav: Path) -> None:
    with _browser(
        chromium, "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={mic_wav}"
    ) as browser:
        page = browser.new_page(viewport={"width": 760, "height": 620})
        page.goto(gateway_url)
        assert page.title().startswith("june")
        page.click("#mic")
        user = page.wait_for_selector(".bubble.user:not(.pending)", timeout=TIMEOUT_MS)
        heard = user.inner_text().removeprefix("YOU").strip()
        assert wer(QUESTION, heard) <= 0.4, heard
        page.wait_for_function("window.juneStats.samplesPlayed > 2400", timeout=TIMEOUT_MS)  # reply audio played
        page.wait_for_function("window.juneStats.turns >= 1", timeout=TIMEOUT_MS)
        reply = page.locator(".bubble.june p").first.inner_text()
        assert reply.strip() and "<think>" not in reply
        assert page.locator("#banner").is_hidden()
        if os.environ.get("JUNE_SAVE_SCREENSHOT"):  # refresh docs/voice-page.png (shown by the README)
            page.screenshot(path=str(SCREENSHOT))
            from PIL import Image

            Image.open(SCREENSHOT).convert("RGB").quantize(colors=96).save(SCREENSHOT, optimize=True)  # ~30 KB


def test_refused_microphone_is_explained(chromium: str, gateway_url: str) -> None:
    with _browser(chromium, "--deny-permission-prompts") as browser:
        page = browser.new_page()
        page.goto(gateway_url)
        page.click("#mic")
        banner = page.wait_for_selector("#banner:not([hidden])", timeout=30_000)
        assert "Microphone access was refused" in banner.inner_text()


def test_unreachable_server_is_explained(chromium: str) -> None:
    # The page alone, from a plain file server without /v1/realtime: the WebSocket cannot connect.
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(STATIC))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with _browser(chromium) as browser:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            page.fill("#text", "hello")
            page.click("button[type=submit]")
            banner = page.wait_for_selector("#banner:not([hidden])", timeout=30_000)
            assert "Can't reach june" in banner.inner_text()
    finally:
        server.shutdown()
