"""Atomic file writes: a temporary file in the target's folder, then os.replace."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode() -> int:
    return 0o666 & ~_umask()


@contextmanager
def written_atomic(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file name in `path`'s folder for a writer that takes a name (safetensors,
    numpy); when the block ends normally the file replaces `path`, so readers see the old file or
    the whole new one. It gets the usual permissions (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (`written_atomic`), synced to disk before the rename."""
    with written_atomic(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


@contextmanager
def folder_atomic(folder: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; when the block ends normally it replaces
    `folder`, so readers see the old folder or the whole new one, never a partial one. Safe
    when several processes write the same folder at once: the last one to finish wins."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's folder is private; the result need not be
        _swap_in(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, folder: Path, tries: int = 100) -> None:
    """Rename `tmp` to `folder`. A folder already there (an earlier run's, or one a concurrent
    writer renamed in after we looked) is first renamed aside whole, then deleted, so no reader
    ever sees it half deleted."""
    for _ in range(tries):
        try:
            os.replace(tmp, folder)  # succeeds when `folder` is absent or empty
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        aside = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old."))
        try:
            os.replace(folder, aside)
        except FileNotFoundError:
            pass  # a concurrent writer moved it aside first
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    raise OSError(
        f"{folder}: could not replace it after {tries} tries (other writers kept renaming into it)"
    )
