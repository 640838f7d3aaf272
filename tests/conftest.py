from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from benchmark.app.cli import main
from benchmark.metrics.protocol import EvalConfig
from benchmark.recommender.backbone import ArchConfig, BackboneConfig
from benchmark.recommender.features import FeatureConfig
from benchmark.recommender.sid import SIDConfig
from benchmark.recommender.train import TrainConfig

MARK = "TRACER_BENCH_TEST_RUN"  # an environment variable every process of a test run inherits


# ---- shared by the test modules (import them from conftest) ---------------------------------

TINY = BackboneConfig(
    features=FeatureConfig(text="tfidf", tfidf_dim=8, collab_dim=4),
    sid=SIDConfig(levels=2, codebook_size=4),
    arch=ArchConfig(d_model=32, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=64, dropout=0.0),
    train=TrainConfig(max_epochs=3, batch_size=16, lr=5e-3),
)

# the evaluation protocol of the toy tasks (`toy_task_file(..., evaluation=SMALL)`)
SMALL = EvalConfig(ks=(1, 5, 10), beam=8, relearn_steps=3, relearn_sample=16, geometry_items=10)


def random_codes(n_items: int, sizes: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Unique random SIDs."""
    rng = np.random.default_rng(seed)
    space = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1)
    space = space.reshape(-1, len(sizes))
    return space[rng.choice(len(space), n_items, replace=False)].astype(np.int64)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    # progress lines may come first; the error is exactly one line, the last, with no traceback
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert [line for line in lines if "error" in line.lower()] == [lines[-1]], err
    assert lines[-1].startswith("tracer-bench: error: ")
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test writes its cache under a temporary folder shared by the session."""
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def ml100k_horror(tmp_path_factory: pytest.TempPathFactory):
    import os

    from tasks import get_task, prepare_task

    old = os.environ.get("TRACER_BENCH_CACHE")
    os.environ["TRACER_BENCH_CACHE"] = str(tmp_path_factory.getbasetemp() / "cache")
    try:
        return prepare_task(get_task("ml100k-horror"))
    finally:
        if old is None:
            os.environ.pop("TRACER_BENCH_CACHE")
        else:
            os.environ["TRACER_BENCH_CACHE"] = old


def write_atomic(
    folder: Path, inter_rows: list[str], item_rows: list[str], name: str = "toy"
) -> Path:
    """A RecBole atomic dataset in `folder`; rows are tab-separated strings without header."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "\n".join(inter_rows)
        + "\n"
    )
    (folder / f"{name}.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        + "\n".join(item_rows)
        + "\n"
    )
    return folder


def toy_rows(
    n_users: int = 12, n_items: int = 10, per_user: int = 7
) -> tuple[list[str], list[str]]:
    """A small deterministic dataset: items 1..n_items, even items carry the concept 'Scary'."""
    inter = []
    for u in range(1, n_users + 1):
        for k in range(per_user):
            item = (u * 3 + k * 7) % n_items + 1
            inter.append(f"{u}\t{item}\t4\t{1000 + 10 * k + u}")
    items = [
        f"{i}\tMovie {i}\t{1990 + i}\t{'Scary Drama' if i % 2 == 0 else 'Comedy'}"
        for i in range(1, n_items + 1)
    ]
    return inter, items


def toy_task_file(
    folder: Path, data_dir: Path, evaluation=None, backbone=None, **overrides: str
) -> Path:
    """The toy task's file; `evaluation` (an EvalConfig) is declared as its [evaluation] table
    (the fields that differ from the harness default, less the run's seed and split), `backbone`
    (a BackboneConfig) as its [backbone.<part>] tables (the fields that differ)."""
    fields = {
        "name": '"toy-scary"',
        "version": '"1.0"',
        "source": '"atomic"',
        "label": '"Scary"',
        "user_core": "3",
        "item_core": "1",
        "max_history": "4",
    }
    fields.update(overrides)
    text = f"""name = {fields["name"]}
version = {fields["version"]}

[dataset]
source = {fields["source"]}
path = "{data_dir}"

[preprocess]
user_core = {fields["user_core"]}
item_core = {fields["item_core"]}
max_history = {fields["max_history"]}

[concept]
label = {fields["label"]}
"""
    if evaluation is not None:
        text += "\n[evaluation]\n" + _evaluation_table(evaluation)
    if backbone is not None:
        text += _backbone_tables(backbone)
    path = folder / "toy.toml"
    path.write_text(text)
    return path


def _evaluation_table(cfg) -> str:
    import dataclasses
    import json

    from benchmark.metrics.protocol import RUN_FIELDS, EvalConfig

    default = EvalConfig()
    return "".join(
        f"{f.name} = {json.dumps(list(v) if isinstance(v, tuple) else v)}\n"
        for f in dataclasses.fields(cfg)
        if f.name not in RUN_FIELDS and (v := getattr(cfg, f.name)) != getattr(default, f.name)
    )


def _backbone_tables(cfg) -> str:
    import dataclasses
    import json

    from benchmark.recommender.backbone import BackboneConfig

    default, text = BackboneConfig(), ""
    for part in dataclasses.fields(cfg):
        mine, theirs = getattr(cfg, part.name), getattr(default, part.name)
        rows = [f"{f.name} = {json.dumps(getattr(mine, f.name))}\n"
                for f in dataclasses.fields(mine)
                if getattr(mine, f.name) != getattr(theirs, f.name)]  # fmt: skip
        if rows:
            text += f"\n[backbone.{part.name}]\n" + "".join(rows)
    return text


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real results folder from a tiny grid (toy task, tiny backbone): methods filter, ga and
    tracer, seeds 0 and 1, written by the runner exactly as a benchmark run writes it, each with
    its task's protocol (the toy task declares tests/test_evaluation.py's SMALL). Read-only for
    tests: copy it (shutil.copytree) before changing anything."""
    import os

    from benchmark.app.runner import run_grid

    base = tmp_path_factory.mktemp("tiny_results")
    old = os.environ.get("TRACER_BENCH_CACHE")
    os.environ["TRACER_BENCH_CACHE"] = str(base / "cache")
    try:
        data = write_atomic(base / "data", *toy_rows(n_users=30, n_items=12, per_user=9))
        # SMALL is its protocol, TINY its base recipe
        task_file = str(toy_task_file(base, data, evaluation=SMALL, backbone=TINY))
        out = base / "results"
        run_grid([task_file], ["filter", "ga", "tracer"], [0, 1], out, progress=False)
        return out
    finally:
        if old is None:
            os.environ.pop("TRACER_BENCH_CACHE")
        else:
            os.environ["TRACER_BENCH_CACHE"] = old


def survivors(marker: object) -> list[int]:
    """Pids of live processes whose environment has MARK=marker (started by one test run)."""
    needle = f"{MARK}={marker}".encode() + b"\0"
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone, or not ours to read
        if needle in environ and state != "Z":
            pids.append(int(proc.name))
    return pids


# ---- result files the tests write ---------------------------------------------------------------


def record(
    task: str = "toy",
    method: str = "a",
    seed: int = 0,
    metrics: dict[str, float] | None = None,
    *,
    version: str = "1.0",
    data_hash: str = "d" * 64,
    backbone: str = "b" * 64,
    config_hash: str | None = None,
    intervals: dict[str, tuple[float, float]] | None = None,
) -> dict:
    """A schema-3 result record (`reference` for the method named retrain); each metric's
    interval is the value itself unless given in `intervals`."""
    metrics, intervals = metrics or {}, intervals or {}
    return {
        "schema_version": 3,
        "harness_version": "0.1.0",
        "task": {
            "name": task,
            "version": version,
            "identity": f"{task}@{version}",
            "data_hash": data_hash,
            "protocol": "last-n",
        },
        "method": {
            "name": method,
            "version": "1.0",
            "config": {},
            "config_hash": config_hash or (method[0] * 64),
        },
        "backbone": {"config": {}, "config_hash": backbone, "checkpoint_sha256": "c" * 64},
        "oracle": {"version": "2.0", "checkpoint_sha256": "o" * 64},
        "seed": seed,
        "reference": method == "retrain",
        "metrics": {
            k: {
                "value": v,
                "ci_low": intervals.get(k, (v, v))[0],
                "ci_high": intervals.get(k, (v, v))[1],
                "n": 10,
            }
            for k, v in metrics.items()
        },  # fmt: skip
        "cost": {"unlearn_seconds": 1.0, "peak_memory_mib": 100.0},
        "evidence": {"file": f"seed{seed}.evidence.parquet", "sha256": "0" * 64, "rows": 0},
        "environment": {
            "python": "3.11",
            "torch": "2.5",
            "platform": "linux",
            "git_revision": "abc",
            "threads": 1,
        },  # fmt: skip
        "timestamp": "2026-01-01T00:00:00+00:00",
    }


def write(folder: Path, rec: dict, name: str | None = None) -> Path:
    path = (
        folder / rec["task"]["name"] / rec["method"]["name"] / (name or f"seed{rec['seed']}.json")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, allow_nan=True))
    return path


def task_files(results: Path) -> list[Path]:
    """The toy task file the tiny_results fixture was run on (beside the results folder)."""
    return [results.parent / "toy.toml"]


def copy_results(results: Path, tmp_path: Path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(results, out)
    return out


def edit(path: Path, change: Callable[[dict], None]) -> None:
    rec = json.loads(path.read_text())
    change(rec)
    path.write_text(json.dumps(rec, allow_nan=True))


def cli(argv: list[str]) -> int:
    """Run a `publish` / `validate` / `compare` command line; its exit status."""
    from benchmark.app.hubcli import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def full_metrics(score: float, **extra: float) -> dict[str, float]:
    out = {"erasure_score": score, "forgetting_part": score / 2, "utility_part": 1 - score / 4}
    out.update({k.replace("_at_", "@"): v for k, v in extra.items()})
    return out


def publish_dry_run(capsys, results: Path, out: Path, task_file: str, *extra: str):
    """`tracer-bench publish RESULTS --repo org/board --dry-run --out OUT --task-file F [extra]`:
    (exit status, stdout, stderr)."""
    argv = ["publish", str(results), "--repo", "org/board", "--dry-run", "--out", str(out)]
    return run_cli(capsys, *argv, "--task-file", task_file, *extra)
