"""folder_atomic: a whole folder appears at once, also when writers race for the same name."""

import threading
from pathlib import Path

import pytest

from benchmark.util.atomic import folder_atomic


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


def test_replaces_an_existing_folder_whole(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with folder_atomic(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # readers still see the old one
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert _siblings(target) == []


def test_a_writer_that_finished_first_is_replaced_by_the_one_that_finishes_last(tmp_path):
    target = tmp_path / "cache"
    with folder_atomic(target) as tmp:
        (tmp / "mine.txt").write_text("second")
        with folder_atomic(target) as other:  # the other process, finishing first
            (other / "mine.txt").write_text("first")
        assert (target / "mine.txt").read_text() == "first"
    assert (target / "mine.txt").read_text() == "second"
    assert _siblings(target) == []


def test_a_failed_block_leaves_the_old_folder_and_no_temporaries(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), folder_atomic(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("build failed")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert _siblings(target) == []


def test_many_racing_writers_all_succeed_and_one_whole_folder_remains(tmp_path):
    """The CI failure this guards: two processes prepared one task at once, one renamed its
    folder in after the other had looked, and the second rename died 'Directory not empty'."""
    target = tmp_path / "cache"
    start = threading.Barrier(8)
    errors = []

    def write(k: int) -> None:
        try:
            for round_ in range(20):
                with folder_atomic(target) as tmp:
                    for name in "abc":
                        (tmp / name).write_text(str(k))
                    if round_ == 0:
                        start.wait()  # all eight rename at the same moment at least once
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    contents = {(target / n).read_text() for n in "abc"}
    assert len(contents) == 1  # one writer's whole folder, not a mix
    assert sorted(p.name for p in target.iterdir()) == ["a", "b", "c"]
    assert _siblings(target) == []
