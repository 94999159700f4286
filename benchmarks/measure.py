"""Run a command in a child process and measure its wall time and peak RSS from outside.

A child's own ``ru_maxrss`` is not its own on Linux: a forked child starts with the parent's
high-water mark and keeps it across ``exec``, so a benchmark whose parent generated a 1 GB
file reports 1 GB for every side. Here the parent polls the child's resident set (and that
of the child's own children) every ``interval`` seconds with psutil and keeps the maximum.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

__all__ = ["Measured", "run_measured"]


@dataclass(frozen=True)
class Measured:
    """What a measured child did: exit code, output, wall seconds, peak RSS in MB."""

    returncode: int
    stdout: str
    stderr: str
    wall: float
    peak_mb: float


def _rss(proc: psutil.Process) -> int:
    try:
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return int(total)
    except psutil.Error:
        return 0


def run_measured(
    cmd: Sequence[str], interval: float = 0.02, env: dict[str, str] | None = None
) -> Measured:
    """Run ``cmd`` to completion; its wall time and the peak RSS seen from outside."""
    t0 = time.perf_counter()
    with subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as p:
        watched = psutil.Process(p.pid)
        peak = 0
        out: dict[str, str] = {}

        def drain() -> None:
            out["stdout"], out["stderr"] = p.communicate()

        reader = threading.Thread(target=drain, daemon=True)  # pipes never fill up
        reader.start()
        while p.poll() is None:
            peak = max(peak, _rss(watched))
            time.sleep(interval)
        reader.join()
        wall = time.perf_counter() - t0
    return Measured(p.returncode, out.get("stdout", ""), out.get("stderr", ""), wall, peak / 2**20)
