"""Dataset sources by name. A source checks its part of a task file, fetches (downloads and
verifies, or locates) the raw files, and reads them into the common `RawDataset` form."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tasks.dataset import RawDataset
from tasks.errors import TaskFileError
from tasks.sources.amazon import Amazon2023Source
from tasks.sources.atomic import AtomicSource
from tasks.sources.genrec_json import GenRecJSONSource
from tasks.sources.ml1m import ML1MSource
from tasks.sources.ml100k import ML100kSource
from tasks.spec import DatasetSpec


class Source(Protocol):
    name: str

    def check(self, ds: DatasetSpec, file: str) -> None: ...
    def fetch(self, ds: DatasetSpec) -> dict[str, Path]: ...
    def read(self, files: dict[str, Path], ds: DatasetSpec) -> RawDataset: ...


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (ML100kSource(), ML1MSource(), Amazon2023Source(), AtomicSource(), GenRecJSONSource())
}


def check_source(ds: DatasetSpec, file: str) -> None:
    """The task file's [dataset] against its source: a known source, and that source's rules."""
    if ds.source not in SOURCES:
        raise TaskFileError(
            f"{file}: field 'dataset.source' must be one of {sorted(SOURCES)}, got {ds.source!r}"
        )
    SOURCES[ds.source].check(ds, file)
