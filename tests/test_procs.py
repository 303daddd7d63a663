"""`core.procs.free_port`: ports the kernel will not hand to anyone else in the meantime."""

from __future__ import annotations

import socket
from pathlib import Path

from core.procs import free_port


def test_free_ports_are_bindable_distinct_and_outside_the_ephemeral_range() -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(50)]

    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if low <= p <= high]  # where outgoing connections and bind(0) draw from
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))
