"""A cell's unlearned model as submission artifacts (DESIGN §6): `seed<N>.artifacts/` beside the
result JSON, holding the weights (safetensors), the served SID table and the decode-time ban
(JSON), and a manifest with every file's size and SHA-256. `tracer-bench verify` loads them with
checks only — sizes and hashes first, tensor names and shapes read from the safetensors header
before any data, SIDs unique and in range — so no submitter code runs and nothing is unpickled.
This module is the layout and the manifest check (torch-free, for `validate`); the model's own
files are made and loaded in `benchmark.results.unlearned_model`.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.util.atomic import folder_atomic
from benchmark.util.hashing import file_digest
from tasks.errors import BenchError
from tasks.untrusted import read_json_object

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


MANIFEST_BYTES = 2**16


def check_files(folder: Path) -> str:
    """The artifacts' manifest and every file's size and hash (no loading): the manifest's own
    sha256, for the result to record. Every file is a regular file in the folder (no symbolic
    link). A one-line BenchError naming the file otherwise. Torch-free."""
    if folder.is_symlink():
        raise BenchError(f"{folder}: a symbolic link (refused: artifacts are a folder of files)")
    if not (folder / "manifest.json").is_file():
        raise BenchError(f"{folder}: no artifacts (manifest.json missing)")
    manifest = read_json_object(folder / "manifest.json", MANIFEST_BYTES)
    if manifest.get("format") != ARTIFACT_FORMAT or type(manifest.get("format")) is not int:
        raise BenchError(f"{folder / 'manifest.json'}: not an artifact manifest of format 1")
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != set(FILES):
        raise BenchError(f"{folder / 'manifest.json'}: must list exactly {list(FILES)}")
    for name in FILES:
        meta = files[name]
        path = folder / name  # a name of FILES: the manifest names no other
        if path.is_symlink():
            raise BenchError(f"{path}: a symbolic link (refused: artifacts are files in their "
                             "folder)")  # fmt: skip
        if not path.is_file():
            raise BenchError(f"{path}: missing (or not a regular file)")
        if not isinstance(meta, dict) or type(meta.get("bytes")) is not int:
            raise BenchError(f"{folder / 'manifest.json'}: {name} needs an integer 'bytes'")
        size = path.stat().st_size
        if size > MAX_BYTES or size != meta["bytes"]:
            raise BenchError(f"{path}: {size} bytes, the manifest says {meta['bytes']}")
        if file_digest(path) != meta.get("sha256"):
            raise BenchError(f"{path}: sha256 differs from the manifest's")
    return file_digest(folder / "manifest.json")
