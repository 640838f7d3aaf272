"""Crafted submissions against `tracer-bench verify` (DESIGN §6, hostile input; issue 42): every
number that decides an allocation is checked against the task and the base recipe before
anything is allocated, every file read lies in the artifacts folder and its manifest, every file
goes through the one reader of untrusted JSON, and a result must have been evaluated with its
task's protocol. Each crafted submission runs `verify` in a child process and must end in exit
2 with one line on stderr naming the file, no traceback, nothing written to --out, a small peak
memory, and no base model or oracle built (the checks come before them)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import rehash_manifest

from benchmark.recommender.sid import SemanticIds
from benchmark.results.artifacts import artifacts_dir
from benchmark.results.keys import create_key
from benchmark.results.record import result_path
from tasks.errors import BenchError

PEAK_RSS_MB = 500
TIMEOUT_S = 120


def _tracer_result(root: Path) -> Path:
    return result_path(root, "toy-scary", "tracer", 0)


@pytest.fixture
def crafted(submission, tmp_path):
    """A copy of the submission to tamper with, a cache holding only the prepared task (so
    any model built would show) and a board key."""
    out, task_file, cache = submission
    root = tmp_path / "submission"
    shutil.copytree(out, root)
    mine = tmp_path / "cache"
    shutil.copytree(cache / "tasks", mine / "tasks")
    key = tmp_path / "config" / "board-key.pem"
    create_key(key)
    return root, task_file, mine, key


# The child's peak is read by a small parent of its own: a child forked from this test process
# would start its count from this process's size.
PEAK_OF_CHILD = """import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_verify(crafted, tmp_path: Path) -> tuple[int, str, float]:
    """`tracer-bench verify` on the crafted tracer result in a child process: (exit status,
    stderr, peak RSS of the child in MB)."""
    root, task_file, cache, key = crafted
    peak = tmp_path / "peak-kib.txt"
    argv = [sys.executable, "-c", PEAK_OF_CHILD, str(peak),
            sys.executable, "-m", "benchmark.app.cli", "verify", str(_tracer_result(root)),
            "--out", str(tmp_path / "out"), "--task-file", str(task_file),
            "--key", str(key)]  # fmt: skip
    env = {**os.environ, "TRACER_BENCH_CACHE": str(cache)}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        _, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the wrapper's session: it and verify
        proc.communicate()
        pytest.fail(f"verify ran past {TIMEOUT_S} s")
    return proc.returncode, err, int(peak.read_text()) / 1024  # ru_maxrss: KiB on Linux


