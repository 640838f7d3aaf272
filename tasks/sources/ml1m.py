"""MovieLens-1M from the official GroupLens archive (`::`-separated, latin-1 `.dat` files)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.dataset import RawDataset
from tasks.errors import BenchError, DataFormatError, TaskFileError
from tasks.sources.common import cache_path, download, verify_checksums
from tasks.spec import DatasetSpec

URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
URL_ENV = "TRACER_BENCH_ML1M_URL"
ARCHIVE = "ml-1m.zip"
FILES = ("ratings.dat", "movies.dat")
TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def _lines(text: str) -> list[str]:
    # Not str.splitlines(): it also splits at latin-1 control characters such as \x85.
    return [line.rstrip("\r") for line in text.split("\n")]


def _split_rows(path: Path, n_fields: int, names: str) -> list[list[str]]:
    """The `::`-separated fields of each non-empty line, one list per field."""
    try:
        text = path.read_text(encoding="latin-1")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: file not found") from None
    columns: list[list[str]] = [[] for _ in range(n_fields)]
    for lineno, line in enumerate(_lines(text), start=1):
        if not line:
            continue
        parts = line.split("::")
        if len(parts) != n_fields:
            raise DataFormatError(
                f"{path}:{lineno}: expected {n_fields} '::'-separated fields ({names}), "
                f"got {len(parts)}"
            )
        for column, value in zip(columns, parts, strict=True):
            column.append(value)
    return columns


def _numbers(values: list[str], path: Path, column: str, integer: bool = True) -> np.ndarray:
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(numbers)
    if integer:
        bad |= numbers != np.round(numbers)
    if bad.any():
        first = int(np.argmax(bad))
        text = path.read_text(encoding="latin-1")  # error path only: find the line
        lineno = [i for i, line in enumerate(_lines(text), start=1) if line][first]
        what = "an integer" if integer else "a number"
        raise DataFormatError(f"{path}:{lineno}: {column} is not {what}: {values[first]!r}")
    return numbers.astype(np.int64) if integer else numbers


def read_ratings(path: Path) -> pd.DataFrame:
    users, movies, ratings, stamps = _split_rows(path, 4, "UserID::MovieID::Rating::Timestamp")
    _numbers(users, path, "UserID")
    _numbers(movies, path, "MovieID")
    return pd.DataFrame(
        {
            "user": [u.strip() for u in users],
            "item": [m.strip() for m in movies],
            "timestamp": _numbers(stamps, path, "Timestamp"),
            "rating": _numbers(ratings, path, "Rating", integer=False),
        }
    )


def read_movies(path: Path) -> pd.DataFrame:
    ids, titles, genres = _split_rows(path, 3, "MovieID::Title (Year)::Genres")
    _numbers(ids, path, "MovieID")
    split = [TITLE_YEAR.match(t) for t in titles]
    return pd.DataFrame(
        {
            "item": [i.strip() for i in ids],
            "title": [m.group(1) if m else t.strip() for m, t in zip(split, titles, strict=True)],
            "year": [m.group(2) if m else "" for m in split],
            "text": "",
            "concepts": [tuple(g for g in s.strip().split("|") if g) for s in genres],
        }
    )


def _extract(archive: Path, dest: Path) -> None:
    """Unzip into a temporary folder beside `dest`, then rename the folder holding the files."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise BenchError(f"{archive}: not a valid zip archive ({exc}); delete it") from None
        found = sorted(p.parent for p in tmp.rglob(FILES[0]))
        if not found or not all((found[0] / n).is_file() for n in FILES):
            raise DataFormatError(f"{archive}: archive lacks {list(FILES)}")
        try:
            os.replace(found[0], dest)
        except OSError as exc:
            if not all((dest / n).is_file() for n in FILES):  # else a concurrent extraction won
                raise BenchError(f"{dest}: cannot place the extracted files ({exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class ML1MSource:
    name = "ml-1m"

    def check(self, ds: DatasetSpec, file: str) -> None:
        known = (ARCHIVE, *FILES)
        for name in ds.checksums:
            if name not in known:
                raise TaskFileError(
                    f"{file}: field 'dataset.checksums.{name}' names an unknown file "
                    f"(known: {', '.join(known)})"
                )

    def fetch(self, ds: DatasetSpec) -> dict[str, Path]:
        archive = download(
            os.environ.get(URL_ENV) or URL,
            cache_path("downloads", ARCHIVE),
            expected=ds.checksums.get(ARCHIVE),
        )
        folder = cache_path("raw", "ml-1m")
        if not all((folder / n).is_file() for n in FILES):
            _extract(archive, folder)
        files = {n: folder / n for n in FILES}
        verify_checksums(files, {n: c for n, c in ds.checksums.items() if n != ARCHIVE})
        return files

    def read(self, files: dict[str, Path], ds: DatasetSpec) -> RawDataset:
        return RawDataset(
            name="ml-1m",
            interactions=read_ratings(files["ratings.dat"]),
            items=read_movies(files["movies.dat"]),
        )
