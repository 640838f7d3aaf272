"""`publish`: the dry run writes a dataset folder that `datasets` and `huggingface_hub` read; an
upload goes through HfApi (faked here: no network) and the token never lands in a file or a log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import cli, copy_results, edit, task_files
from huggingface_hub import DatasetCard, HfApi

import leaderboard.publish as pub
from leaderboard.publish import publish
from leaderboard.table import find_result_files
from tasks.errors import BenchError

TOKEN = "hf_FAKE_secret_123"
REPO = "tracer-org/tracer-board"


@pytest.fixture
def no_stored_token(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(pub, "get_token", lambda: None)


@pytest.fixture
def fake_hub(monkeypatch):
    """HfApi.create_repo / upload_folder replaced by recorders (the folder is checked as sent)."""
    calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", {"repo_id": repo_id, "token": self.token, **kw}))
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, **kw):
        sent = sorted(
            p.relative_to(kw["folder_path"]).as_posix()
            for p in Path(kw["folder_path"]).rglob("*")
            if p.is_file()
        )
        calls.append(("upload_folder", {"token": self.token, "sent": sent, **kw}))
        base = f"https://huggingface.co/datasets/{kw['repo_id']}"
        return SimpleNamespace(
            commit_url=f"{base}/commit/abc123",
            pr_url=f"{base}/discussions/7" if kw.get("create_pr") else None,
        )

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_dry_run_folder_loads(tiny_results, tmp_path, capsys, no_stored_token):
    import datasets

    out = tmp_path / "dataset"
    done = publish(tiny_results, REPO, out_dir=out, task_files=task_files(tiny_results))
    assert done.url is None and done.folder == out
    printed = capsys.readouterr().out
    assert "dry run" in printed and REPO in printed and "a commit to the main branch" in printed
    for path, size in done.files:
        assert (out / path).stat().st_size == size and f"{path}  ({size} bytes)" in printed
    copied = sorted(p.relative_to(out / "results") for p in (out / "results").rglob("*"))
    originals = sorted(p.relative_to(tiny_results) for p in tiny_results.rglob("seed*"))
    assert copied and [p for p in copied if p.suffix] == [p for p in originals if p.suffix]
    assert not [p for p in tmp_path.iterdir() if p.name != "dataset"]  # no temporaries left

    cache = str(tmp_path / "hf-cache")
    board = datasets.load_dataset(
        "parquet", data_files=str(out / "leaderboard.parquet"), split="train", cache_dir=cache
    )
    assert board.num_rows == 3 and sorted(board["method"]) == ["filter", "ga", "tracer"]
    assert set(board["n_seeds"]) == {2} and "erasure_score_mean" in board.column_names
    assert {"rank", "role", "rank_basis", "erasure_score_lo"} <= set(board.column_names)
    assert set(board["role"]) == {"method"} and set(board["rank_basis"]) == {"paired"}
    runs = datasets.load_dataset(
        "parquet", data_files=str(out / "results.parquet"), split="train", cache_dir=cache
    )
    assert runs.num_rows == 6 and sorted(set(runs["seed"])) == [0, 1]
    assert set(runs["path"]) == {
        f"results/{p.relative_to(tiny_results).as_posix()}"
        for p in find_result_files(tiny_results)[0]
    }
    one = json.loads((tiny_results / "toy-scary" / "ga" / "seed1.json").read_text())
    row = runs.filter(lambda r: r["method"] == "ga" and r["seed"] == 1)[0]
    assert row["ce@5"] == one["metrics"]["ce@5"]["value"]

    card = DatasetCard.load(out / "README.md")
    configs = {c["config_name"]: c for c in card.data.configs}
    assert configs["leaderboard"]["default"] is True
    assert configs["leaderboard"]["data_files"][0]["path"] == "leaderboard.parquet"
    assert configs["results"]["data_files"][0]["path"] == "results.parquet"
    assert card.data.license and "tracer-bench" in card.data.tags
    assert "| tracer" in card.text and f'load_dataset("{REPO}"' in card.text
    assert "oracle_match" in card.text and "erasure_score 95% CI" in card.text
    assert "significantly separated pairs" in card.text and "fe@10" not in card.text

    again = publish(tiny_results, REPO, out_dir=out, task_files=task_files(tiny_results))
    assert again.files == done.files  # a previous dataset folder is replaced


def test_dry_run_without_out_dir_and_as_pull_request(tiny_results, capsys, no_stored_token):
    argv = [
        "publish",
        str(tiny_results),
        "--repo",
        REPO,
        "--create-pr",
        "--task-file",
        str(task_files(tiny_results)[0]),
    ]
    assert cli(argv) == 0
    printed = capsys.readouterr().out
    assert "as a pull request" in printed and "would create" not in printed
    folder = Path(printed.split("the dataset folder is ", 1)[1].split("\n", 1)[0])
    assert (folder / "README.md").exists() and (folder / "leaderboard.parquet").exists()
    shutil.rmtree(folder.parent)  # the printed temporary folder is the user's to remove


def _leaks(root: Path, *texts: str) -> list[str]:
    found = [
        p.as_posix() for p in root.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()
    ]
    return found + [t for t in texts if TOKEN in t]


@pytest.mark.parametrize("create_pr", [True, False])
def test_upload_with_token(tiny_results, tmp_path, capsys, fake_hub, create_pr):
    out = tmp_path / "dataset"
    done = publish(
        tiny_results,
        REPO,
        token=TOKEN,
        create_pr=create_pr,
        out_dir=out,
        task_files=task_files(tiny_results),
    )
    names = [name for name, _ in fake_hub]
    assert names == (["upload_folder"] if create_pr else ["create_repo", "upload_folder"])
    upload = fake_hub[-1][1]
    assert upload["create_pr"] is create_pr and upload["repo_type"] == "dataset"
    assert upload["repo_id"] == REPO and upload["token"] == TOKEN
    assert {"README.md", "leaderboard.parquet", "results.parquet"} <= set(upload["sent"])
    if not create_pr:
        assert fake_hub[0][1]["repo_type"] == "dataset" and fake_hub[0][1]["exist_ok"] is True
    assert done.url.endswith("/discussions/7" if create_pr else "/commit/abc123")
    captured = capsys.readouterr()
    assert done.url in captured.out
    assert _leaks(tmp_path, captured.out, captured.err, upload["commit_message"]) == []


def test_token_from_environment_never_leaks(tiny_results, tmp_path, capsys, fake_hub, monkeypatch):
    monkeypatch.setenv("MY_HF_TOKEN", TOKEN)
    argv = [
        "publish",
        str(tiny_results),
        "--repo",
        REPO,
        "--token-env",
        "MY_HF_TOKEN",
        "--out",
        str(tmp_path / "ds"),
        "--task-file",
        str(task_files(tiny_results)[0]),
    ]
    assert cli(argv) == 0
    assert fake_hub[-1][1]["token"] == TOKEN
    captured = capsys.readouterr()
    assert _leaks(tmp_path, captured.out, captured.err) == []

    def refuse(self, **kw):
        raise RuntimeError(f"401 Unauthorized: invalid token {self.token}")

    monkeypatch.setattr(HfApi, "upload_folder", refuse)
    with pytest.raises(BenchError) as err:
        cli(argv)
    assert TOKEN not in str(err.value) and "401" in str(err.value)
    monkeypatch.delenv("MY_HF_TOKEN")
    with pytest.raises(BenchError, match="MY_HF_TOKEN"):
        cli(argv)


def test_refuses_invalid_results_and_bad_input(tiny_results, tmp_path, no_stored_token):
    bad = copy_results(tiny_results, tmp_path)
    edit(
        bad / "toy-scary" / "ga" / "seed0.json",
        lambda r: r["metrics"]["erasure_score"].update(value=0.5),
    )
    out = tmp_path / "ds"
    with pytest.raises(BenchError, match="validation problem") as err:
        publish(bad, REPO, out_dir=out, task_files=task_files(tiny_results))
    assert "\n" not in str(err.value) and not out.exists()
    for repo in ("no-namespace", "a/b/c", "org/bad name", "org/..x", ""):
        with pytest.raises(BenchError, match="bad repo id"):
            publish(tiny_results, repo, out_dir=out)
    with pytest.raises(BenchError, match="does not exist"):
        publish(tmp_path / "nowhere", REPO)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(BenchError, match="not a dataset folder"):
        publish(tiny_results, REPO, out_dir=precious, task_files=task_files(tiny_results))
    assert (precious / "notes.txt").read_text() == "keep me"
