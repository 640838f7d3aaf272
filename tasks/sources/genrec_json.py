"""The JSON format generative-recommendation repositories share (LC-Rec, LETTER, MiniOneRec, ...):
`<prefix>.inter.json` maps a user to the chronological list of item indices (no timestamps, no
ratings: the list order is time), `<prefix>.item.json` maps an item index to `title`,
`description`, `brand` and `categories` (a JSON list of node names, or one string path).

A string path joins its nodes with `[dataset] category_separator`; by default it is detected from
the item file: "," when some path has a comma with no space after it (the Amazon 2018 exports:
"Industrial & Scientific,Additive Manufacturing Products,3D Printing Supplies", where a ", "
belongs to a name such as "Tapes, Adhesives & Sealants"), else ", " (the 2014 exports). A file
that mixes both — a ", "-joined path whose parts are all nodes of the ","-joined paths — is
ambiguous and refused with one line naming the option. With "," (or any separator other than
", ") the path is unambiguous: an item's labels are its nodes, and its path is kept for node-path
labels ("Skin Care > Face", `tasks.concepts`). With ", " a name may itself contain ", "
("Calendars, Planners & Personal Organizers"), so an item's labels are every contiguous run of
its path's ", "-separated parts: each real name is one such run, so a label matches exactly the
items whose path contains that name, whichever names around it hold commas.

The folder is `dataset.path`; `$TRACER_BENCH_DATA` in it is expanded (the standard tasks say
`${TRACER_BENCH_DATA}/amazon14-beauty`, so they run wherever a user keeps the data).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.dataset import RawDataset
from tasks.errors import BenchError, DataFormatError, TaskFileError
from tasks.sources.common import utf8_problem
from tasks.spec import DatasetSpec
from tasks.untrusted import parse_json, read_bytes

DATA_ENV = "TRACER_BENCH_DATA"
TEXT_FIELDS = ("title", "brand", "description")  # strings, each optional
PATH_SEP = ", "
BARE_COMMA = re.compile(r",(?! )")  # the 2018 exports' separator: a comma with no space after it


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
    """The top-level object of a strict JSON file and its text, read and parsed by the one reader
    of untrusted JSON (bounded size and depth, no NaN / Infinity, no repeated key); one-line
    BenchError naming the file (and the line where there is one) otherwise."""
    data = read_bytes(path)
    if not data.strip():
        raise DataFormatError(f"{path}: empty file")
    problem = utf8_problem(path, data)  # names the line and the byte (read_json: the offset only)
    if problem:
        raise DataFormatError(problem)
    text = data.decode("utf-8")
    doc = parse_json(text, str(path))
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


def split_path(categories: str, separator: str) -> tuple[str, ...]:
    """The nodes of a string path joined by `separator` ("," splits only at a comma with no
    space after it)."""
    parts = BARE_COMMA.split(categories) if separator == "," else categories.split(separator)
    return tuple(p.strip() for p in parts if p.strip())


def detect_separator(doc: dict, path: Path) -> str:
    """ "," when some string path has a comma with no space after it, else ", "; a one-line
    TaskFileError where the file mixes both ways (see the module's note)."""
    paths = [(k, m["categories"]) for k, m in doc.items()
             if isinstance(m, dict) and isinstance(m.get("categories"), str)]  # fmt: skip
    bare = [c for _, c in paths if BARE_COMMA.search(c)]
    if not bare:
        return PATH_SEP
    nodes = {n for c in bare for n in split_path(c, ",")}
    for key, c in paths:
        parts = c.split(PATH_SEP)
        if len(parts) > 1 and not BARE_COMMA.search(c) and all(p.strip() in nodes for p in parts):
            raise TaskFileError(
                f'{path}: cannot tell how category paths join their names: most use "," but '
                f'item {key!r} has {c[:80]!r}, whose ", "-parts are names elsewhere; set '
                '[dataset] category_separator = "," or ", " in the task file'
            )
    return ","


def _item_row(key: str, meta: object, separator: str) -> dict:
    if not (key.isdigit() and str(int(key)) == key):
        raise _BadItem(f"item key {key!r} is not an item index")
    if not isinstance(meta, dict):
        raise _BadItem(f"item {key!r} must be a JSON object")
    for name in TEXT_FIELDS:
        if not isinstance(meta.get(name, ""), str):
            raise _BadItem(f"item {key!r}: '{name}' must be a string")
    cats = meta.get("categories", [])
    if isinstance(cats, str) and separator == PATH_SEP:
        labels, nodes = path_labels(cats), None
        path = " > ".join(p for p in cats.split(PATH_SEP) if p)
    elif isinstance(cats, str):
        nodes = split_path(cats, separator)
        labels, path = tuple(dict.fromkeys(nodes)), " > ".join(nodes)
    elif isinstance(cats, list) and all(isinstance(c, str) for c in cats):
        labels, path = tuple(dict.fromkeys(c.strip() for c in cats if c.strip())), " > ".join(cats)
        nodes = tuple(c.strip() for c in cats if c.strip())
    else:
        raise _BadItem(f"item {key!r}: 'categories' must be a list of strings or one string, got "
                       f"{type(cats).__name__}")  # fmt: skip
    title, brand, description = (html.unescape(meta.get(n, "")).strip() for n in TEXT_FIELDS)
    parts = (f"Brand: {brand}" if brand else "", f"Categories: {path}" if path else "", description)
    text = ". ".join(p for p in parts if p)
    return {"item": key, "title": title, "year": "", "text": text, "concepts": labels,
            "path": nodes}  # fmt: skip


def read_items(path: Path, separator: str = "") -> pd.DataFrame:
    """One row per item; `separator`: how string category paths join their nodes ("" detects
    it)."""
    doc, text = _load_json(path)
    separator = separator or detect_separator(doc, path)
    rows = []
    for key, meta in doc.items():
        try:
            rows.append(_item_row(key, meta, separator))
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
            raise DataFormatError(
                f"{path}:{_line_of(text, user)}: user {user!r}: item {unknown} "
                f"is not in {item_file.name} (its concept labels are unknown)"
            )
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
        items = read_items(item_file, ds.category_separator)
        interactions = read_sequences(files[names["inter"]], set(items["item"]), item_file)
        return RawDataset(f"genrec-json-{ds.prefix}", interactions, items)
