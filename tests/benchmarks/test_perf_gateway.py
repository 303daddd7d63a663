"""`june bench gateway` runs end to end: stubs, gateway and bare relay start, every row is measured,
and the paced stub really generates at the pace asked for."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.perf.gateway import CPU_LATENCY_QOS, MIN_WAVES, idle_polling
from june.cli import app


def test_bench_gateway_measures_both_proxies_against_a_paced_stub(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    args = ["bench", "gateway", "--stub", "paced", "--ttft-ms", "20", "--tpot-ms", "2", "--max-tokens", "6"]
    args += ["-c", "1", "-c", "2", "--requests", "8", "--rounds", "2", "--out", str(out)]
    cpus = sorted(os.sched_getaffinity(0))
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert sorted(os.sched_getaffinity(0)) == cpus  # the load generator's pinning is undone
    proxy_cpus = [cpus[-1]] if len(cpus) >= 2 else None  # the proxies get the last CPU to themselves
    assert "Gateway overhead" in result.output
    rows = json.loads(out.read_text())
    assert {(r["mode"], r["concurrency"], r["via"]) for r in rows} == {
        (mode, c, via) for mode in ("json", "stream") for c in (1, 2) for via in ("gateway", "relay")
    }
    for r in rows:
        # 2 rounds of 8 / 2 requests each, at least MIN_WAVES x the concurrency a round.
        assert r["proxy_cpus"] == proxy_cpus
        assert r["idle_polling"] is os.access(CPU_LATENCY_QOS, os.W_OK)
        assert (
            r["requests"] == 2 * max(4, MIN_WAVES * r["concurrency"])
            and r["gateway_rps"] > 0
            and r["gateway_cpu_ms"] >= 0
        )  # /proc ticks are 10 ms
        # json: the whole answer after ttft + 5 tpot; stream: the first token after ttft.
        floor_ms = 20 + 5 * 2 if r["mode"] == "json" else 20
        assert r["direct_p50_ms"] >= floor_ms and r["gateway_p50_ms"] >= floor_ms


def test_an_out_path_that_is_a_folder_is_refused_before_measuring(tmp_path: Path) -> None:
    args = [
        "bench",
        "gateway",
        "--stub",
        "instant",
        "-c",
        "1",
        "--requests",
        "4",
        "--rounds",
        "1",
        "--no-relay",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "is a directory" in result.output, result.output
    assert "Gateway overhead" not in result.output  # nothing was measured only to be lost


def _cpu_latency_target_us() -> int:
    return struct.unpack("=i", CPU_LATENCY_QOS.read_bytes()[:4])[0]


@pytest.mark.skipif(
    not os.access(CPU_LATENCY_QOS, os.W_OK), reason="needs a writable /dev/cpu_dma_latency (root on Linux)"
)
def test_idle_polling_holds_the_cpu_latency_target_at_zero_and_lets_go() -> None:
    before = _cpu_latency_target_us()
    with idle_polling() as held:
        assert held and _cpu_latency_target_us() == 0
    assert _cpu_latency_target_us() == before > 0


def test_idle_polling_is_skipped_where_it_cannot_be_held_or_is_not_wanted(tmp_path: Path) -> None:
    with idle_polling(qos=tmp_path / "no-such-node") as held:
        assert held is False
    with idle_polling(enabled=False) as held:
        assert held is False
