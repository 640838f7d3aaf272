"""The one reader of untrusted JSON (DESIGN §6, hostile input): every file a submitter or a task
author wrote — result records, artifacts, ledgers, community data files — goes through
`read_json`. It bounds the file's size and its nesting depth before parsing (Python's parser
recurses, so a file nested 10,000 deep would end in a RecursionError), refuses a key repeated in
one object (whose last value would silently win) and the non-JSON constants NaN / Infinity, and
names the file and the line in a `BenchError`. Also the check that a path read lies inside its
folder. No torch, no project imports beyond the error type."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tasks.errors import BenchError

MAX_DEPTH = 64
MAX_BYTES = 256 * 2**20


class UntrustedInput(BenchError):
    """A file that is not what it must be, named with what is wrong."""


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


NAN = float("nan")  # one object, as json.loads gives: records read back compare equal


def _nan_only(name: str) -> float:
    """Result records write NaN for 'no value' (an interval that does not exist); never
    Infinity."""
    if name != "NaN":
        _no_constant(name)
    return NAN


def _unique(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
BRACKET = re.compile(r"[\[\]{}]")


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects (brackets inside strings are not counted)."""
    depth = deepest = 0
    for match in BRACKET.finditer(STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _too_deep(text: str, max_depth: int) -> bool:
    """Cheap when brackets are few (the common case); exact otherwise."""
    if text.count("[") + text.count("{") <= max_depth:
        return False
    return nesting_depth(text) > max_depth


def parse_json(
    text: str,
    where: str,
    max_depth: int = MAX_DEPTH,
    lineno: int | None = None,
    allow_nan: bool = False,
) -> object:
    """Strict JSON from text already read; `where` names the file (and `lineno` its line) in the
    error. `allow_nan`: NaN is a value (result records), Infinity still is not."""
    at = f"{where}:{lineno}" if lineno is not None else where
    if _too_deep(text, max_depth):
        raise UntrustedInput(f"{at}: JSON nested deeper than {max_depth} levels")
    try:
        constant = _nan_only if allow_nan else _no_constant
        return json.loads(text, parse_constant=constant, object_pairs_hook=_unique)
    except json.JSONDecodeError as exc:
        line = exc.lineno if lineno is None else lineno
        raise UntrustedInput(f"{where}:{line}: not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:
        raise UntrustedInput(f"{at}: not valid JSON ({exc})") from None


def read_bytes(path: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """A regular file's bytes (no symlink, at most `max_bytes`), else one-line UntrustedInput."""
    path = Path(path)
    if path.is_symlink():
        raise UntrustedInput(f"{path}: a symbolic link (refused: read only files in the folder)")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UntrustedInput(f"{path}: {size} bytes, more than the {max_bytes} allowed")
        return path.read_bytes()
    except OSError as exc:
        raise UntrustedInput(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_json(
    path: str | Path,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    allow_nan: bool = False,
) -> object:
    """The JSON value of an untrusted file, checked as the module says."""
    data = read_bytes(Path(path), max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedInput(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_json(text, str(path), max_depth, allow_nan=allow_nan)


def read_json_object(path: str | Path, max_bytes: int = MAX_BYTES) -> dict:
    doc = read_json(path, max_bytes)
    if not isinstance(doc, dict):
        raise UntrustedInput(f"{path}: expected a JSON object, found {type(doc).__name__}")
    return doc


def inside(folder: Path, name: str, what: str) -> Path:
    """`folder / name` for a relative name that stays in `folder`: no absolute path, no `..`, no
    symbolic link on the way; else one-line UntrustedInput naming `what` refers to it."""
    if not isinstance(name, str) or not name or os.path.isabs(name) or "\\" in name:
        raise UntrustedInput(f"{what}: {name!r} is not a file name inside {folder}")
    parts = Path(name).parts
    if ".." in parts:
        raise UntrustedInput(f"{what}: {name!r} leaves {folder}")
    path = Path(folder)
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise UntrustedInput(f"{what}: {name!r} is a symbolic link (refused)")
    return path
