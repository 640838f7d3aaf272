"""The JSON format generative-recommendation repositories share (LC-Rec, LETTER, MiniOneRec, ...):
`<prefix>.inter.json` maps a user to the chronological list of item indices (no timestamps, no
ratings: the list order is time), `<prefix>.item.json` maps an item index to `title`,
`description`, `brand` and `categories` (a JSON list of names, or one string path joined by ", ").

A path string is ambiguous where a name itself contains ", " ("Calendars, Planners & Personal
Organizers"), so an item's concept labels are every contiguous run of its path's ", "-separated
parts: each real name is one such run, so a label matches exactly the items whose path contains
that name, whichever names around it hold commas.

The folder is `dataset.path`; `$TRACER_BENCH_DATA` in it is expanded (the standard tasks say
`${TRACER_BENCH_DATA}/amazon14-beauty`, so they run wherever a user keeps the data).
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.dataset import RawDataset
from tasks.errors import BenchError, DataFormatError, TaskFileError
from tasks.sources.common import utf8_problem
from tasks.spec import DatasetSpec

DATA_ENV = "TRACER_BENCH_DATA"
TEXT_FIELDS = ("title", "brand", "description")  # strings, each optional
PATH_SEP = ", "


def file_names(ds: DatasetSpec) -> dict[str, str]:
    return {"inter": f"{ds.prefix}.inter.json", "item": f"{ds.prefix}.item.json"}


def data_folder(ds: DatasetSpec) -> Path:
    """`dataset.path` with `$TRACER_BENCH_DATA` expanded; one line saying where to put the data
    (and where it comes from: `dataset.revision`) when it is not there."""
    names = " and ".join(file_names(ds).values())
    origin = f" (from {ds.revision})" if ds.revision else ""
    if DATA_ENV in ds.path and not os.environ.get(DATA_ENV):
        sub = ds.path.replace("${" + DATA_ENV + "}", "").replace("$" + DATA_ENV, "").strip("/")
        raise BenchError(f"this task reads {names} from ${DATA_ENV}/{sub}: set {DATA_ENV} to the "
                         f"folder that holds {sub}/ and put the files there{origin}")  # fmt: skip
    folder = Path(os.path.expandvars(ds.path)).expanduser()
    missing = [n for n in file_names(ds).values() if not (folder / n).is_file()]
    if missing:
        raise BenchError(f"{folder / missing[0]}: file not found; put {names} in {folder}"
                         f"{origin}")  # fmt: skip
    return folder


def _line_of(text: str, key: str) -> int:
    """The line of `"key":` in a JSON text (error path only; 0 when not found)."""
    match = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else 0


def _load_json(path: Path) -> tuple[dict, str]:
    """The top-level object of a strict JSON file (no NaN / Infinity, no repeated key) and its
    text; DataFormatError naming the file and line otherwise."""
    data = path.read_bytes()
    if not data.strip():
        raise DataFormatError(f"{path}: empty file")
    problem = utf8_problem(path, data)
    if problem:
        raise DataFormatError(problem)
    text = data.decode("utf-8")

    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not a JSON number")

    def unique(pairs: list[tuple[str, object]]) -> dict:
        out = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"key {key!r} appears twice in one object")
            out[key] = value
        return out

    try:
        doc = json.loads(text, parse_constant=no_constant, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except ValueError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not doc:
        raise DataFormatError(f"{path}: expected a non-empty JSON object at the top level")
    return doc, text


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def path_labels(categories: str) -> tuple[str, ...]:
    """Every contiguous run of a ", "-joined category path (see the module's note)."""
    parts = [p.strip() for p in categories.split(PATH_SEP) if p.strip()]
    n = len(parts)
    return tuple(sorted({PATH_SEP.join(parts[i:j]) for i in range(n) for j in range(i + 1, n + 1)}))


class _BadItem(ValueError):
    """An item's metadata of the wrong shape (its line is looked up by the caller)."""


def _item_row(key: str, meta: object) -> dict:
    if not (key.isdigit() and str(int(key)) == key):
        raise _BadItem(f"item key {key!r} is not an item index")
    if not isinstance(meta, dict):
        raise _BadItem(f"item {key!r} must be a JSON object")
    for name in TEXT_FIELDS:
        if not isinstance(meta.get(name, ""), str):
            raise _BadItem(f"item {key!r}: '{name}' must be a string")
    cats = meta.get("categories", [])
    if isinstance(cats, str):
        labels, path = path_labels(cats), " > ".join(p for p in cats.split(PATH_SEP) if p)
    elif isinstance(cats, list) and all(isinstance(c, str) for c in cats):
        labels, path = tuple(dict.fromkeys(c.strip() for c in cats if c.strip())), " > ".join(cats)
    else:
        raise _BadItem(f"item {key!r}: 'categories' must be a list of strings or one string, got "
                       f"{type(cats).__name__}")  # fmt: skip
    title, brand, description = (html.unescape(meta.get(n, "")).strip() for n in TEXT_FIELDS)
    parts = (f"Brand: {brand}" if brand else "", f"Categories: {path}" if path else "", description)
    text = ". ".join(p for p in parts if p)
    return {"item": key, "title": title, "year": "", "text": text, "concepts": labels}


def read_items(path: Path) -> pd.DataFrame:
    doc, text = _load_json(path)
    rows = []
    for key, meta in doc.items():
        try:
            rows.append(_item_row(key, meta))
        except _BadItem as exc:
            raise DataFormatError(f"{path}:{_line_of(text, key)}: {exc}") from None
    return pd.DataFrame(rows)


def read_sequences(path: Path, items: set[str], item_file: Path) -> pd.DataFrame:
    """One row per interaction; `timestamp` is the position in the user's list (the list order
    is time: ties cannot occur)."""
    doc, text = _load_json(path)
    users, seq_items, positions = [], [], []
    for user, seq in doc.items():
        if not isinstance(seq, list) or not all(_is_index(i) for i in seq):
            raise DataFormatError(f"{path}:{_line_of(text, user)}: user {user!r}: the sequence "
                                  "must be a list of item indices (integers >= 0)")  # fmt: skip
        unknown = next((i for i in seq if str(i) not in items), None)
        if unknown is not None:
            raise DataFormatError(f"{path}:{_line_of(text, user)}: user {user!r}: item {unknown} "
                                  f"is not in {item_file.name} (its concept labels are unknown)")
        users += [user] * len(seq)
        seq_items += [str(i) for i in seq]
        positions.append(np.arange(len(seq), dtype=np.int64))
    return pd.DataFrame({
        "user": users, "item": seq_items,
        "timestamp": np.concatenate(positions) if positions else np.zeros(0, np.int64),
        "rating": np.full(len(users), np.nan),
    })  # fmt: skip


class GenRecJSONSource:
    """A folder (`dataset.path`) of `<prefix>.inter.json` and `<prefix>.item.json`."""

    name = "genrec-json"

    def check(self, ds: DatasetSpec, file: str) -> None:
        for field in ("path", "prefix"):
            if not getattr(ds, field):
                raise TaskFileError(f"{file}: missing required field 'dataset.{field}' for source "
                                    "'genrec-json'")  # fmt: skip
        if "/" in ds.prefix or "\\" in ds.prefix or ds.prefix.startswith("."):
            raise TaskFileError(f"{file}: field 'dataset.prefix' must be a plain file name prefix")
        names = sorted(file_names(ds).values())
        for name in ds.checksums:
            if name not in names:
                raise TaskFileError(f"{file}: field 'dataset.checksums.{name}' names an unknown "
                                    f"file (known: {names})")  # fmt: skip

    def fetch(self, ds: DatasetSpec) -> dict[str, Path]:
        folder = data_folder(ds)
        return {n: folder / n for n in file_names(ds).values()}  # checksums: tasks.prepare

    def read(self, files: dict[str, Path], ds: DatasetSpec) -> RawDataset:
        names = file_names(ds)
        item_file = files[names["item"]]
        items = read_items(item_file)
        interactions = read_sequences(files[names["inter"]], set(items["item"]), item_file)
        return RawDataset(f"genrec-json-{ds.prefix}", interactions, items)
