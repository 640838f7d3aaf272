"""The genrec-json source (LC-Rec / LETTER / MiniOneRec JSON) on small files the tests write: the
shape of what it reads, concept matching on ", "-joined paths, and one line, exit 2, nothing
cached for each broken input."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import (
    INK,
    PLANNER,
    assert_one_line_error,
    items,
    run_cli,
    sequences,
    task_file,
    write_genrec,
)

from benchmark.app.published import published_rows
from tasks import get_task, prepare_task
from tasks.sources.genrec_json import path_labels


def test_reads_sequences_in_list_order_and_item_text(tmp_path):
    data = write_genrec(tmp_path / "d", sequences(), items())
    task = prepare_task(get_task(str(task_file(tmp_path, str(data)))))
    assert (task.n_users, task.n_items, task.n_interactions) == (10, 12, 70)
    # the list order is time (the format has no timestamps)
    u = list(task.user_ids).index("0")
    assert list(task.item_ids[task.sequence(u)]) == [str(i) for i in sequences()["0"]]
    i = list(task.item_ids).index("3")
    assert task.item_titles[i] == "Thing 3 & co"  # HTML entities decoded
    assert task.item_texts[i] == (
        "Brand: Acme. Categories: Office & School Supplies > Printer Ink & Toner > "
        "Inkjet Printer Ink. About thing 3."
    )
    assert sorted(task.item_ids[task.forget_items].astype(int)) == [0, 3, 6, 9]


def test_a_name_holding_a_comma_matches_its_items_only(tmp_path):
    assert "Calendars, Planners & Personal Organizers" in path_labels(PLANNER)
    assert "Printer Ink & Toner" not in path_labels(PLANNER)
    data = write_genrec(tmp_path / "d", sequences(), items())
    label = "Calendars, Planners & Personal Organizers"
    task = prepare_task(get_task(str(task_file(tmp_path, str(data), label))))
    assert sorted(task.item_ids[task.forget_items].astype(int)) == [1, 4, 7, 10]


def test_list_categories_and_missing_text_fields(tmp_path):
    meta = {str(i): {"categories": ["Beauty", "Fragrance" if i < 3 else "Makeup", "Women's"]}
            for i in range(12)}  # fmt: skip
    data = write_genrec(tmp_path / "d", sequences(), meta)
    task = prepare_task(get_task(str(task_file(tmp_path, str(data), "Fragrance"))))
    assert sorted(task.item_ids[task.forget_items].astype(int)) == [0, 1, 2]
    i = list(task.item_ids).index("5")
    assert task.item_titles[i] == ""
    assert task.item_texts[i] == "Categories: Beauty > Makeup > Women's"


def test_folder_from_tracer_bench_data_and_pinned_checksums(tmp_path, monkeypatch):
    data = write_genrec(tmp_path / "store" / "office14", sequences(), items())
    sha = hashlib.sha256((data / "Office.item.json").read_bytes()).hexdigest()
    pin = f'[dataset.checksums]\n"Office.item.json" = "sha256:{sha}"'
    f = task_file(tmp_path, "${TRACER_BENCH_DATA}/office14", extra=pin)
    monkeypatch.setenv("TRACER_BENCH_DATA", str(tmp_path / "store"))
    assert prepare_task(get_task(str(f))).n_items == 12


def _cache_entries() -> set:
    cache = Path(os.environ["TRACER_BENCH_CACHE"]) / "tasks" / "toy-office@1.0"
    return set(cache.iterdir()) if cache.exists() else set()


def _seq_with(bad: object) -> dict:
    seqs = sequences()
    seqs["3"] = [1, 2, bad, 4]
    return seqs


def _item_with(**fields: object) -> dict:
    meta = items()
    meta["5"] = {**meta["5"], **fields}
    return meta


BROKEN = {
    "unknown item": (_seq_with(40), items(), "inter.json", ["user '3'", "item 40", "not in"]),
    "string in a sequence": (_seq_with("2"), items(), "inter.json",
                             ["user '3'", "list of item indices"]),
    "float in a sequence": (_seq_with(2.0), items(), "inter.json", ["list of item indices"]),
    "bool in a sequence": (_seq_with(True), items(), "inter.json", ["list of item indices"]),
    "sequence not a list": ({**sequences(), "3": 7}, items(), "inter.json",
                            ["user '3'", "list of item indices"]),
    "NaN in a sequence": (json.dumps(sequences())[:-1].encode() + b', "99": [1, NaN]}', items(),
                          "inter.json", ["NaN is not a JSON number"]),
    "repeated user": (json.dumps(sequences())[:-1].encode() + b', "3": [1, 2, 3]}', items(),
                      "inter.json", ["'3' appears twice"]),
    "categories a number": (sequences(), _item_with(categories=7), "item.json",
                            ["item '5'", "'categories' must be a list of strings or one string"]),
    "categories holding a number": (sequences(), _item_with(categories=["Beauty", 3]),
                                    "item.json", ["item '5'", "'categories'"]),
    "title not a string": (sequences(), _item_with(title=None), "item.json",
                           ["item '5'", "'title' must be a string"]),
    "item key not an index": (sequences(), {**items(), "x1": {"categories": INK}}, "item.json",
                              ["item key 'x1'"]),
    "empty inter file": (b"", items(), "inter.json", ["empty file"]),
    "empty item object": (sequences(), {}, "item.json", ["non-empty JSON object"]),
    "top level a list": (sequences(), [1, 2], "item.json", ["non-empty JSON object"]),
    "not JSON": (b'{"0": [1, 2,', items(), "inter.json", [":1:", "not valid JSON"]),
    "not UTF-8": (sequences(), json.dumps(items()).encode().replace(b"Thing 4", b"Th\xefng 4"),
                  "item.json", [":1:", "not UTF-8", "byte 0xef"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_input_is_one_line(tmp_path, capsys, case):
    inter, item, where, needles = BROKEN[case]
    data = write_genrec(tmp_path / "d", inter, item)
    before = _cache_entries()
    code, _, err = run_cli(capsys, "tasks", "prepare", str(task_file(tmp_path, str(data))))
    assert_one_line_error(code, err, str(data / f"Office.{where}"), *needles)
    assert _cache_entries() == before  # nothing cached


def test_a_line_is_named_inside_a_pretty_printed_file(tmp_path, capsys):
    data = tmp_path / "d"
    write_genrec(data, {}, items())
    (data / "Office.inter.json").write_text(json.dumps(_seq_with(40), indent=1))
    code, _, err = run_cli(capsys, "tasks", "prepare", str(task_file(tmp_path, str(data))))
    line = (data / "Office.inter.json").read_text().splitlines().index(' "3": [') + 1
    assert_one_line_error(code, err, f"Office.inter.json:{line}:", "item 40")


def test_checksum_mismatch(tmp_path, capsys):
    data = write_genrec(tmp_path / "d", sequences(), items())
    pin = f'[dataset.checksums]\n"Office.inter.json" = "sha256:{"0" * 64}"'
    f = task_file(tmp_path, str(data), extra=pin)
    code, _, err = run_cli(capsys, "tasks", "prepare", str(f))
    assert_one_line_error(code, err, "Office.inter.json", "checksum mismatch")


def test_no_data_says_where_to_put_it_and_where_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRACER_BENCH_DATA", raising=False)
    code, _, err = run_cli(capsys, "tasks", "show", "amazon14-office-ink")
    assert_one_line_error(code, err, "set TRACER_BENCH_DATA", "amazon14-office/", "LC-Rec")
    monkeypatch.setenv("TRACER_BENCH_DATA", str(tmp_path))
    code, _, err = run_cli(capsys, "tasks", "show", "amazon14-beauty-fragrance")
    assert_one_line_error(code, err, str(tmp_path / "amazon14-beauty" / "Beauty.inter.json"),
                          "file not found", "S3Rec")  # fmt: skip


@pytest.mark.parametrize(
    "extra, needles",
    [
        ('prefix = ""', ["dataset.prefix"]),
        ('prefix = "../Office"', ["dataset.prefix", "plain file name prefix"]),
        ('[dataset.checksums]\n"Office.txt" = "sha256:00"', ["dataset.checksums.Office.txt"]),
    ],
)
def test_task_file_problems(tmp_path, capsys, extra, needles):
    f = task_file(tmp_path, str(tmp_path))
    text = f.read_text()
    if extra.startswith("prefix"):
        text = text.replace('prefix = "Office"', extra)
    else:
        text = text.replace('prefix = "Office"\n', f'prefix = "Office"\n{extra}\n')
    f.write_text(text)
    code, _, err = run_cli(capsys, "tasks", "prepare", str(f))
    assert_one_line_error(code, err, str(f), *needles)


def test_published_rows_only_for_their_data_and_protocol():
    rows = published_rows(get_task("amazon14-beauty-fragrance-loo"))
    assert rows["TIGER (published)"] == {"recall@10": 0.0648, "ndcg@10": 0.0384}
    assert published_rows(get_task("amazon14-beauty-fragrance")) == {}  # last-n: another protocol
    assert published_rows(get_task("amazon14-office-ink")) == {}
