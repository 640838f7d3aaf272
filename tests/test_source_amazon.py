"""Amazon Reviews 2023 source on small files written in the published schema (no network)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tasks.errors import BenchError, DataFormatError, TaskFileError
from tasks.sources import amazon
from tasks.sources.amazon import Amazon2023Source
from tasks.spec import DatasetSpec

IMAGE = {
    "small_image_url": "https://m.media-amazon.com/images/I/a._SL256_.jpg",
    "medium_image_url": "https://m.media-amazon.com/images/I/a._SL800_.jpg",
    "large_image_url": "https://m.media-amazon.com/images/I/a.jpg",
    "attachment_type": "IMAGE",
}


def review(user: str, item: str, ts: int, rating: float = 5.0, images: list | None = None) -> dict:
    return {
        "rating": rating,
        "title": "Works",
        "text": "Does what it says.<br />Would buy again",
        "images": images or [],
        "asin": item + "-v",
        "parent_asin": item,
        "user_id": user,
        "timestamp": ts,
        "helpful_vote": 0,
        "verified_purchase": True,
    }


def meta(item: str, title: str, categories: list[str], details: dict, price: object) -> dict:
    return {
        "main_category": "Health & Personal Care",
        "title": title,
        "average_rating": 4.4,
        "rating_number": 12,
        "features": ["First feature line", "Second feature line", "Third feature line"],
        "description": ["A description."],
        "price": price,
        "images": [{"thumb": "t.jpg", "large": "l.jpg", "variant": "MAIN", "hi_res": None}],
        "videos": [{"title": "Demo", "url": "https://v", "user_id": ""}] if price else [],
        "store": "Acme",
        "categories": categories,
        "details": details,
        "parent_asin": item,
        "bought_together": None,
    }


REVIEWS = [
    review("U1", "P1", 1_600_000_000_000, 5.0, [IMAGE]),
    review("U1", "P2", 1_600_000_000_500, 3.0),
    review("U2", "P1", 1_600_000_001_000, 4.0),
    review("U2", "P9", 1_600_000_002_000, 1.0),  # P9 has no metadata
    review("U3", "P3", 1_600_000_003_000, 2.0, [IMAGE, IMAGE]),
]
METAS = [
    meta(
        "P1",
        "Massager",
        ["Health & Household", "Sexual Wellness", "Adult Toys & Games"],
        {"Brand": "Acme", "Item Weight": "1 lb", "Best Sellers Rank": {"Health": 1234}},
        12.99,
    ),
    meta("P2", "Vitamin C", ["Health & Household", "Vitamins"], {"Item Weight": 2}, "None"),
    meta("P3", "Plain thing", [], {"UPC": "0123 4567", "Count": [1, 2]}, None),
]


def write_jsonl(path: Path, rows: list[dict | str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_files(root: Path, reviews: list = REVIEWS, metas: list = METAS, cat: str = "X") -> None:
    write_jsonl(root / "raw" / "review_categories" / f"{cat}.jsonl", reviews)
    write_jsonl(root / "raw" / "meta_categories" / f"meta_{cat}.jsonl", metas)


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    write_files(root)
    return root


def load(root: Path, **spec: str):
    ds = DatasetSpec(source="amazon-2023", category="X", path=str(root), **spec)
    source = Amazon2023Source()
    source.check(ds, "task.toml")
    return source.read(source.fetch(ds), ds)


def test_reviews_and_meta(data: Path):
    raw = load(data)
    inter = raw.interactions
    assert len(inter) == 5 and inter["user"].nunique() == 3
    assert list(inter["item"]) == ["P1", "P2", "P1", "P9", "P3"]
    assert inter["timestamp"].dtype == "int64" and inter["timestamp"].iloc[1] == 1_600_000_000_500
    assert inter["rating"].dtype == "float64" and inter["rating"].tolist() == [5, 3, 4, 1, 2]

    items = raw.items.set_index("item")
    # P9 was reviewed but has no metadata row: left out, for the task to refuse or drop
    assert sorted(items.index) == ["P1", "P2", "P3"]
    assert items.loc["P1", "concepts"] == (
        "Health & Household",
        "Sexual Wellness",
        "Adult Toys & Games",
    )
    assert items.loc["P2", "concepts"] == ("Health & Household", "Vitamins")
    assert items.loc["P2", "title"] == "Vitamin C" and items.loc["P2", "year"] == ""
    assert items.loc["P3", "concepts"] == ()
    text = items.loc["P1", "text"]
    assert text.startswith("Acme | Health & Household > Sexual Wellness")
    assert "First feature line" in text and "Third feature line" not in text
    assert items.loc["P3", "text"] == "Acme | First feature line; Second feature line"


def test_meta_without_optional_columns(data: Path):
    metas = [{k: v for k, v in m.items() if k not in ("store", "features")} for m in METAS]
    write_files(data, metas=metas)
    items = load(data).items.set_index("item")
    assert items.loc["P2", "text"] == "Health & Household > Vitamins"
    assert items.loc["P3", "text"] == ""


def test_5core_csv(data: Path):
    csv = data / "benchmark" / "5core" / "rating_only" / "X.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text(
        "user_id,parent_asin,rating,timestamp\n"
        "U1,P1,5.0,1600000000000\nU1,P2,3.0,1600000000500\nU2,P7,4.0,1600000001000\n"
    )
    raw = load(data, interactions="5core")
    assert len(raw.interactions) == 3
    assert raw.interactions["timestamp"].tolist()[2] == 1_600_000_001_000
    items = raw.items.set_index("item")
    assert "P7" not in items.index and items.loc["P1", "title"] == "Massager"


def test_5core_bad_row(data: Path):
    csv = data / "benchmark" / "5core" / "rating_only" / "X.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text(
        "user_id,parent_asin,rating,timestamp\nU1,P1,5.0,1600000000000\nU1,P2,3.0,soon\n"
    )
    with pytest.raises(DataFormatError, match=r"X\.csv:3: column 'timestamp' is not a number"):
        load(data, interactions="5core")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_5core_non_finite_rating_is_refused(data: Path, value: str):
    csv = data / "benchmark" / "5core" / "rating_only" / "X.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text(
        "user_id,parent_asin,rating,timestamp\n"
        f"U1,P1,5.0,1600000000000\n\nU1,P2,{value},1600000000500\n"
    )
    with pytest.raises(DataFormatError, match=r"X\.csv:4: column 'rating' is not a finite number"):
        load(data, interactions="5core")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_review_non_finite_rating_is_refused(data: Path, value):
    reviews = [*REVIEWS[:2], {**REVIEWS[2], "rating": value}, *REVIEWS[3:]]
    write_files(data, reviews=reviews)  # json.dumps writes NaN / Infinity
    with pytest.raises(DataFormatError, match=r"X\.jsonl:3: column 'rating' is not a finite"):
        load(data)


def test_5core_not_utf8_names_line_and_offset(data: Path):
    csv = data / "benchmark" / "5core" / "rating_only" / "X.csv"
    csv.parent.mkdir(parents=True)
    head = b"user_id,parent_asin,rating,timestamp\nU1,P1,5.0,1600000000000\n"
    csv.write_bytes(head + b"U\xff2,P2,3.0,1600000000500\n")
    where = rf"X\.csv:3: not UTF-8 \(byte 0xff at offset {len(head) + 1}\)"
    with pytest.raises(DataFormatError, match=where):
        load(data, interactions="5core")


def test_5core_missing_column(data: Path):
    csv = data / "benchmark" / "5core" / "rating_only" / "X.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("user_id,parent_asin,timestamp\nU1,P1,1600000000000\n")
    with pytest.raises(DataFormatError, match=r"X\.csv:1: missing column 'rating'"):
        load(data, interactions="5core")


def test_bad_json_line(data: Path):
    write_files(data, reviews=[*REVIEWS[:2], '{"rating": 5.0, "user_id": "U9",', *REVIEWS[2:]])
    with pytest.raises(DataFormatError, match=r"review_categories/X\.jsonl:3: not valid JSON"):
        load(data)


def test_bad_json_line_found_after_a_failed_load(data: Path, monkeypatch: pytest.MonkeyPatch):
    # beyond the lines scanned up front: datasets fails first, then the file is scanned
    monkeypatch.setattr(amazon, "SCAN_LINES", 1)
    write_files(data, metas=[*METAS, "{not json}"])
    with pytest.raises(DataFormatError, match=r"meta_X\.jsonl:4: not valid JSON"):
        load(data)


def test_column_appearing_late(data: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(amazon, "SCAN_LINES", 1)
    late = {**REVIEWS[3], "extra_field": {"a": 1}}
    write_files(data, reviews=[*REVIEWS[:3], late, REVIEWS[4]])
    assert len(load(data).interactions) == 5


def test_missing_column(data: Path):
    write_files(data, reviews=[{k: v for k, v in r.items() if k != "user_id"} for r in REVIEWS])
    with pytest.raises(DataFormatError, match=r"X\.jsonl: missing column 'user_id'"):
        load(data)
    write_files(data, metas=[{k: v for k, v in m.items() if k != "categories"} for m in METAS])
    with pytest.raises(DataFormatError, match=r"meta_X\.jsonl: missing column 'categories'"):
        load(data)


def test_null_user(data: Path):
    write_files(data, reviews=[*REVIEWS[:4], {**REVIEWS[4], "user_id": None}])
    with pytest.raises(DataFormatError, match=r"X\.jsonl:5: column 'user_id' is missing or null"):
        load(data)


def test_null_rating_and_title_are_allowed(data: Path):
    write_files(
        data,
        reviews=[*REVIEWS[:4], {**REVIEWS[4], "rating": None}],
        metas=[*METAS[:2], {**METAS[2], "title": None, "categories": None}],
    )
    raw = load(data)
    assert raw.interactions["rating"].isna().tolist() == [False] * 4 + [True]
    p3 = raw.items.set_index("item").loc["P3"]
    assert p3["title"] == "" and p3["concepts"] == ()


def test_a_product_listed_twice_is_an_error(data: Path):
    """Two metadata records of one parent_asin: which one's categories count is undecidable."""
    write_files(data, metas=[*METAS, {**METAS[0], "categories": ["Toys"]}])
    with pytest.raises(
        DataFormatError,
        match=r"meta_X\.jsonl: parent_asin 'P1' has more than one "
        r"metadata record \(records 1 and 4\)",
    ):
        load(data)


