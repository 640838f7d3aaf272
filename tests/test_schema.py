"""The one result schema module (`benchmark.results.record`): a good record, a missing or mistyped
field, and protocol 1.x records refused with a message that says why."""

from __future__ import annotations

import json

import pytest

from benchmark.results.record import (
    BOOL,
    DICT,
    FIELDS,
    INT,
    NUM,
    SCHEMA_VERSION,
    STR,
    get_field,
    is_kind,
    schema_problems,
)

EXAMPLE = {INT: 3, NUM: 1.5, STR: "x", DICT: {}, BOOL: False}


def good_record() -> dict:
    """A minimal well-formed schema-2 record: every field of FIELDS with a value of its kind."""
    rec: dict = {}
    for name, kind in FIELDS.items():
        *parents, leaf = name.split(".")
        node = rec
        for p in parents:
            node = node.setdefault(p, {})
        node.setdefault(leaf, {} if kind == DICT else EXAMPLE[kind])
    rec["schema_version"] = SCHEMA_VERSION
    return rec


def test_good_record():
    rec = good_record()
    assert SCHEMA_VERSION == 3
    assert schema_problems(rec) == []
    assert schema_problems(json.loads(json.dumps(rec))) == []  # as read back from a file
    assert get_field(rec, "evidence.sha256") == "x"


def test_real_record_is_well_formed(tiny_results):
    from benchmark.results.record import result_files

    for f in result_files(tiny_results):
        assert schema_problems(json.loads(f.read_text())) == [], f


@pytest.mark.parametrize(
    "field", ["oracle.checkpoint_sha256", "evidence.sha256", "reference", "task.protocol", "seed"]
)
def test_missing_field(field):
    rec = good_record()
    *parents, leaf = field.split(".")
    node = rec
    for p in parents:
        node = node[p]
    del node[leaf]
    assert schema_problems(rec) == [(field, "required field missing")]


def test_missing_parent_reports_the_parent_only():
    rec = good_record()
    del rec["evidence"]
    assert schema_problems(rec) == [("evidence", "required field missing")]


@pytest.mark.parametrize(
    "field, value",
    [("seed", "0"), ("seed", True), ("reference", 1), ("evidence.rows", 1.5), ("metrics", [])],
)
def test_mistyped_field(field, value):
    rec = good_record()
    *parents, leaf = field.split(".")
    node = rec
    for p in parents:
        node = node[p]
    node[leaf] = value
    [(where, message)] = schema_problems(rec)
    assert where == field and message.startswith("must be a JSON")


def test_schema_version_1_is_refused():
    rec = good_record()
    rec["schema_version"] = 1
    [(field, message)] = schema_problems(rec)
    assert field == "schema_version"
    assert "protocol 1.x" in message and "re-run" in message


def test_protocol_2_0_results_are_refused_naming_the_missing_column():
    rec = good_record()
    rec["schema_version"] = 2
    [(field, message)] = schema_problems(rec)
    assert field == "schema_version"
    assert "protocol 2.0" in message and "banned_rank" in message and "re-run" in message


def test_unknown_and_missing_versions():
    rec = good_record()
    rec["schema_version"] = SCHEMA_VERSION + 1
    [(field, message)] = schema_problems(rec)
    assert field == "schema_version" and "unknown schema version" in message
    del rec["schema_version"]
    assert schema_problems(rec) == [("schema_version", "required field missing")]
    assert schema_problems([rec]) == [("", "not a JSON object")]


def test_is_kind():
    assert is_kind(1, INT) and not is_kind(True, INT) and not is_kind(1.0, INT)
    assert is_kind(1, NUM) and is_kind(1.0, NUM) and not is_kind(False, NUM)
    assert is_kind(True, BOOL) and not is_kind(1, BOOL)
