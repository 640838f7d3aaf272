"""`tracer-bench key create | show | trust | resign`: the board's Ed25519 signing key (what
`verify` signs with) and the public keys you trust to show ✓."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.app.cli.board import add_trust_option

KEY_HELP = "board-key.pem in the configuration folder, $TRACER_BENCH_CONFIG"


def _cmd_key_create(args: argparse.Namespace) -> int:
    from benchmark.results.keys import create_key, default_key_path

    path = Path(args.out) if args.out else default_key_path()
    public = create_key(path)
    print(f"board key written to {path} (owner-only; keep it out of every results folder)",
          file=sys.stderr)  # fmt: skip
    print(public)
    return 0


def _cmd_key_show(args: argparse.Namespace) -> int:
    from benchmark.results.keys import default_key_path, load_private, public_text

    key = load_private(Path(args.key) if args.key else default_key_path())
    print(public_text(key.public_key()))
    return 0


def _cmd_key_trust(args: argparse.Namespace) -> int:
    from benchmark.results.keys import add_trusted

    print(f"trusted {args.public_key.strip()} (in {add_trusted(args.public_key)})")
    return 0


def _cmd_key_resign(args: argparse.Namespace) -> int:
    from benchmark.results.keys import default_key_path, load_private, trusted_keys
    from benchmark.results.ledger import resign

    key = load_private(Path(args.key) if args.key else default_key_path())
    kept, dropped = resign(Path(args.results_dir), key, trusted_keys(args.trust))
    for line in dropped:
        print(f"dropped {line}")
    print(f"{kept} entries re-signed with the new key; {len(dropped)} dropped")
    return 1 if dropped else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("key", help="the board's signing key and the keys you trust (✓)")
    ksub = keys.add_subparsers(dest="key_command", required=True)
    p = ksub.add_parser("create", help="create the board's Ed25519 private key; print its "
                        "public key")  # fmt: skip
    p.add_argument("--out", metavar="FILE", help=f"where (default: {KEY_HELP})")
    p.set_defaults(func=_cmd_key_create)
    p = ksub.add_parser("show", help="print the public key of the board's private key")
    p.add_argument("--key", metavar="FILE", help=f"the private key (default: {KEY_HELP})")
    p.set_defaults(func=_cmd_key_show)
    p = ksub.add_parser("trust", help="add a public key to your trusted-keys.txt")
    p.add_argument("public_key", metavar="KEY", help="ed25519:<base64>")
    p.set_defaults(func=_cmd_key_trust)
    p = ksub.add_parser("resign", help="key rotation: re-sign a board's ledger entries that "
                        "verify under a trusted (old) key with the new --key")  # fmt: skip
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--key", metavar="FILE", help=f"the new private key (default: {KEY_HELP})")
    add_trust_option(p)
    p.set_defaults(func=_cmd_key_resign)
