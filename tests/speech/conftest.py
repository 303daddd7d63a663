"""`engine`: the speech tests where the TTS engine matters run once per engine (tests.conftest.TTS_ENGINES),
each against a real speech service with that engine (`tts_url`, `tts_http`, `tts_client`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from tests.conftest import TTS_ENGINES


@pytest.fixture(scope="module", params=TTS_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def tts_url(engine: str, speech_services: Callable[[str], str]) -> str:
    return speech_services(engine)


@pytest.fixture(scope="module")
def tts_http(tts_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tts_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def tts_client(tts_url: str) -> Iterator[openai.OpenAI]:
    with httpx.Client(timeout=120) as http_client:
        yield openai.OpenAI(base_url=tts_url + "/v1", api_key="x", http_client=http_client, max_retries=0)
