"""Task files and their data as hostile input (DESIGN §6): a name or version that would name a
path, a concept that leaves a side of the evaluation empty, a data file nested 10,000 deep. Each
is one line on stderr (after the harness's progress lines where data was read), exit status 2, no
traceback, and nothing written outside the cache root and the test's own folder (nothing cached
at all)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import toy_rows, toy_task_file, write_atomic

from benchmark.app.cli import main
from tasks.errors import BenchError
from tasks.sources.common import cache_path, cache_root

PROGRESS = "[tracer-bench] "  # progress lines the harness prints before reading data


def files_under(root: Path, skip: Path) -> set[Path]:
    """Every path below `root`, except those below `skip`."""
    return {p for p in root.rglob("*") if not p.is_relative_to(skip)}


@pytest.fixture
def outside(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """Asserts that the test wrote nothing outside its own folder: the session's temporary
    folder, the cache included, holds the same paths afterwards."""
    base = tmp_path_factory.getbasetemp()
    before = files_under(base, tmp_path)
    yield
    assert files_under(base, tmp_path) == before


def refused(capsys: pytest.CaptureFixture, *argv: str, progress: bool = False) -> str:
    """Runs the CLI in-process; asserts exit 2, no traceback and stderr of one error line (after
    progress lines, where `progress`: data was read); returns that line."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    if progress:
        lines = [line for line in lines if not line.startswith(PROGRESS)]
    assert len(lines) == 1 and lines[0].startswith("tracer-bench: error: "), err
    return lines[0]


# ---- names and versions: a task's identity is a folder name in the cache ----------------------


def test_a_version_climbing_out_of_the_cache_is_refused(tmp_path, capsys, outside):
    data = write_atomic(tmp_path / "d", *toy_rows())
    target = tmp_path.parent / f"{tmp_path.name}-escaped"  # outside the cache and tmp_path
    # the cache folder was cache/tasks/<name>@<version>/<key>: "toy-scary@.." is a folder, the
    # next ".." leaves it, and the rest leads from cache/tasks to the target
    version = "../../" + os.path.relpath(target, cache_root() / "tasks")
    task = toy_task_file(tmp_path, data, version=json.dumps(version))
    line = refused(capsys, "tasks", "prepare", str(task))
    assert str(task) in line and "field 'version'" in line and "MAJOR.MINOR" in line
    assert not target.exists()


@pytest.mark.parametrize("version", ["", "2", "2.0.1", "v2.0", "2.0/..", "2.0\n", "٢.٠", "1" * 9])
def test_a_version_is_major_dot_minor(tmp_path, capsys, outside, version):
    data = write_atomic(tmp_path / "d", *toy_rows())
    task = toy_task_file(tmp_path, data, version=json.dumps(version))
    assert "field 'version'" in refused(capsys, "tasks", "prepare", str(task))


@pytest.mark.parametrize(
    "name", ["", "..", ".hidden", "-x", "a/b", "a\\b", "a b", "naïve", "toy\nx", "a" * 65]
)
def test_a_name_is_a_short_slug(tmp_path, capsys, outside, name):
    data = write_atomic(tmp_path / "d", *toy_rows())
    task = toy_task_file(tmp_path, data, name=json.dumps(name))
    line = refused(capsys, "tasks", "prepare", str(task))
    assert str(task) in line and "field 'name'" in line


def test_validate_refuses_a_bad_task_file(tmp_path, capsys, outside):
    data = write_atomic(tmp_path / "d", *toy_rows())
    task = toy_task_file(tmp_path, data, version='"../../x"')
    results = tmp_path / "results" / "toy-scary@1.0" / "filter"
    results.mkdir(parents=True)
    (results / "seed0.json").write_text("{}")
    line = refused(capsys, "validate", "--task-file", str(task), str(tmp_path / "results"))
    assert str(task) in line and "field 'version'" in line


