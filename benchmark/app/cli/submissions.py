"""`tracer-bench publish | validate | compare | verify`: results that travel. Publish a folder as
a Hugging Face dataset (a pull request: a submission), check a submission's files, compare two
result sets, re-evaluate a submission's artifacts and sign what reproduced."""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

from benchmark.app.cli.board import add_trust_option
from benchmark.app.cli.run import add_checkpoint_options, checkpoint_source
from tasks.errors import BenchError

TASK_FILE_HELP = "a task .toml file to accept besides the standard suite (repeatable)"


def _cmd_publish(args: argparse.Namespace) -> int:
    from benchmark.results.keys import trusted_keys
    from leaderboard.publish import publish

    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise BenchError(f"environment variable {args.token_env} is not set or empty")
    publish(
        args.results_dir,
        args.repo,
        token=token,
        create_pr=args.create_pr,
        out_dir=args.out,
        dry_run=args.dry_run,
        task_files=args.task_file,
        trusted=trusted_keys(args.trust),
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from benchmark.app.verify import reference_frame
    from benchmark.results.keys import trusted_keys
    from leaderboard.validate import validate

    source = checkpoint_source(args)
    recompute = None
    if source is not None:  # the board's models at hand: recompute by default
        recompute = functools.partial(reference_frame, checkpoints=source)
    elif args.recompute_reference:
        recompute = reference_frame
    problems = validate(args.path, args.task_file, recompute, trusted_keys(args.trust))
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s)" if problems else f"{args.path}: valid")
    return 1 if problems else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.metrics.registry import SUMMARY_METRICS
    from leaderboard.compare import compare, parse_tolerances

    default, per = parse_tolerances(args.tolerance)
    result = compare(
        args.a, args.b, default, args.metric or SUMMARY_METRICS, per, n_boot=args.n_boot
    )
    print(result.table())
    return 1 if result.regressions else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when every cell reproduced (verified results written), 1 on a mismatch, 2 on bad
    input (a missing or tampered artifact, an unknown task)."""
    from benchmark.app.verify import verify_result
    from benchmark.recommender.backbone import set_threads
    from benchmark.results.keys import default_key_path, load_private
    from benchmark.results.record import result_files

    key = load_private(Path(args.key) if args.key else default_key_path())  # before any work
    source = checkpoint_source(args)
    set_threads(args.threads)
    root = Path(args.submission)
    if not root.exists():
        raise BenchError(f"no such file or folder: {root}")
    files = [root] if root.is_file() else result_files(root)
    if not files:
        raise BenchError(f"{root}: no result files (<task>/<method>/seed<N>.json)")
    failed = 0
    for f in files:
        path, mismatches = verify_result(f, Path(args.out), args.task_file, key, source)
        if mismatches:
            failed += 1
            print(
                f"{f}: NOT verified: {'; '.join(mismatches[:3])}"
                + (f" (+{len(mismatches) - 3} more)" if len(mismatches) > 3 else "")
            )
        else:
            print(f"{f}: verified -> {path}")
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="publish a results folder as a Hugging Face dataset")
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="the dataset repo")
    p.add_argument("--create-pr", action="store_true", help="open a pull request (a submission)")
    p.add_argument("--out", metavar="DIR", help="write the dataset folder here (kept)")
    p.add_argument(
        "--token-env",
        metavar="VAR",
        help="environment variable holding the token (default: HF_TOKEN or the stored login; "
        "no token = a dry run)",
    )
    p.add_argument("--dry-run", action="store_true", help="never upload, even with a token")
    p.add_argument("--task-file", action="append", default=[], help=TASK_FILE_HELP)
    add_trust_option(p)
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("validate", help="check a submission (results folder or result JSON)")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--task-file", action="append", default=[], help=TASK_FILE_HELP)
    p.add_argument(
        "--recompute-reference",
        action="store_true",
        help="also recompute the original model's and the oracle's evidence with this machine's "
        "models (cached or trained; they must be the checkpoints the results name); on by "
        "default with --checkpoints",
    )
    add_checkpoint_options(p)
    add_trust_option(p)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "compare",
        help="compare result set B against A; exit 1 on a significant regression beyond tolerance",
    )
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="[METRIC=]X",
        help="absolute tolerance, for all metrics or one (repeatable; default 0.02)",
    )
    p.add_argument("--metric", action="append", default=[], help="metric to compare (repeatable)")
    p.add_argument(
        "--n-boot", type=int, default=1000, metavar="N",
        help="bootstrap replicates of the paired difference (default 1000)",
    )  # fmt: skip
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "verify", help="re-evaluate a submission's artifacts here; write the verified results"
    )
    p.add_argument("submission", help="a result JSON or a results folder, with artifacts beside")
    p.add_argument("--out", default="verified", help="verified results go here (default: verified)")
    p.add_argument("--key", metavar="FILE", help="the board's private key that signs the ledger "
                   "(default: board-key.pem in the configuration folder; `tracer-bench key "
                   "create`)")  # fmt: skip
    p.add_argument("--task-file", action="append", default=[], help="a task .toml (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    add_checkpoint_options(p)
    p.set_defaults(func=_cmd_verify)
