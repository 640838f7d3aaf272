"""A cell's unlearned model as submission artifacts (DESIGN §6): `seed<N>.artifacts/` beside the
result JSON, holding the weights (safetensors), the served SID table and the decode-time ban
(JSON), and a manifest with every file's size and SHA-256. `tracer-bench verify` loads them with
checks only — sizes and hashes first, tensor names and shapes read from the safetensors header
before any data, SIDs unique and in range — so no submitter code runs and nothing is unpickled.
This module is the layout and the manifest check (torch-free, for `validate`); the model's own
files are made and loaded in `benchmark.results.unlearned_model`.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.util.atomic import folder_atomic
from benchmark.util.hashing import file_digest
from tasks.errors import BenchError

ARTIFACT_FORMAT = 1
FILES = ("model.safetensors", "model.json", "sids.json", "ban.json")
MAX_BYTES = 512 * 2**20  # a larger file is refused before it is read


def artifacts_dir(result_json: Path) -> Path:
    return result_json.with_name(result_json.name.removesuffix(".json") + ".artifacts")


def write_artifacts(folder: Path, files: dict[str, bytes]) -> None:
    """Write artifact files into a temporary sibling folder, then rename it into place."""
    with folder_atomic(folder) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)


def read_json(path: Path) -> object:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BenchError(f"{path}: not valid JSON ({exc})") from None


def check_files(folder: Path) -> str:
    """The artifacts' manifest and every file's size and hash (no loading): the manifest's own
    sha256, for the result to record. A BenchError naming the file otherwise. Torch-free."""
    if not (folder / "manifest.json").is_file():
        raise BenchError(f"{folder}: no artifacts (manifest.json missing)")
    manifest = read_json(folder / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != ARTIFACT_FORMAT:
        raise BenchError(f"{folder / 'manifest.json'}: not an artifact manifest of format 1")
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != set(FILES):
        raise BenchError(f"{folder / 'manifest.json'}: must list exactly {list(FILES)}")
    for name, meta in files.items():
        path = folder / name
        if not path.is_file():
            raise BenchError(f"{path}: missing")
        size = path.stat().st_size
        if size > MAX_BYTES or not isinstance(meta, dict) or size != meta.get("bytes"):
            raise BenchError(f"{path}: {size} bytes, the manifest says {meta.get('bytes')}")
        if file_digest(path) != meta.get("sha256"):
            raise BenchError(f"{path}: sha256 differs from the manifest's")
    return file_digest(folder / "manifest.json")
