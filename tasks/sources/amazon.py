"""Amazon Reviews 2023 (McAuley Lab) from the Hugging Face Hub, one category at a time.

The Hub repository's loading script is rejected by current `datasets`, so the raw per-category
files are fetched with `huggingface_hub` and read with the `datasets` json/csv builders. Concepts
are the nodes of an item's category path. Timestamps stay in milliseconds, as published.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.dataset import RawDataset
from tasks.errors import BenchError, DataFormatError, TaskFileError
from tasks.sources.common import cache_path, utf8_problem, verify_checksums
from tasks.spec import DatasetSpec
from tasks.untrusted import MAX_DEPTH, nesting_depth

REPO_ID = "McAuley-Lab/Amazon-Reviews-2023"
INTERACTION_KINDS = ("", "reviews", "5core")
SCAN_LINES = 1000  # lines read up front to learn a JSONL file's columns
TEXT_CHARS = 300  # items' text: store | category path | first feature lines, cut to this length
TEXT_FEATURES = 2
SEP = " | "

# Columns a file must have, and those of them that must not be null in any row.
REVIEW_REQUIRED = ("user_id", "parent_asin", "timestamp", "rating")
META_REQUIRED = ("parent_asin", "title", "categories")
REVIEW_NOT_NULL = ("user_id", "parent_asin", "timestamp")
META_NOT_NULL = ("parent_asin",)
RATING_COLUMNS = ("user_id", "parent_asin", "rating", "timestamp")  # the 5-core CSVs
RATING_TYPES = ("string", "string", "float64", "int64")


def hub_files(ds: DatasetSpec) -> dict[str, str]:
    """Role ('interactions', 'meta') -> file name inside the Hub repository (or `ds.path`)."""
    if ds.interactions == "5core":
        inter = f"benchmark/5core/rating_only/{ds.category}.csv"
    else:
        inter = f"raw/review_categories/{ds.category}.jsonl"
    return {"interactions": inter, "meta": f"raw/meta_categories/meta_{ds.category}.jsonl"}


# ---- reading with `datasets` ------------------------------------------------------------------


def _datasets_cache() -> str:
    return str(cache_path("datasets"))


class _LoadFailed(Exception):
    pass


def _load(builder: str, path: Path, features: dict[str, Any], **options: Any) -> pa.Table:
    import datasets
    from datasets.utils import logging as datasets_logging

    # The builders log their parse errors; ours name the file and line instead.
    verbosity = datasets_logging.get_verbosity()
    datasets_logging.set_verbosity(datasets_logging.CRITICAL)
    try:
        loaded = datasets.load_dataset(
            builder,
            data_files=str(path),
            split="train",
            features=datasets.Features(features),
            cache_dir=_datasets_cache(),
            **options,
        )
    except Exception as exc:  # datasets wraps Arrow, pandas and cast errors alike
        cause = exc.__cause__ or exc
        first_line = (str(cause).splitlines() or [""])[0]
        raise _LoadFailed(f"{type(cause).__name__}: {first_line}") from exc
    finally:
        datasets_logging.set_verbosity(verbosity)
    return loaded.data.table  # memory-mapped Arrow, not loaded into RAM


def _json_line(path: Path, lineno: int, line: bytes) -> object:
    """One line of a JSONL file. Its nesting is bounded as the one reader of untrusted JSON
    bounds it (Python's parser recurses: 10,000 brackets would end in a RecursionError); unlike
    that reader, NaN and Infinity are values here, as in the Arrow read of the same file, and
    the rating check names them where they matter."""
    brackets = line.count(b"[") + line.count(b"{")
    if brackets > MAX_DEPTH and nesting_depth(line.decode("utf-8", "replace")) > MAX_DEPTH:
        raise DataFormatError(f"{path}:{lineno}: JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(line)
    except ValueError as exc:
        raise DataFormatError(f"{path}:{lineno}: not valid JSON ({exc})") from None


def _scan_jsonl(path: Path, limit: int | None) -> list[str]:
    """The sorted keys of the first `limit` rows (all if None); DataFormatError at a bad line.

    Sorted because the features built from them are part of datasets' cache key.
    """
    keys: set[str] = set()
    rows = 0
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = _json_line(path, lineno, line)
            if not isinstance(row, dict):
                raise DataFormatError(f"{path}:{lineno}: expected a JSON object per line")
            keys.update(row)
            rows += 1
            if limit is not None and rows >= limit:
                break
    return sorted(keys)


def _first_null_line(path: Path, column: str) -> int:
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = _json_line(path, lineno, line)
            if isinstance(row, dict) and row.get(column) is None:
                return lineno
    return 0


def _line_of_row(path: Path, row: int, is_csv: bool) -> int:
    """The line number of data row `row` (0-based, blank lines skipped; error path only)."""
    with path.open(newline="", encoding="utf-8") as fh:
        if is_csv:
            reader = csv.reader(fh)
            next(reader, None)
            rows = (reader.line_num for r in reader if r)
        else:
            rows = (lineno for lineno, line in enumerate(fh, start=1) if line.strip())
        return next((n for i, n in enumerate(rows) if i == row), 0)


def _finite_ratings(ratings: pa.ChunkedArray, path: Path, is_csv: bool) -> pd.Series:
    """The ratings as float64 (null: NaN, a missing rating); a rating that is there must be a
    finite number (`nan`, `inf` refused, naming the line)."""
    values = ratings.to_pandas().astype("float64")
    bad = ratings.is_valid().to_numpy(zero_copy_only=False) & ~np.isfinite(values.to_numpy())
    if bad.any():
        row = int(np.argmax(bad))
        lineno = _line_of_row(path, row, is_csv)
        where = f"{path}:{lineno}" if lineno else str(path)
        raise DataFormatError(f"{where}: column 'rating' is not a finite number: {values[row]}")
    return values


def _read_jsonl(
    path: Path,
    needed: dict[str, Any],
    required: tuple[str, ...],
    not_null: tuple[str, ...],
    known: dict[str, Any],
) -> pa.Table:
    """Read the `needed` columns of a JSONL file.

    Arrow infers a type per 10 MB chunk, so fields whose type varies across rows or chunks (meta
    `details`, `price`, ...) break inference; declaring every column avoids that. Columns we do not
    use are typed as `known` says (fast), else as `datasets.Json` (an opaque JSON string, robust but
    parsed row by row in Python). If the fast read fails, the whole file is scanned (bad line?
    columns that appear late?) and read again with every unused column as Json.
    """
    from datasets import Json

    try:
        if not path.is_file():
            raise DataFormatError(f"{path}: file not found")
        keys = _scan_jsonl(path, SCAN_LINES)
        missing = [c for c in required if c not in keys]
        if missing:
            raise DataFormatError(f"{path}: missing column '{missing[0]}' (columns: {keys})")
        try:
            table = _load("json", path, {**{k: known.get(k, Json()) for k in keys}, **needed})
        except _LoadFailed:
            keys = _scan_jsonl(path, None)
            try:
                table = _load("json", path, {**{k: Json() for k in keys}, **needed})
            except _LoadFailed as exc:
                raise DataFormatError(f"{path}: cannot be read ({exc})") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot be read ({exc})") from None
    table = table.select(list(needed))
    for column in not_null:
        if table[column].null_count:
            lineno = _first_null_line(path, column)
            where = f"{path}:{lineno}" if lineno else str(path)
            raise DataFormatError(f"{where}: column '{column}' is missing or null")
    return table


def _bad_csv_line(path: Path) -> str:
    """Locate the first row the csv builder could not take (error path only)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        index = {c: header.index(c) for c in RATING_COLUMNS}
        for row in reader:
            lineno = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                return f"{path}:{lineno}: expected {len(header)} fields, got {len(row)}"
            for column in ("rating", "timestamp"):
                value = row[index[column]]
                try:
                    number = float(value) if column == "rating" else int(value)
                except ValueError:
                    if column == "rating" and not value.strip():
                        continue  # an empty rating is a missing one
                    return f"{path}:{lineno}: column '{column}' is not a number: {value!r}"
                if not math.isfinite(number):
                    return f"{path}:{lineno}: column '{column}' is not a finite number: {value!r}"
    return ""


def _read_ratings_csv(path: Path) -> pa.Table:
    from datasets import Value

    try:
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        missing = [c for c in RATING_COLUMNS if c not in header]
        if missing:
            raise DataFormatError(f"{path}:1: missing column '{missing[0]}' (columns: {header})")
        features = {c: Value(t) for c, t in zip(RATING_COLUMNS, RATING_TYPES, strict=True)}
        try:
            table = _load("csv", path, features, usecols=list(RATING_COLUMNS))
        except _LoadFailed as exc:
            message = utf8_problem(path) or _bad_csv_line(path) or f"{path}: cannot be read ({exc})"
            raise DataFormatError(message) from None
    except FileNotFoundError:
        raise DataFormatError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DataFormatError(utf8_problem(path)) from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot be read ({exc})") from None
    for column in ("user_id", "parent_asin", "timestamp"):
        if table[column].null_count:
            raise DataFormatError(f"{path}: column '{column}' has empty values")
    if table["rating"].null_count:  # the csv reader takes "nan" for a missing value: look
        problem = _bad_csv_line(path)
        if problem:
            raise DataFormatError(problem)
    return table


def _review_types() -> dict[str, dict[str, Any]]:
    from datasets import List, Value

    image = {k: Value("string") for k in ("small_image_url", "medium_image_url", "large_image_url")}
    return {
        "needed": {
            "user_id": Value("string"),
            "parent_asin": Value("string"),
            "timestamp": Value("int64"),
            "rating": Value("float64"),
        },
        "known": {
            "title": Value("string"),
            "text": Value("string"),
            "asin": Value("string"),
            "helpful_vote": Value("int64"),
            "verified_purchase": Value("bool"),
            "images": List({**image, "attachment_type": Value("string")}),
        },
    }


def _meta_types() -> dict[str, Any]:
    from datasets import List, Value

    return {
        "parent_asin": Value("string"),
        "title": Value("string"),
        "store": Value("string"),
        "categories": List(Value("string")),
        "features": List(Value("string")),
    }


# ---- building the common form ------------------------------------------------------------------


def _item_text(meta: pa.Table) -> pa.ChunkedArray:
    """'store | category > path | feature; feature', skipping empty parts, cut to TEXT_CHARS."""
    parts = [
        meta["store"],
        pc.binary_join(meta["categories"], " > "),
        pc.binary_join(pc.list_slice(meta["features"], 0, TEXT_FEATURES), "; "),
    ]
    # Each present part becomes SEP + part, and the first SEP is cut off. (pyarrow 26's
    # binary_join_element_wise(null_handling="skip") drops rows whose parts are all null.)
    pieces = [
        pc.if_else(
            pc.fill_null(pc.not_equal(part, ""), False),
            pc.binary_join_element_wise(SEP, part, ""),
            "",
        )
        for part in parts
    ]
    joined = pc.binary_join_element_wise(*pieces, "")
    return pc.utf8_slice_codeunits(joined, len(SEP), len(SEP) + TEXT_CHARS)


def _items(meta: pa.Table) -> pd.DataFrame:
    categories = meta["categories"].to_pylist()
    items = pd.DataFrame(
        {
            "item": meta["parent_asin"].to_pandas(),
            "title": pc.fill_null(meta["title"], "").to_pandas(),
            "year": "",
            "text": _item_text(meta).to_pandas(),
            "concepts": [tuple(c for c in cs if c) if cs else () for cs in categories],
            "path": [tuple(c for c in cs if c) if cs else None for cs in categories],
        }
    )
    # reviewed items without a metadata row are left out: the task refuses them, or drops their
    # interactions with [preprocess] on_missing_item = "drop" (never silently retain)
    return items


class Amazon2023Source:
    name = "amazon-2023"

    def check(self, ds: DatasetSpec, file: str) -> None:
        if not ds.category:
            raise TaskFileError(
                f"{file}: missing required field 'dataset.category' for source 'amazon-2023' "
                "(a category file name, e.g. Health_and_Household)"
            )
        if "/" in ds.category or "\\" in ds.category or ds.category.startswith("."):
            raise TaskFileError(f"{file}: field 'dataset.category' must be a plain file name")
        if ds.interactions not in INTERACTION_KINDS:
            raise TaskFileError(
                f"{file}: field 'dataset.interactions' must be one of "
                f"{list(INTERACTION_KINDS)}, got {ds.interactions!r}"
            )
        names = sorted(hub_files(ds).values())
        for name in ds.checksums:
            if name not in names:
                raise TaskFileError(
                    f"{file}: field 'dataset.checksums.{name}' names an unknown file "
                    f"(known: {names})"
                )

    def fetch(self, ds: DatasetSpec) -> dict[str, Path]:
        names = list(hub_files(ds).values())
        if ds.path:
            files = {n: Path(ds.path).expanduser() / n for n in names}
            for path in files.values():
                if not path.is_file():
                    raise DataFormatError(f"{path}: file not found (dataset.path = {ds.path!r})")
        else:
            files = {n: self._download(n, ds.revision) for n in names}
        verify_checksums(files, ds.checksums)
        return files

    @staticmethod
    def _download(name: str, revision: str) -> Path:
        import huggingface_hub

        try:
            local = huggingface_hub.hf_hub_download(
                repo_id=REPO_ID,
                repo_type="dataset",
                filename=name,
                revision=revision or None,
                cache_dir=str(cache_path("hub")),
            )
        except Exception as exc:  # network, auth and missing-file errors of any hub client version
            where = f"{REPO_ID}/{name}" + (f"@{revision}" if revision else "")
            why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            raise BenchError(f"{where}: download failed ({why})") from None
        return Path(local)

    def read(self, files: dict[str, Path], ds: DatasetSpec) -> RawDataset:
        names = hub_files(ds)
        absent = [n for n in names.values() if n not in files]
        if absent:
            raise DataFormatError(f"amazon-2023: fetched files lack {absent}")
        inter_path, meta_path = files[names["interactions"]], files[names["meta"]]
        if ds.interactions == "5core":
            inter = _read_ratings_csv(inter_path)
        else:
            types = _review_types()
            inter = _read_jsonl(
                inter_path, types["needed"], REVIEW_REQUIRED, REVIEW_NOT_NULL, types["known"]
            )
        interactions = pd.DataFrame(
            {
                "user": inter["user_id"].to_pandas(),
                "item": inter["parent_asin"].to_pandas(),
                "timestamp": inter["timestamp"].to_pandas().astype("int64"),
                "rating": _finite_ratings(
                    inter["rating"], inter_path, is_csv=ds.interactions == "5core"
                ),
            }
        )
        meta = _read_jsonl(meta_path, _meta_types(), META_REQUIRED, META_NOT_NULL, {})
        items = _items(meta)
        repeated = items["item"].duplicated(keep=False)
        if repeated.any():
            rows = np.flatnonzero(items["item"] == items["item"][repeated].iloc[0])
            raise DataFormatError(
                f"{meta_path}: parent_asin {items['item'][rows[0]]!r} has more than one metadata "
                f"record (records {rows[0] + 1} and {rows[1] + 1})"
            )
        return RawDataset(f"amazon-2023-{ds.category}", interactions, items)
