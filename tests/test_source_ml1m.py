"""ML-1M source: download from a loopback server, extract, parse the `::` latin-1 files."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from tasks.errors import ChecksumError, DataFormatError, TaskFileError
from tasks.sources.ml1m import ML1MSource
from tasks.spec import DatasetSpec

MOVIES = [
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "2::Jumanji (1995)::Adventure|Children's|Fantasy",
    "3::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi",
    "4::Nightmare on Elm Street, A (1984)::Horror",
]
RATINGS = [
    "1::1::5::978300760",
    "1::4::3::978302109",
    "2::2::4::978298413",
    "2::3::2.5::978299000",
    "3::1::1::978301968",
]


def make_zip(ratings: list[str] = RATINGS, movies: list[str] = MOVIES) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", ("\n".join(ratings) + "\n").encode("latin-1"))
        zf.writestr("ml-1m/movies.dat", ("\n".join(movies) + "\n").encode("latin-1"))
        zf.writestr("ml-1m/README", "toy copy")
    return buf.getvalue()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Serve `state['body']` at /ml-1m.zip on 127.0.0.1; `state['requests']` counts the GETs."""
    state = {"body": make_zip(), "requests": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["requests"] += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(state["body"])))
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("TRACER_BENCH_ML1M_URL", f"http://127.0.0.1:{httpd.server_port}/ml-1m.zip")
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path / "cache"))
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_fetch_and_read(server, tmp_path: Path):
    source = ML1MSource()
    sha = hashlib.sha256(server["body"]).hexdigest()
    ds = DatasetSpec(source="ml-1m", checksums={"ml-1m.zip": f"sha256:{sha}"})
    files = source.fetch(ds)
    assert set(files) == {"ratings.dat", "movies.dat"}
    assert files["ratings.dat"] == tmp_path / "cache" / "raw" / "ml-1m" / "ratings.dat"
    raw = source.read(files, ds)

    inter = raw.interactions
    assert len(inter) == 5 and inter["user"].nunique() == 3
    assert inter["timestamp"].dtype == "int64" and inter["rating"].dtype == "float64"
    assert list(inter["user"])[:2] == ["1", "1"] and list(inter["item"])[:2] == ["1", "4"]
    assert inter["rating"].tolist() == [5.0, 3.0, 4.0, 2.5, 1.0]
    assert inter["timestamp"].iloc[0] == 978300760

    items = raw.items.set_index("item")
    assert len(items) == 4
    assert items.loc["3", "title"] == "Cité des enfants perdus, La"
    assert items.loc["3", "year"] == "1995"
    assert items.loc["1", "title"] == "Toy Story"
    assert items.loc["1", "concepts"] == ("Animation", "Children's", "Comedy")
    assert items.loc["4", "concepts"] == ("Horror",)


def test_second_fetch_reuses_the_cache(server):
    source = ML1MSource()
    ds = DatasetSpec(source="ml-1m")
    source.fetch(ds)
    source.fetch(ds)
    assert server["requests"] == 1


def test_wrong_checksum_leaves_nothing(server, tmp_path: Path):
    ds = DatasetSpec(source="ml-1m", checksums={"ml-1m.zip": "sha256:" + "0" * 64})
    with pytest.raises(ChecksumError, match="sha256"):
        ML1MSource().fetch(ds)
    downloads = tmp_path / "cache" / "downloads"
    assert list(downloads.iterdir()) == []
    assert not (tmp_path / "cache" / "raw" / "ml-1m").exists()


def test_md5_checksum_accepted(server):
    md5 = hashlib.md5(server["body"]).hexdigest()
    files = ML1MSource().fetch(DatasetSpec(source="ml-1m", checksums={"ml-1m.zip": f"md5:{md5}"}))
    assert files["movies.dat"].is_file()


def test_malformed_rating_line(server):
    server["body"] = make_zip(ratings=[*RATINGS[:2], "2::2::4", *RATINGS[3:]])
    source = ML1MSource()
    files = source.fetch(DatasetSpec(source="ml-1m"))
    with pytest.raises(DataFormatError, match=r"ratings\.dat:3: expected 4"):
        source.read(files, DatasetSpec(source="ml-1m"))


def test_non_numeric_timestamp(server):
    server["body"] = make_zip(ratings=[*RATINGS[:3], "2::3::2::yesterday"])
    source = ML1MSource()
    files = source.fetch(DatasetSpec(source="ml-1m"))
    with pytest.raises(DataFormatError, match=r"ratings\.dat:4: Timestamp is not an integer"):
        source.read(files, DatasetSpec(source="ml-1m"))


def test_check_rejects_unknown_checksum_name():
    with pytest.raises(TaskFileError, match="dataset.checksums.ml-1m.tar"):
        ML1MSource().check(DatasetSpec(source="ml-1m", checksums={"ml-1m.tar": "md5:00"}), "t.toml")
