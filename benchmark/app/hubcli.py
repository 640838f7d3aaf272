"""The `publish`, `validate` and `compare` subcommands (benchmark.app.cli wires `add_parsers` in).
Each handler returns the exit status; bad input raises BenchError (one stderr line, status 2)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from leaderboard.cli import add_trust_option
from tasks.errors import BenchError

KEY_HELP = "board-key.pem in the configuration folder, $TRACER_BENCH_CONFIG"
TASK_FILE_HELP = "a task .toml file to accept besides the standard suite (repeatable)"


def cmd_publish(args: argparse.Namespace) -> int:
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


def cmd_validate(args: argparse.Namespace) -> int:
    from benchmark.app.verify import reference_frame
    from benchmark.results.keys import trusted_keys
    from leaderboard.validate import validate

    recompute = reference_frame if args.recompute_reference else None
    problems = validate(args.path, args.task_file, recompute, trusted_keys(args.trust))
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s)" if problems else f"{args.path}: valid")
    return 1 if problems else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.metrics.registry import SUMMARY_METRICS
    from leaderboard.compare import compare, parse_tolerances

    default, per = parse_tolerances(args.tolerance)
    result = compare(
        args.a, args.b, default, args.metric or SUMMARY_METRICS, per, n_boot=args.n_boot
    )
    print(result.table())
    return 1 if result.regressions else 0


def cmd_key_create(args: argparse.Namespace) -> int:
    from benchmark.results.keys import create_key, default_key_path

    path = Path(args.out) if args.out else default_key_path()
    public = create_key(path)
    print(f"board key written to {path} (owner-only; keep it out of every results folder)",
          file=sys.stderr)  # fmt: skip
    print(public)
    return 0


def cmd_key_show(args: argparse.Namespace) -> int:
    from benchmark.results.keys import default_key_path, load_private, public_text

    key = load_private(Path(args.key) if args.key else default_key_path())
    print(public_text(key.public_key()))
    return 0


def cmd_key_trust(args: argparse.Namespace) -> int:
    from benchmark.results.keys import add_trusted

    print(f"trusted {args.public_key.strip()} (in {add_trusted(args.public_key)})")
    return 0


def cmd_key_resign(args: argparse.Namespace) -> int:
    from benchmark.results.keys import default_key_path, load_private, trusted_keys
    from benchmark.results.ledger import resign

    key = load_private(Path(args.key) if args.key else default_key_path())
    kept, dropped = resign(Path(args.results_dir), key, trusted_keys(args.trust))
    for line in dropped:
        print(f"dropped {line}")
    print(f"{kept} entries re-signed with the new key; {len(dropped)} dropped")
    return 1 if dropped else 0


def add_key_parsers(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("key", help="the board's signing key and the keys you trust (✓)")
    ksub = keys.add_subparsers(dest="key_command", required=True)
    p = ksub.add_parser("create", help="create the board's Ed25519 private key; print its "
                        "public key")  # fmt: skip
    p.add_argument("--out", metavar="FILE", help=f"where (default: {KEY_HELP})")
    p.set_defaults(func=cmd_key_create)
    p = ksub.add_parser("show", help="print the public key of the board's private key")
    p.add_argument("--key", metavar="FILE", help=f"the private key (default: {KEY_HELP})")
    p.set_defaults(func=cmd_key_show)
    p = ksub.add_parser("trust", help="add a public key to your trusted-keys.txt")
    p.add_argument("public_key", metavar="KEY", help="ed25519:<base64>")
    p.set_defaults(func=cmd_key_trust)
    p = ksub.add_parser("resign", help="key rotation: re-sign a board's ledger entries that "
                        "verify under a trusted (old) key with the new --key")  # fmt: skip
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--key", metavar="FILE", help=f"the new private key (default: {KEY_HELP})")
    add_trust_option(p)
    p.set_defaults(func=cmd_key_resign)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    add_key_parsers(sub)
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
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("validate", help="check a submission (results folder or result JSON)")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--task-file", action="append", default=[], help=TASK_FILE_HELP)
    p.add_argument(
        "--recompute-reference",
        action="store_true",
        help="also recompute the original model's and the oracle's evidence with this machine's "
        "models (cached or trained; they must be the checkpoints the results name)",
    )
    add_trust_option(p)
    p.set_defaults(func=cmd_validate)

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
    p.set_defaults(func=cmd_compare)