def assert_refused(crafted, tmp_path: Path, *needles: str) -> str:
    """Exit 2, exactly one stderr line holding every needle, no traceback, nothing written, a
    small peak, and no model trained. Returns the line."""
    code, err, peak_mb = run_verify(crafted, tmp_path)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    assert lines[0].startswith("tracer-bench: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not (tmp_path / "out").exists()
    assert peak_mb < PEAK_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
    cache = crafted[2]
    assert sorted(p.name for p in cache.iterdir()) == ["tasks"], "a model was built"
    return lines[0]


def _artifacts(crafted) -> Path:
    return artifacts_dir(_tracer_result(crafted[0]))


def _edit(path: Path, change: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


# ---- limits before allocation ----


def test_a_huge_d_model_is_refused_before_any_allocation(crafted, tmp_path):
    model_json = _artifacts(crafted) / "model.json"
    _edit(model_json, lambda cfg: cfg.update(d_model=4096))
    rehash_manifest(_artifacts(crafted))  # a careful tamperer rewrites the manifest too
    assert_refused(crafted, tmp_path, str(model_json), "d_model is 4096")


@pytest.mark.parametrize(
    "file, size, needle",
    [
        ("model.json", 10**10, "field 'sizes' must list 1 to 16 codebook sizes in"),
        ("model.json", 10**9, "level 0 has 1000000000 codes, the base recipe allows 4 to 8"),
        ("sids.json", 10**10, "level 0 has 10000000000 codes, at most 7 allowed"),
    ],
)
def test_huge_codebooks_are_refused_before_any_allocation(crafted, tmp_path, file, size, needle):
    path = _artifacts(crafted) / file
    _edit(path, lambda doc: doc.update(sizes=[size] * len(doc["sizes"])))
    rehash_manifest(_artifacts(crafted))
    assert_refused(crafted, tmp_path, str(path), needle)


@pytest.mark.parametrize("copies, needle", [(2, "24 items, the task has 12"),
                                            (1000, "bytes, more than the")])  # fmt: skip
def test_a_sid_table_of_another_shape_is_refused(crafted, tmp_path, copies, needle):
    """More rows than the task's items; far more: refused by its size, before it is parsed."""
    path = _artifacts(crafted) / "sids.json"
    _edit(path, lambda doc: doc.update(codes=doc["codes"] * copies))
    rehash_manifest(_artifacts(crafted))
    assert_refused(crafted, tmp_path, str(path), needle)


# ---- paths ----


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_a_centroid_file_outside_the_artifacts_is_never_read(crafted, tmp_path, where):
    """Whether the named file exists or not, the answer is the same line: no oracle on the
    maintainer's files."""
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(b"the maintainer's file")
    folder = _artifacts(crafted)
    lines = []
    for target in (secret, tmp_path / "absent.safetensors"):
        name = str(target) if where == "absolute" else os.path.relpath(target, folder)
        digest = hashlib.sha256(b"the maintainer's file").hexdigest()
        _edit(folder / "sids.json", lambda doc, n=name, d=digest: doc.update(
            centroids={"file": n, "sha256": d}))  # fmt: skip
        rehash_manifest(folder)
        lines.append(assert_refused(crafted, tmp_path, str(folder / "sids.json"),
                                    "names a centroid file"))  # fmt: skip
    assert lines[0] == lines[1]


@pytest.mark.parametrize("name", ["../secret.safetensors", "/etc/passwd"])
def test_a_sid_table_never_leads_its_reader_outside_its_folder(submission, tmp_path, name):
    folder = tmp_path / "table"
    shutil.copytree(artifacts_dir(_tracer_result(submission[0])), folder)
    (tmp_path / "secret.safetensors").write_bytes(b"x")
    _edit(folder / "sids.json", lambda doc: doc.update(centroids={"file": name, "sha256": "0"}))
    with pytest.raises(BenchError, match="sids.json: centroids: .* (leaves|is not a file name)"):
        SemanticIds.load(folder / "sids.json")


@pytest.mark.parametrize("file", ["model.json", "model.safetensors", "manifest.json"])
def test_a_symlinked_artifact_file_is_refused(crafted, tmp_path, file):
    path = _artifacts(crafted) / file
    outside = tmp_path / f"outside-{file}"
    shutil.copyfile(path, outside)  # the same bytes: only the link is wrong
    path.unlink()
    path.symlink_to(outside)
    assert_refused(crafted, tmp_path, str(path), "symbolic link")


# ---- one reader, typed fields ----


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"d_model": "32"}, "field 'd_model' must be int, got str"),
        ({"n_heads": True}, "field 'n_heads' must be int, got bool"),
        ({"dropout": "0"}, "field 'dropout' must be float, got str"),
        ({"sizes": ["7", 4, 2]}, "field 'sizes[0]' must be int, got str"),
        ({"surprise": 1}, "unknown field 'surprise'"),
    ],
)
def test_a_mistyped_model_config_is_one_line(crafted, tmp_path, change, needle):
    path = _artifacts(crafted) / "model.json"
    _edit(path, lambda cfg: cfg.update(change))
    rehash_manifest(_artifacts(crafted))
    assert_refused(crafted, tmp_path, str(path), needle)


@pytest.mark.parametrize(
    "ban, needle",
    [
        ({"banned": [True], "applies": True}, "'banned' must list item ids"),
        ({"banned": [1.0], "applies": True}, "'banned' must list item ids"),
        ({"banned": [12], "applies": True}, "'banned' must list item ids in 0..11"),
        ({"banned": [], "applies": "yes"}, "'applies' must be true or false"),
        ({"banned": {"0": 1}, "applies": True}, "'banned' must list item ids"),
        ([0, 1], "expected a JSON object"),
    ],
)
def test_a_mistyped_ban_is_one_line(crafted, tmp_path, ban, needle):
    path = _artifacts(crafted) / "ban.json"
    path.write_text(json.dumps(ban))
    rehash_manifest(_artifacts(crafted))
    assert_refused(crafted, tmp_path, str(path), needle)


@pytest.mark.parametrize("file", ["manifest.json", "model.json", "sids.json", "ban.json"])
def test_json_nested_10000_deep_is_one_line(crafted, tmp_path, file):
    path = _artifacts(crafted) / file
    path.write_text("[" * 10_000 + "]" * 10_000)
    if file != "manifest.json":
        rehash_manifest(_artifacts(crafted))
    assert_refused(crafted, tmp_path, str(path), "nested deeper than")


def test_a_repeated_key_is_one_line(crafted, tmp_path):
    path = _artifacts(crafted) / "model.json"
    text = path.read_text()
    path.write_text(text.replace('"d_model": 32', '"d_model": 32, "d_model": 4096'))
    rehash_manifest(_artifacts(crafted))
    assert_refused(crafted, tmp_path, str(path), "'d_model' appears twice")


# ---- the evaluation protocol ----


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"beam": 1}, "evaluation.beam is 1, the task's protocol says 8"),
        ({"relearn_lr": 100}, "evaluation.relearn_lr is 100, the task's protocol says 0.001"),
    ],
)
def test_an_evaluation_other_than_the_tasks_protocol_is_refused(crafted, tmp_path, change,
                                                                needle):  # fmt: skip
    f = _tracer_result(crafted[0])
    _edit(f, lambda record: record["evaluation"].update(change))
    assert_refused(crafted, tmp_path, str(f), needle)
