"""Helpers shared by the dataset sources: cache location and paths, checksums, atomic downloads."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from benchmark.util.atomic import written_atomic
from benchmark.util.hashing import file_digest
from tasks.errors import BenchError, ChecksumError


def cache_root() -> Path:
    """`TRACER_BENCH_CACHE` if set, else the user's cache directory (e.g. ~/.cache/tracer-bench)."""
    env = os.environ.get("TRACER_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("tracer-bench"))


SEPARATORS = ("/", "\\")  # os.sep and os.altsep on every platform


def _is_component(part: object) -> bool:
    """One plain file or folder name: not empty, not `.`/`..`, no separator, drive or control
    character (a name printed in a one-line error stays on one line)."""
    return (
        isinstance(part, str)
        and part not in ("", ".", "..")
        and part.isprintable()
        and not any(sep in part for sep in SEPARATORS)
        and not Path(part).anchor
    )


def cache_path(*parts: str) -> Path:
    """`cache_root() / parts[0] / parts[1] ...`, each part one plain name; BenchError when a part
    is not, or when the path (symbolic links resolved) would lie outside the cache root. Every
    path the harness writes in its cache is built here (DESIGN §6, hostile input)."""
    root = cache_root()
    path = root
    for part in parts:
        if not _is_component(part):
            raise BenchError(f"cache path part {part!r} refused: each part of a path under {root} "
                             "must be one plain file or folder name")  # fmt: skip
        path = path / part
    if not path.resolve().is_relative_to(root.resolve()):
        raise BenchError(f"{path}: refused: it resolves to {path.resolve()}, outside the cache "
                         f"root {root.resolve()}")  # fmt: skip
    return path


def utf8_problem(path: Path, data: bytes | None = None) -> str:
    """'<file>:<line>: not UTF-8 (byte 0x.. at offset N)' for the first byte that is not UTF-8,
    or '' when the whole file decodes."""
    data = path.read_bytes() if data is None else data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
    return ""


def verify_checksum(path: Path, expected: str) -> None:
    """`expected` is 'sha256:<hex>' or 'md5:<hex>'; raise ChecksumError naming the file."""
    algo, _, digest = expected.partition(":")
    actual = file_digest(path, algo)
    if actual != digest.lower():
        raise ChecksumError(f"{path}: {algo} checksum mismatch (expected {digest}, got {actual})")


def verify_checksums(files: dict[str, Path], checksums: dict[str, str]) -> None:
    for name, expected in checksums.items():
        if name not in files:
            raise ChecksumError(
                f"checksum declared for unknown file {name!r} (files: {sorted(files)})"
            )
        verify_checksum(files[name], expected)


def download(url: str, dest: Path, expected: str | None = None, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` once: write to a temporary file, verify, then rename.

    A file already at `dest` is reused (and verified). A failed or mismatching download leaves
    nothing at `dest`.
    """
    if dest.exists():
        if expected:
            verify_checksum(dest, expected)
        return dest
    try:
        from tqdm import tqdm

        with written_atomic(dest) as tmp:
            with tmp.open("wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}")
                with bar:
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        out.write(block)
                        bar.update(len(block))
            if expected:
                try:
                    verify_checksum(tmp, expected)
                except ChecksumError as exc:
                    raise ChecksumError(f"{url}: {str(exc).split(': ', 1)[1]}") from None
    except OSError as exc:
        raise BenchError(f"{url}: download failed ({exc})") from None
    return dest
