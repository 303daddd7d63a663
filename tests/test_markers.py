"""The `slow` marker marks every test that starts vLLM: collection refuses a test that uses a vLLM
fixture (tests/conftest.py VLLM_FIXTURES, directly or through another fixture) without the mark."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
from tests.conftest import pytest_collection_modifyitems  # the hook under test

@pytest.fixture
def llm_url():
    return "http://127.0.0.1:1"  # stands in for the vLLM server: never started here

@pytest.fixture
def gateway_url(llm_url):
    return llm_url
"""


def test_a_test_that_starts_vllm_must_be_marked_slow(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    slow: starts vLLM\n")
    pytester.makepyfile(
        test_unmarked=(
            "def test_direct(llm_url): pass\ndef test_through_gateway(gateway_url): pass\ndef test_other(): pass\n"
        ),
    )
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*not marked*slow*", "*test_unmarked.py::test_direct", "*test_unmarked.py::test_through_gateway"]
    )
    assert "test_other" not in result.stderr.str()


def test_marked_tests_that_start_vllm_are_collected(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    slow: starts vLLM\n")
    pytester.makepyfile(
        test_marked=(
            "import pytest\npytestmark = pytest.mark.slow\ndef test_direct(llm_url): pass\n"
            "def test_through_gateway(gateway_url): pass\n"
        ),
        test_decorated="import pytest\n@pytest.mark.slow\ndef test_one(gateway_url): pass\ndef test_other(): pass\n",
    )
    result = pytester.runpytest("-q", "-m", "not slow")
    result.assert_outcomes(passed=1, deselected=3)
