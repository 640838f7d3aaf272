from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.app.cli import main
from benchmark.metrics.evidence import COLUMNS, Evidence, evidence_path
from benchmark.metrics.protocol import EvalConfig
from benchmark.metrics.registry import compute
from benchmark.recommender.backbone import ArchConfig, BackboneConfig
from benchmark.recommender.features import FeatureConfig
from benchmark.recommender.sid import SIDConfig
from benchmark.recommender.train import TrainConfig
from leaderboard.table import INTERVAL_METRICS
from methods.base import MethodInputs
from methods.registry import get_method

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
    from benchmark.app.cli import add_parsers

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


# ---- genrec-json files (test_source_genrec.py, test_category_paths.py) -------------------------

INK = "Office & School Supplies, Printer Ink & Toner, Inkjet Printer Ink"
PLANNER = "Office & School Supplies, Calendars, Planners & Personal Organizers, Planners"
PRINTER = "Office Electronics, Printers & Accessories, Printers"


def items(n: int = 12) -> dict:
    """Items 0..n-1 cycling through three string paths (one with a comma inside a name)."""
    paths = (INK, PLANNER, PRINTER)
    return {
        str(i): {"title": f"Thing {i} &amp; co", "description": f"About thing {i}.",
                 "brand": "Acme", "categories": paths[i % 3]}
        for i in range(n)
    }  # fmt: skip


def sequences(n_users: int = 10, n_items: int = 12, length: int = 7) -> dict:
    return {str(u): [(u * 5 + k * 7) % n_items for k in range(length)] for u in range(n_users)}


