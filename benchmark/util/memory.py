"""Peak memory, one quantity everywhere: the largest resident set size (RSS) in MiB."""

from __future__ import annotations

import resource
import sys
import threading
from pathlib import Path


def peak_rss_mib(children: bool = False) -> float:
    """The largest RSS of this process since it started (the kernel's high-water mark), or with
    `children`, of the largest of its finished child processes."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    rss = resource.getrusage(who).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, else KiB


def rss_mib() -> float:
    """This process's RSS now (Linux; elsewhere its peak so far, an upper bound)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


class PeakRSS:
    """The largest RSS of this process while the block runs (sampled every 20 ms, and at its
    start and end): a process that runs many cells has one high-water mark for all of them."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())