@pytest.mark.parametrize(
    "text, needle",
    [
        (b"k_values = " + b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
        (b"x = " + b"{y = " * 10_000 + b"1" + b"}" * 10_000, "nested too deeply"),
        (b"seed = " + b"9" * 5000, "too many digits"),
        (b'name = "caf\xe9"', "not UTF-8"),
        (b"# " + b"x" * 2**20, "bytes, more than"),
    ],
    ids=["array-10000-deep", "table-10000-deep", "huge-integer", "latin-1", "huge-file"],
)
def test_a_task_file_that_is_not_a_small_toml_text(tmp_path, capsys, outside, text, needle):
    task = tmp_path / "bad.toml"
    task.write_bytes(text)
    line = refused(capsys, "tasks", "prepare", str(task))
    assert str(task) in line and needle in line


# ---- every cache path is made of checked parts and stays in the cache root --------------------


@pytest.mark.parametrize("part", ["", ".", "..", "a/b", "a\\b", "/etc", "a\nb", "a\0b"])
def test_cache_path_refuses_a_part_that_is_not_one_plain_name(part):
    with pytest.raises(BenchError, match="must be one plain file or folder name") as exc:
        cache_path("tasks", part)
    assert "\n" not in str(exc.value)


def test_cache_path_refuses_a_symbolic_link_out_of_the_cache(tmp_path):
    link = cache_root() / f"link-{tmp_path.name}"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(tmp_path, target_is_directory=True)
    try:
        with pytest.raises(BenchError, match="outside the cache root"):
            cache_path(link.name, "x")
    finally:
        link.unlink()
    assert cache_path("tasks", "toy@1.0", "0123abcd") == cache_root() / "tasks/toy@1.0/0123abcd"


# ---- a concept whose forget or retain side is too small to evaluate ---------------------------


def _every_item_in_the_concept() -> tuple[list[str], list[str]]:
    inter, items = toy_rows()
    return inter, [row.replace("\tComedy", "\tScary Comedy") for row in items]


def _retain_items_only_in_training() -> tuple[list[str], list[str]]:
    """Each user: a Scary item, a Comedy item (a training target), then Scary items only; the
    validation and test targets are all Scary."""
    inter = [
        f"{u}\t{item}\t4\t{1000 + 10 * k}"
        for u in range(1, 9)
        for k, item in enumerate([2, 1, 4, 6, 8, 10, 12])
    ]
    items = [f"{i}\tMovie {i}\t1990\t{'Scary' if i % 2 == 0 else 'Comedy'}" for i in range(1, 13)]
    return inter, items


@pytest.mark.parametrize(
    "rows, needles",
    [
        (_every_item_in_the_concept, ["covers 10 of 10 items", "0 retain-test targets",
                                      "0 retain training examples (D_r)", "needs >= 1"]),
        (_retain_items_only_in_training, ["0 retain-test targets", "retained utility",
                                          "0 retain-validation users"]),
    ],
)  # fmt: skip
def test_a_concept_leaving_the_retain_side_too_small_is_not_cached(
    tmp_path, capsys, outside, rows, needles
):
    data = write_atomic(tmp_path / "d", *rows())
    line = refused(capsys, "tasks", "prepare", str(toy_task_file(tmp_path, data)), progress=True)
    assert "toy-scary@1.0" in line and "cannot be evaluated" in line
    for needle in needles:
        assert needle in line, (needle, line)
    assert "forget" not in line  # the forget side is large enough


# ---- data files nested 10,000 deep -------------------------------------------------------------


def test_a_genrec_json_file_nested_10000_deep(tmp_path, capsys, outside):
    data = tmp_path / "d"
    data.mkdir()
    deep = '{"0": ' + "[" * 10_000 + "]" * 10_000 + "}"
    (data / "Office.inter.json").write_text(deep)
    item = {str(i): {"title": f"Thing {i}", "categories": ["Ink"]} for i in range(3)}
    (data / "Office.item.json").write_text(json.dumps(item))
    task = tmp_path / "task.toml"
    task.write_text(
        f'name = "toy-office"\nversion = "1.0"\n[dataset]\nsource = "genrec-json"\n'
        f'path = "{data}"\nprefix = "Office"\n[concept]\nlabel = "Ink"\n'
    )
    line = refused(capsys, "tasks", "prepare", str(task), progress=True)
    assert str(data / "Office.inter.json") in line and "nested deeper than" in line


def test_an_amazon_jsonl_line_nested_10000_deep(tmp_path):
    from tasks.errors import DataFormatError
    from tasks.sources.amazon import _scan_jsonl

    path = tmp_path / "X.jsonl"
    path.write_text('{"user_id": "U1"}\n{"a": ' + "[" * 10_000 + "]" * 10_000 + "}\n")
    with pytest.raises(DataFormatError, match=r"X\.jsonl:2: JSON nested deeper than"):
        _scan_jsonl(path, None)
