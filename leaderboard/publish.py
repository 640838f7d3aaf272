"""Publish a results folder as a Hugging Face dataset repo (DESIGN §6): `results/` (the result
JSONs and their evidence, same layout), `leaderboard.parquet`, `results.parquet` and a dataset
card whose YAML `configs` let `datasets.load_dataset(repo)` read both tables. Validated first.
Without a token it is a dry run that writes the exact folder and lists what would be uploaded.
The token is only ever handed to `HfApi`: never written, printed or put in an error message."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from huggingface_hub import DatasetCard, DatasetCardData, HfApi, get_token
from tabulate import tabulate

from benchmark import __version__
from benchmark.metrics.evidence import evidence_path
from benchmark.metrics.registry import SUMMARY_METRICS
from benchmark.results.checkpoints import (
    CHECKPOINTS,
    KINDS,
    CheckpointError,
    board_checkpoint,
    board_pairs,
    copy_checkpoint,
)
from benchmark.results.ledger import LEDGER_NAME, ledger_path, read_ledger
from benchmark.util.atomic import folder_atomic
from leaderboard.table import (
    CI_HEADER,
    LEADERBOARD_METRICS,
    MISSING,
    find_result_files,
    load_results,
    rank_text,
    section_metrics,
    section_notes,
    sections,
)
from tasks.errors import BenchError

LICENSE = "apache-2.0"
TAGS = ["tracer-bench", "benchmark", "leaderboard", "machine-unlearning", "recommender-systems",
        "generative-recommendation", "semantic-ids"]  # fmt: skip
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
PUBLISHED = ("README.md", "leaderboard.parquet", "results.parquet", "results", CHECKPOINTS)


@dataclass
class Published:
    folder: Path | None  # the dataset folder written (None: a temporary one, already removed)
    files: list[tuple[str, int]]  # (path in the repo, bytes)
    url: str | None  # the commit or pull-request URL; None for a dry run


def check_repo_id(repo_id: str) -> None:
    if not REPO_ID.fullmatch(repo_id) or ".." in repo_id or "--" in repo_id:
        raise BenchError(f"bad repo id {repo_id!r}: want ORG/NAME (letters, digits, . _ -)")


def results_frame(results_dir: Path, trusted: Mapping | None = None) -> pd.DataFrame:
    """One row per result file: identities, seed, every metric value (`verified` under the
    `trusted` keys); `path` in the repo."""
    df = load_results(results_dir, trusted)
    df["path"] = [
        "results/" + Path(p).relative_to(results_dir).as_posix() for p in df["path"]
    ]  # fmt: skip
    df.attrs = {}  # pandas would store attrs (local paths) in the parquet metadata
    return df


def leaderboard_frame(results: pd.DataFrame) -> pd.DataFrame:
    """leaderboard.table.leaderboard_table as plain scalar columns (mean / std per metric, the
    erasure score's interval); `attrs` keeps only `separated_pairs` (for the card)."""
    from leaderboard.table import leaderboard_table

    board = leaderboard_table(results)
    board.attrs = {"separated_pairs": board.attrs["separated_pairs"]}  # no local paths
    for c in board.columns:
        if board[c].dtype == object:
            board[c] = board[c].astype(str)
    return board


def _cell(mean: float, std: float) -> str:
    if pd.isna(mean):
        return MISSING
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def _interval(lo: float, hi: float) -> str:
    return MISSING if pd.isna(lo) or pd.isna(hi) else f"[{lo:.3f}, {hi:.3f}]"


def leaderboard_markdown(board: pd.DataFrame) -> str:
    """One markdown table per task group: rank ('ref' for the reference), method (with its role),
    the headline with its 95 % (seed, example) interval, its parts and the main @10 metrics (or
    their largest K), mean ± std over seeds; the section's notes under it."""
    out = []
    for keys, rows in sections(board):
        identity, data_hash, backbone = keys
        resolved = dict(zip(LEADERBOARD_METRICS, section_metrics(rows), strict=True))
        names = list(dict.fromkeys(resolved[m] for m in SUMMARY_METRICS))
        body = [
            [rank_text(r["rank"], r["role"]),
             r["method"] if r["role"] == "method" else f"{r['method']} ({r['role']})",
             r["n_seeds"], _cell(r[f"{names[0]}_mean"], r[f"{names[0]}_std"]),
             _interval(r[f"{names[0]}_lo"], r[f"{names[0]}_hi"])]
            + [_cell(r[f"{m}_mean"], r[f"{m}_std"]) for m in names[1:]]
            for _, r in rows.iterrows()
        ]  # fmt: skip
        out.append(f"### {identity}\n\ndata `{data_hash[:12]}`, backbone `{backbone[:12]}`\n")
        headers = ["rank", "method", "seeds", names[0], CI_HEADER, *names[1:]]
        out.append(tabulate(body, headers=headers, tablefmt="github", disable_numparse=True))
        out.extend(section_notes(board, keys, rows))
    return "\n\n".join(out)


def verification_text(keys: Sequence[str]) -> str:
    """The card's verification section: what ✓ means and the key that signs it."""
    if not keys:
        return ("No row is verified: no result of this board carries a ledger entry signed by "
                "a key trusted when it was published.")  # fmt: skip
    listed = "\n".join(f"- `{k}`" for k in keys)
    return f"""Rows with `verified = True` were re-evaluated from their artifacts (weights, served
SIDs, ban) by `tracer-bench verify` on the board's machine, and their ledger entries
(`results/verification-ledger.jsonl`) are signed (Ed25519) with the board's key:

{listed}

Anyone can re-check the ✓ with the project: download the `results/` folder and run
`tracer-bench leaderboard results --trust {keys[0]}` (or `tracer-bench validate`). Without
that key, or under another, no row is shown verified."""


def card_body(board: pd.DataFrame, repo_id: str, n_results: int, keys: Sequence[str] = ()) -> str:
    return f"""# tracer-bench results

Results of **tracer-bench** (harness {__version__}), a benchmark for concept unlearning in
generative semantic-ID recommenders: {n_results} result files, validated before publishing.

## Leaderboard

Protocol 2.1: mean ± standard deviation over seeds. The erasure score is the harmonic mean of the
forgetting part min(served forgetting, oracle match) — both measured against the retrain oracle —
and the utility part min(1, retained NDCG@10 ratio to the original model served with the concept
banned at decode, so that top-10 slots the concept frees are nobody's bonus). A method's rank is 1 +
the number of methods whose erasure score is significantly better (paired bootstrap over seeds
and evaluation examples, 95 %); methods that cannot be told apart share a rank. The retrain row,
scored against another seed's oracle, is the noise ceiling.

{leaderboard_markdown(board)}

## Verification

{verification_text(keys)}

## Loading

```python
from datasets import load_dataset

board = load_dataset("{repo_id}", split="train")            # the leaderboard (default config)
runs = load_dataset("{repo_id}", "results", split="train")  # one row per result file
```

The raw result JSONs and their per-example evidence (top-K lists and target ranks, from which
every ranking metric can be recomputed) are under `results/<task>/<method>/seed<N>.json` and
`seed<N>.evidence.parquet`:

```python
from huggingface_hub import snapshot_download

folder = snapshot_download("{repo_id}", repo_type="dataset", allow_patterns="results/*")
```
"""


def dataset_card(
    board: pd.DataFrame, repo_id: str, n_results: int, keys: Sequence[str] = (),
    checkpoints: list[Shipped] | None = None,
) -> str:  # fmt: skip
    data = DatasetCardData(
        license=LICENSE,
        pretty_name="tracer-bench results",
        tags=TAGS,
        configs=[
            {"config_name": "leaderboard", "default": True,
             "data_files": [{"split": "train", "path": "leaderboard.parquet"}]},
            {"config_name": "results",
             "data_files": [{"split": "train", "path": "results.parquet"}]},
        ],
    )  # fmt: skip
    body = card_body(board, repo_id, n_results, keys)
    if checkpoints is not None:
        body += checkpoints_text(checkpoints, repo_id)
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def build_folder(
    results_dir: Path,
    dest: Path,
    repo_id: str,
    with_ledger: bool = True,
    trusted: Mapping | None = None,
) -> list[tuple[str, int]]:
    """Write the dataset folder into `dest` (existing, empty); (path, bytes) of every file. The
    board's verification ledger travels only `with_ledger` (the board's own publish, never a
    submission); the tables are built from the copied `results/`, so a row is ✓ in them only
    where the uploaded ledger holds an entry signed by a `trusted` key, which the card names."""
    copied = dest / "results"
    for f in find_result_files(results_dir)[0]:
        for src in (f, evidence_path(f)):
            if src.exists():
                target = copied / src.relative_to(results_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)
    if with_ledger and ledger_path(results_dir).is_file():
        shutil.copyfile(ledger_path(results_dir), ledger_path(copied))
    shipped = copy_checkpoints(results_dir, dest) if with_ledger else None
    results = results_frame(copied, trusted)
    board = leaderboard_frame(results)
    keys = signing_keys(copied, results) if with_ledger else []
    results["evidence"] = [Path(p).relative_to(dest).as_posix() if p else ""
                           for p in results["evidence"]]  # fmt: skip
    (dest / "README.md").write_text(dataset_card(board, repo_id, len(results), keys, shipped))
    board.attrs = {}  # pandas would store attrs in the parquet metadata
    results.to_parquet(dest / "results.parquet", index=False)
    board.to_parquet(dest / "leaderboard.parquet", index=False)
    files = sorted(p for p in dest.rglob("*") if p.is_file())
    return [(p.relative_to(dest).as_posix(), p.stat().st_size) for p in files]


@dataclass(frozen=True)
class Shipped:
    """One (task, seed)'s base model or oracle, and whether the dataset carries it."""

    task: str
    seed: int
    kind: str
    sha256: str
    included: bool


def copy_checkpoints(results_dir: Path, dest: Path) -> list[Shipped]:
    """The board's own publish carries the base models and oracles its results name, from
    `results_dir/checkpoints/` (`tracer-bench checkpoints pack`), each checked against its hash;
    a submission's carries none."""
    out = []
    for (task, seed, _), pair in sorted(board_pairs(results_dir).items()):
        for kind in KINDS:
            sha = pair.sha(kind)
            try:
                folder = board_checkpoint(results_dir, kind, sha)
            except CheckpointError:
                out.append(Shipped(task, seed, KINDS[kind], sha, False))
                continue
            target = dest / CHECKPOINTS / sha
            if not target.exists():
                copy_checkpoint(folder, target)
            out.append(Shipped(task, seed, KINDS[kind], sha, True))
    return out


def checkpoints_text(shipped: list[Shipped], repo_id: str) -> str:
    """The card's checkpoints section: each (task, seed)'s base model and oracle by sha256."""
    rows = "\n".join(
        f"| {s.task} | {s.seed} | {s.kind} | `{s.sha256}` | "
        + (f"`{CHECKPOINTS}/{s.sha256}/`" if s.included else "not published")
        + " |"
        for s in shipped
    )
    return f"""
## Checkpoints

The base model and the retrain oracle of each (task, seed), the ones every result of the board was
measured on (safetensors weights, the config as JSON, the tokenizer as JSON + safetensors),
named by the sha256 of their weights that the results record. Evaluate a method on them, on any
machine and without training them:
`tracer-bench run --tasks TASK --methods METHOD --seeds SEED --checkpoints hf://datasets/{repo_id}`.

| task | seed | model | sha256 | folder |
|---|---|---|---|---|
{rows}
"""


def signing_keys(copied: Path, results: pd.DataFrame) -> list[str]:
    """The public keys that sign the verified rows' ledger entries."""
    ledger = read_ledger(copied)
    names = [
        Path(p).relative_to("results").as_posix()
        for p, ok in zip(results["path"], results["verified"], strict=True)
        if ok
    ]
    return sorted({ledger[n]["key"] for n in names})


def _replaceable(folder: Path) -> bool:
    """An absent or empty folder, or one a previous publish wrote (nothing else is replaced)."""
    if not folder.exists():
        return True
    return folder.is_dir() and {p.name for p in folder.iterdir()} <= set(PUBLISHED)


def _write_atomic(
    results_dir: Path, final: Path, repo_id: str, with_ledger: bool, trusted: Mapping
) -> list[tuple[str, int]]:
    with folder_atomic(final) as tmp:
        return build_folder(results_dir, tmp, repo_id, with_ledger, trusted)


def out_problem(results_dir: Path, out_dir: Path) -> str:
    """Why `--out` cannot receive this folder's dataset ('' when it can): inside the results
    folder, or the folder the results lie in (publishing a published folder onto itself)."""
    res, out = results_dir.resolve(), out_dir.resolve()
    if out == res or res in out.parents:
        return f"--out {out_dir} lies inside the results folder {results_dir}"
    if out in res.parents:
        return f"--out {out_dir} holds the results folder {results_dir}: choose another"
    if not _replaceable(out_dir):
        return f"--out {out_dir} exists and is not a dataset folder; choose another"
    return ""


def publish(
    results_dir: str | Path,
    repo_id: str,
    token: str | None = None,
    create_pr: bool = False,
    out_dir: str | Path | None = None,
    *,
    dry_run: bool = False,
    task_files: Iterable[str | Path] = (),
    echo: Callable[[str], None] = print,
    trusted: Mapping | None = None,
) -> Published:
    """Validate `results_dir`, build the dataset folder and upload it to the dataset repo
    `repo_id` (a pull request if `create_pr`). The token: `token`, else huggingface_hub's
    (HF_TOKEN or the stored login); with none, or with `dry_run`, nothing is uploaded and the
    folder is kept (in `out_dir` or a temporary folder) with the list of operations printed.
    `trusted`: the public keys whose signed ledger entries are shown verified (the board's own
    publish; a submission, `create_pr`, may carry no ledger at all)."""
    results_dir = Path(results_dir)
    check_repo_id(repo_id)
    if not results_dir.is_dir():
        raise BenchError(f"results folder {results_dir} does not exist")
    if out_dir is not None and out_problem(results_dir, Path(out_dir)):
        raise BenchError(out_problem(results_dir, Path(out_dir)))
    ledgers = sorted(results_dir.rglob(LEDGER_NAME))
    if create_pr and ledgers:
        raise BenchError(f"{ledgers[0]}: a submission carries no verification ledger (only the "
                         "board's `verify` writes one): remove it")  # fmt: skip
    from leaderboard.validate import validate

    trusted = trusted or {}
    problems = validate(results_dir, task_files, trusted=trusted)
    if problems:
        first = " ".join(str(problems[0]).split())
        raise BenchError(
            f"{results_dir} has {len(problems)} validation problem(s), first: {first} "
            f"(run `tracer-bench validate {results_dir}` for all)"
        )
    token = None if dry_run else (token or get_token())
    keep = out_dir is not None or token is None
    root = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="tracer-pub-"))
    folder = root if out_dir is not None else root / "dataset"
    try:
        files = _write_atomic(results_dir, folder, repo_id, not create_pr, trusted)
        how = "a pull request" if create_pr else "a commit to the main branch"
        if token is None:
            echo(f"dry run: nothing uploaded; the dataset folder is {folder}")
            if not create_pr:
                echo(f"would create dataset repo {repo_id} (if missing)")
            echo(f"would upload {len(files)} files to dataset repo {repo_id} as {how}:")
            for path, size in files:
                echo(f"  {path}  ({size} bytes)")
            return Published(folder, files, None)
        url = _upload(folder, repo_id, token, create_pr, len(files))
        echo(f"uploaded {len(files)} files to dataset repo {repo_id} as {how}: {url}")
        return Published(folder if keep else None, files, url)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _upload(folder: Path, repo_id: str, token: str, create_pr: bool, n: int) -> str:
    api = HfApi(token=token)
    try:
        if not create_pr:  # a submission to someone else's board cannot create their repo
            api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            create_pr=create_pr,
            commit_message=f"tracer-bench {__version__}: {n} files",
        )
    except Exception as exc:  # network / hub errors of any kind: one line, token scrubbed
        msg = " ".join(str(exc).replace(token, "***").split())
        raise BenchError(f"upload to {repo_id} failed: {type(exc).__name__}: {msg}") from None
    return str((info.pr_url if create_pr else None) or info.commit_url)
