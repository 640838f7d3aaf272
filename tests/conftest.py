from __future__ import annotations

from pathlib import Path

import pytest

MARK = "TRACER_BENCH_TEST_RUN"  # an environment variable every process of a test run inherits


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

    from test_backbone import TINY
    from test_evaluation import SMALL

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
