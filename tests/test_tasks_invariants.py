"""Task files, caching and hashing on a small atomic dataset written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import toy_rows, toy_task_file, write_atomic

from tasks import load_task_file, prepare_task
from tasks.prepare import task_cache_dir
from tasks.sources import SOURCES


def _toy(tmp_path: Path, **overrides):
    data = write_atomic(tmp_path / "data", *toy_rows())
    return load_task_file(toy_task_file(tmp_path, data, **overrides)), data


def test_prepare_atomic_dataset(tmp_path):
    spec, _ = _toy(tmp_path)
    t = prepare_task(spec)
    assert (t.n_users, t.n_items, t.n_interactions) == (12, 10, 84)
    assert set(t.forget_items) == {i for i in range(10) if int(t.item_ids[i]) % 2 == 0}
    assert len(t.history(int(t.test_pos[0]))) == 4  # max_history


def test_hash_changes_with_any_data_change(tmp_path):
    spec, data = _toy(tmp_path)
    base = prepare_task(spec).content_hash
    inter = (data / "toy.inter").read_text().splitlines()
    user, item, rating, ts = inter[5].split("\t")
    inter[5] = "\t".join([user, item, rating, str(int(float(ts)) + 100)])  # one timestamp moves
    (data / "toy.inter").write_text("\n".join(inter) + "\n")
    moved = prepare_task(spec).content_hash
    assert moved != base
    items = (data / "toy.item").read_text().replace("Movie 3\t", "Movie Three\t")
    (data / "toy.item").write_text(items)
    assert prepare_task(spec).content_hash not in (base, moved)
    assert prepare_task(
        load_task_file(toy_task_file(tmp_path, data, label='"Comedy"'))
    ).content_hash not in (base, moved)


def test_cache_is_reused_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    spec, _ = _toy(tmp_path)
    first = prepare_task(spec)
    folder = task_cache_dir(spec, SOURCES["atomic"].fetch(spec.dataset))
    reads = []
    real_read = SOURCES["atomic"].read
    monkeypatch.setattr(SOURCES["atomic"], "read", lambda *a: reads.append(1) or real_read(*a))
    assert prepare_task(spec).content_hash == first.content_hash and reads == []
    meta = json.loads((folder / "meta.json").read_text())
    meta["content_hash"] = "0" * 64  # a cache whose hash does not match its arrays
    (folder / "meta.json").write_text(json.dumps(meta))
    assert prepare_task(spec).content_hash == first.content_hash and reads == [1]
    (folder / "arrays.npz").write_bytes(b"garbage")
    assert prepare_task(spec).content_hash == first.content_hash and reads == [1, 1]


def test_failed_cache_write_leaves_nothing(tmp_path, monkeypatch):
    spec, _ = _toy(tmp_path)
    folder = task_cache_dir(spec, SOURCES["atomic"].fetch(spec.dataset))

    def broken_savez(path, **arrays):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        prepare_task(spec)
    assert not folder.exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp left
