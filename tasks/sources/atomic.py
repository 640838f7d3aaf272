"""RecBole atomic files (`<name>.inter`, `<name>.item`): tab-separated, header `field:type`.

Many public recommendation datasets circulate in this format; ML-100k's embedded copy is one.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.dataset import RawDataset
from tasks.errors import DataFormatError, TaskFileError
from tasks.sources.common import utf8_problem
from tasks.spec import DatasetSpec

# Our column -> candidate atomic field names, first present wins; `fields` in the task overrides.
DEFAULT_FIELDS = {
    "user": ("user_id",),
    "item": ("item_id",),
    "timestamp": ("timestamp",),
    "rating": ("rating",),
    "title": ("movie_title", "title", "name"),
    "year": ("release_year", "year"),
    "concepts": ("class", "genre", "categories", "category"),
    "text": ("description", "text"),
}
REQUIRED = {"inter": ("user", "item", "timestamp"), "item": ("item", "concepts")}


def _utf8_text(path: Path) -> io.StringIO:
    """The file decoded strictly as UTF-8, read as `open` reads text (universal newlines): a byte
    that is not UTF-8 is a one-line error naming the file, the line and the byte offset."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read ({exc.strerror})") from None
    problem = utf8_problem(path, data)
    if problem:
        raise DataFormatError(problem)
    return io.StringIO(data.decode("utf-8"), newline=None)


def _read_table(path: Path, wanted: dict[str, tuple[str, ...]], required: tuple[str, ...]):
    """Read an atomic file into {our column: list of raw strings}, checking every row."""
    with _utf8_text(path) as fh:
        header = fh.readline().rstrip("\n").split("\t")
        names = [h.split(":", 1)[0] for h in header]
        index: dict[str, int] = {}
        for ours, candidates in wanted.items():
            for cand in candidates:
                if cand in names:
                    index[ours] = names.index(cand)
                    break
        missing = [c for c in required if c not in index]
        if missing:
            asked = [wanted[c][0] if len(wanted[c]) == 1 else "|".join(wanted[c]) for c in missing]
            raise DataFormatError(f"{path}:1: missing column(s) {asked} in header {header}")
        columns: dict[str, list] = {c: [] for c in index}
        columns["_line"] = []  # each row's line number in the file
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != len(header):
                raise DataFormatError(
                    f"{path}:{lineno}: expected {len(header)} tab-separated fields, "
                    f"got {len(parts)}"
                )
            for c, i in index.items():
                columns[c].append(parts[i])
            columns["_line"].append(lineno)
    return columns


def _numbers(table: dict, column: str, path: Path, dtype: type) -> np.ndarray:
    """The column as `dtype`; a value that is not a finite number (`nan`, `inf` included) is a
    DataFormatError naming its line."""
    values = table[column]
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except ValueError:
            out[i] = math.nan
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(
            f"{path}:{table['_line'][i]}: column '{column}' is not a finite number: {values[i]!r}"
        )
    return out.astype(dtype)


def _check_items(meta: dict, inter: dict, item_path: Path, inter_path: Path) -> None:
    """An item listed twice, or an interaction with an item the item file does not list (it would
    have no concept labels, so a forget item could count as retain), is an error, never silent."""
    first: dict[str, int] = {}
    for lineno, item in zip(meta["_line"], meta["item"], strict=True):
        if item in first:
            raise DataFormatError(
                f"{item_path}:{lineno}: item {item!r} listed twice (first on line {first[item]})"
            )
        first[item] = lineno
    for lineno, item in zip(inter["_line"], inter["item"], strict=True):
        if item not in first:
            raise DataFormatError(
                f"{inter_path}:{lineno}: item {item!r} is not in {item_path.name} (no metadata "
                "row: its concept labels are unknown)"
            )


def read_atomic(inter_path: Path, item_path: Path, name: str, fields: dict[str, str]) -> RawDataset:
    wanted = {k: (fields[k],) if k in fields else v for k, v in DEFAULT_FIELDS.items()}
    inter = _read_table(
        inter_path,
        {k: wanted[k] for k in ("user", "item", "timestamp", "rating")},
        REQUIRED["inter"],
    )
    timestamps = _numbers(inter, "timestamp", inter_path, np.int64)
    ratings = (
        _numbers(inter, "rating", inter_path, np.float64)
        if "rating" in inter
        else np.full(len(timestamps), np.nan)
    )
    interactions = pd.DataFrame(
        {"user": inter["user"], "item": inter["item"], "timestamp": timestamps, "rating": ratings}
    )
    meta = _read_table(
        item_path,
        {k: wanted[k] for k in ("item", "title", "year", "concepts", "text")},
        REQUIRED["item"],
    )
    _check_items(meta, inter, item_path, inter_path)
    n = len(meta["item"])
    items = pd.DataFrame(
        {
            "item": meta["item"],
            "title": meta.get("title", [""] * n),
            "year": meta.get("year", [""] * n),
            "text": meta.get("text", [""] * n),
            "concepts": [tuple(s.split()) for s in meta["concepts"]],
        }
    )
    return RawDataset(name=name, interactions=interactions, items=items)


class AtomicSource:
    """A user's folder of atomic files: `path` = the folder; files are its single .inter/.item."""

    name = "atomic"

    def check(self, ds: DatasetSpec, file: str) -> None:
        if not ds.path:
            raise TaskFileError(
                f"{file}: missing required field 'dataset.path' for source 'atomic'"
            )
        unknown = sorted(set(ds.fields) - set(DEFAULT_FIELDS))
        if unknown:
            raise TaskFileError(
                f"{file}: unknown field 'dataset.fields.{unknown[0]}' "
                f"(known: {sorted(DEFAULT_FIELDS)})"
            )

    def fetch(self, ds: DatasetSpec) -> dict[str, Path]:
        folder = Path(ds.path).expanduser()
        found = {}
        for ext in ("inter", "item"):
            matches = sorted(folder.glob(f"*.{ext}"))
            if len(matches) != 1:
                raise DataFormatError(
                    f"{folder}: expected exactly one *.{ext} file, found {len(matches)}"
                )
            found[matches[0].name] = matches[0]
        return found

    def read(self, files: dict[str, Path], ds: DatasetSpec) -> RawDataset:
        inter = next(p for n, p in files.items() if n.endswith(".inter"))
        item = next(p for n, p in files.items() if n.endswith(".item"))
        return read_atomic(inter, item, inter.stem, ds.fields)