def write_genrec(folder: Path, inter: object, item: object, prefix: str = "Office") -> Path:
    """A genrec-json dataset in `folder`: PREFIX.inter.json and PREFIX.item.json (bytes as they
    are, anything else as JSON)."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, doc in (("inter", inter), ("item", item)):
        data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        (folder / f"{prefix}.{suffix}.json").write_bytes(data)
    return folder


def task_file(tmp_path: Path, path: str, label: str = "Printer Ink & Toner", extra: str = ""
              ) -> Path:  # fmt: skip
    """A genrec-json task file (toy-office, prefix Office) on the dataset at `path`."""
    f = tmp_path / "task.toml"
    f.write_text(
        f'name = "toy-office"\nversion = "1.0"\n[dataset]\nsource = "genrec-json"\n'
        f'path = "{path}"\nprefix = "Office"\n{extra}\n[preprocess]\nuser_core = 3\n'
        f'item_core = 1\nmax_history = 4\n[concept]\nlabel = "{label}"\n'
    )
    return f


# ---- hand-made evidence frames (test_leaderboard_significance.py, test_compare.py) -------------

N_RETAIN, N_FORGET = 60, 400
SHOWN = (*INTERVAL_METRICS, "served_forgetting", "oracle_match", "retained_ndcg_ratio@10")


def frame(matched: np.ndarray, oracle_rank: float = 50.0) -> pd.DataFrame:
    """Evidence on N_RETAIN retain-test rows (served like the original: utility 1) and N_FORGET
    forget-set rows (never served: served forgetting 1). Forget-set example i has latent rank
    `oracle_rank` (where the oracle leaves it) where `matched[i]`, else 0 (where the original
    model has it), among 101 candidates: oracle match = mean(matched) when oracle_rank is a
    constant, and the erasure score 2 OM / (1 + OM)."""
    n = N_RETAIN + N_FORGET
    fs = np.arange(n) >= N_RETAIN
    inf, nan = math.inf, math.nan
    oracle_latent = np.where(fs, oracle_rank, nan)
    df = pd.DataFrame({
        "pool": np.where(fs, "forget_set", "retain_test"),
        "collateral": np.zeros(n, bool),
        "position": np.arange(n),
        "target": np.arange(n) % 13,
        "topk": [[-1] * 10] * n,
        "rank": np.where(fs, inf, 0.0),
        "original_rank": 0.0,
        "oracle_rank": np.where(fs, inf, 0.0),
        "banned_rank": np.where(fs, inf, 0.0),
        "latent_rank": np.where(fs, np.where(np.r_[np.zeros(N_RETAIN, bool), matched],
                                             oracle_latent, 0.0), nan),
        "original_latent_rank": np.where(fs, 0.0, nan),
        "oracle_latent_rank": oracle_latent,
        "relearn_rank": np.where(fs, inf, nan),
        "oracle_relearn_rank": np.where(fs, inf, nan),
        "forget_bits": 0,
        "original_forget_bits": 0,
        "oracle_forget_bits": 0,
        "n_candidates": 101,
    })  # fmt: skip
    return df[list(COLUMNS)]


def matched(n_matched: int, shift: int = 0) -> np.ndarray:
    """The first n_matched forget-set examples (rotated by `shift`) left where the oracle is."""
    return np.roll(np.arange(N_FORGET) < n_matched, shift)


def write_cell(root: Path, method: str, seed: int, df: pd.DataFrame) -> Evidence:
    """A result JSON whose metric values are computed from the evidence, and the evidence."""
    ev = Evidence.from_frame(df)
    values = {m: compute(ev, m) for m in SHOWN}
    if method == "retrain":  # the oracle scored against itself: trivially perfect
        values = {m: 1.0 for m in SHOWN}
    path = root / "toy" / method / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record(method=method, seed=seed, metrics=values)))
    df.to_parquet(evidence_path(path))
    return ev


# ---- the toy task and tiny backbone the methods run on (test_methods.py, test_evaluation.py) ---

FAST = {"steps": 6, "forget_batch": 16, "retain_batch": 4}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    import os

    from benchmark.recommender.backbone import get_backbone
    from tasks import load_task_file, prepare_task

    tmp = tmp_path_factory.mktemp("methods")
    old = os.environ.get("TRACER_BENCH_CACHE")
    os.environ["TRACER_BENCH_CACHE"] = str(tmp / "cache")
    try:
        data = write_atomic(tmp / "data", *toy_rows(n_users=40, n_items=16, per_user=10))
        task = prepare_task(load_task_file(toy_task_file(tmp, data)))
        bb, _ = get_backbone(task, TINY, seed=0, progress=False)
    finally:  # no environment leaks into the tests that follow
        if old is None:
            os.environ.pop("TRACER_BENCH_CACHE")
        else:
            os.environ["TRACER_BENCH_CACHE"] = old
    return task, bb


def inputs_for(task, bb) -> MethodInputs:
    return MethodInputs(bb.model, bb.sids, task, TINY, seed=0)


def overrides(name: str) -> dict:
    fields = {f.name for f in dataclasses.fields(get_method(name).Config)}
    return {k: v for k, v in FAST.items() if k in fields}


# ---- a real tiny submission with artifacts (test_verify.py, test_hostile_artifacts.py) ---------


@pytest.fixture(scope="module")
def submission(tmp_path_factory):
    """A real tiny run with --save-artifacts: (results folder, task file, cache)."""
    import os

    from benchmark.app.runner import run_grid

    base = tmp_path_factory.mktemp("verify")
    cache = base / "cache"
    old = os.environ.get("TRACER_BENCH_CACHE")
    os.environ["TRACER_BENCH_CACHE"] = str(cache)
    try:
        data = write_atomic(base / "data", *toy_rows(n_users=30, n_items=12, per_user=9))
        # SMALL is its protocol, TINY its base recipe
        task_file = toy_task_file(base, data, evaluation=SMALL, backbone=TINY)
        out = base / "results"
        run_grid([str(task_file)], ["retrain", "filter", "tracer"], [0], out, progress=False,
                 save_artifacts=True)  # fmt: skip
    finally:
        if old is None:
            os.environ.pop("TRACER_BENCH_CACHE")
        else:
            os.environ["TRACER_BENCH_CACHE"] = old
    return out, task_file, cache


def rehash_manifest(folder: Path) -> None:
    """Rewrite an artifacts folder's manifest.json to the sizes and hashes of its files now."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, meta in manifest["files"].items():
        data = (folder / name).read_bytes()
        meta.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (folder / "manifest.json").write_text(json.dumps(manifest))