def test_missing_file(data: Path):
    (data / "raw" / "meta_categories" / "meta_X.jsonl").unlink()
    with pytest.raises(DataFormatError, match=r"meta_X\.jsonl: file not found"):
        load(data)


def test_check():
    source = Amazon2023Source()
    with pytest.raises(TaskFileError, match=r"task\.toml: .*'dataset\.category'"):
        source.check(DatasetSpec(source="amazon-2023"), "task.toml")
    with pytest.raises(TaskFileError, match=r"'dataset\.interactions'"):
        source.check(DatasetSpec(source="amazon-2023", category="X", interactions="all"), "t")
    with pytest.raises(TaskFileError, match=r"'dataset\.category' must be a plain file name"):
        source.check(DatasetSpec(source="amazon-2023", category="../X"), "t")


def test_fetch_from_hub(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub

    calls = []

    def fake_download(**kwargs: object) -> str:
        calls.append(kwargs)
        return str(data / str(kwargs["filename"]))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    ds = DatasetSpec(source="amazon-2023", category="X", revision="abc123")
    files = Amazon2023Source().fetch(ds)
    assert [c["filename"] for c in calls] == [
        "raw/review_categories/X.jsonl",
        "raw/meta_categories/meta_X.jsonl",
    ]
    for c in calls:
        assert c["repo_id"] == "McAuley-Lab/Amazon-Reviews-2023"
        assert c["repo_type"] == "dataset" and c["revision"] == "abc123"
        assert Path(str(c["cache_dir"])) == tmp_path / "cache" / "hub"
    assert len(Amazon2023Source().read(files, ds).interactions) == 5

    calls.clear()
    Amazon2023Source().fetch(DatasetSpec(source="amazon-2023", category="X", interactions="5core"))
    assert calls[0]["filename"] == "benchmark/5core/rating_only/X.csv"
    assert calls[0]["revision"] is None


def test_hub_failure_is_one_line(monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub

    def failing(**kwargs: object) -> str:
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing)
    with pytest.raises(BenchError, match=r"Amazon-Reviews-2023/raw/review_categories/X\.jsonl"):
        Amazon2023Source().fetch(DatasetSpec(source="amazon-2023", category="X"))


def test_items_without_metadata_are_refused_or_dropped_never_retained(data: Path):
    """A reviewed item with no metadata row has no concept labels: a task refuses it by default
    and drops its interactions only when told to (`on_missing_item = "drop"`)."""
    from tasks.prepare import build_arrays
    from tasks.taskfile import spec_from_dict

    raw = load(data)  # P9 is reviewed, without metadata
    table = {"name": "amz", "version": "2.0", "concept": {"label": "Sexual Wellness"},
             "dataset": {"source": "amazon-2023", "category": "X", "path": str(data)},
             "preprocess": {"user_core": 3, "item_core": 1}, "split": {"n_test": 1}}  # fmt: skip
    with pytest.raises(BenchError, match=r"1 interactions name 1 items without a metadata row "
                       r"\(first: 'P9'\).*on_missing_item = \"drop\""):  # fmt: skip
        build_arrays(spec_from_dict(table), raw)
    table["preprocess"]["on_missing_item"] = "drop"
    drop = spec_from_dict(table)
    tiny = dataclasses.replace(drop, preprocess=dataclasses.replace(drop.preprocess, user_core=1))
    arrays, stats = build_arrays(tiny, raw)  # user_core 1 (below what a task file may ask)
    assert "P9" not in arrays["item_ids"] and stats["dropped_missing_item_interactions"] == 1
    # the option counts in the task's identity only when set
    table["preprocess"]["on_missing_item"] = "error"
    assert spec_from_dict(table).spec_hash() != drop.spec_hash()
    table["preprocess"].pop("on_missing_item")
    assert (
        spec_from_dict(table).spec_hash()
        == spec_from_dict(
            {**table, "preprocess": {**table["preprocess"], "on_missing_item": "error"}}
        ).spec_hash()
    )
