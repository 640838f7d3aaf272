"""File hashes: one streaming digest for every file the harness checks or records."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path, algo: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in 1 MiB blocks (sha256 unless `algo` says)."""
    h = hashlib.new(algo)
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bytes_digest(data: bytes) -> str:
    """The sha256 hex digest of bytes about to be written (equal to `file_digest` of the file)."""
    return hashlib.sha256(data).hexdigest()
