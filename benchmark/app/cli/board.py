"""`tracer-bench leaderboard RESULTS_DIR [--format md|csv|latex|html] [--compact | --view
full|compact|headline] [--out FILE] [--plots DIR] [--site DIR] [--n-boot N]`: the board's tables,
trade-off plots and static page (built by `leaderboard`); and `--trust`, the option of every
command that shows which rows are verified; `tracer-bench checkpoints pack RESULTS_DIR`: the
board's base models and oracles beside its results."""

from __future__ import annotations

import argparse
import sys

from benchmark.metrics.bootstrap import N_BOOT
from leaderboard.table import FORMATS, VIEWS


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    """Print (or write to --out) the leaderboard table; optionally write plots and the site."""
    from benchmark.results.keys import trusted_keys
    from benchmark.util.atomic import write_text_atomic
    from leaderboard.html import write_site
    from leaderboard.plot import write_plots
    from leaderboard.sequence import format_sequence_tables, write_sequence_plots
    from leaderboard.table import (
        COMPACT_METRICS,
        ResultsError,
        format_headline,
        format_table,
        leaderboard_table,
        load_results,
    )

    df = load_results(args.results_dir, trusted_keys(args.trust))
    table = leaderboard_table(df, n_boot=args.n_boot)
    view = args.view or ("compact" if args.compact else "full")
    if args.compact and view != "compact":
        raise ResultsError(f"--compact and --view {view} ask for two views: choose one")
    if view == "headline":
        text = format_headline(table, args.format)
    else:
        text = format_table(table, args.format, COMPACT_METRICS if view == "compact" else None)
    if args.out:
        print(f"wrote {write_text_atomic(args.out, text)}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    steps = format_sequence_tables(df, table) if args.format == "md" else ""
    if steps and not args.out:
        sys.stdout.write("\n" + steps + "\n")
    if args.plots:
        for path in [*write_plots(table, args.plots), *write_sequence_plots(df, table, args.plots)]:
            print(f"wrote {path}", file=sys.stderr)
    if args.site:
        print(f"wrote {write_site(args.results_dir, args.site, table=table)}", file=sys.stderr)
    if df.attrs.get("failed"):
        print(f"skipped {df.attrs['failed']} failed runs (seed<N>.failed.json)", file=sys.stderr)
    return 0


def _cmd_checkpoints_pack(args: argparse.Namespace) -> int:
    """Copy the base models and oracles a board's results name from this machine's cache into
    the board's checkpoints/ folder; exit 1 when some are cached nowhere here."""
    from benchmark.results.checkpoints import CHECKPOINTS, pack

    written, missing = pack(args.results_dir)
    for sha in written:
        print(f"wrote {args.results_dir}/{CHECKPOINTS}/{sha}")
    for sha in missing:
        print(f"not in this machine's cache: {sha} (train it here, or take it from a board "
              "that has it)")  # fmt: skip
    print(f"{len(written)} written, {len(missing)} missing")
    return 1 if missing else 0


def add_trust_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust", action="append", default=[], metavar="KEY",
        help="a public key (ed25519:…) or a file of them whose signed ledger entries show ✓ "
        "(repeatable; besides the keys in your trusted-keys.txt, `tracer-bench key trust`). "
        "Never read from the results folder: with no trusted key, no row is verified",
    )  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "leaderboard",
        help="leaderboard tables, trade-off plots and a static HTML page from a results folder",
        description="Mean ± std over seeds per (task, data hash, backbone, method, config); "
        "within each task, rank = 1 + the methods whose erasure score is significantly better "
        "(paired bootstrap over seeds and evaluation examples, 95 %); the retrain row scored "
        "against another seed's oracle is the noise ceiling.",
    )
    p.add_argument(
        "results_dir", metavar="RESULTS_DIR", help="folder of <task>/<method>/seed<N>.json"
    )
    p.add_argument("--format", choices=FORMATS, default="md", help="table format (default md)")
    p.add_argument(
        "--compact", action="store_true", help="only the headline, its parts and key metrics"
    )
    p.add_argument(
        "--view", choices=VIEWS, default=None,
        help="which columns: full (default), compact (the same as --compact) or headline (rank, "
        "method, seeds, erasure score with its 95%% interval, forgetting part, utility part: "
        "the README's tables)",
    )  # fmt: skip
    p.add_argument("--out", metavar="FILE", help="write the table to FILE instead of stdout")
    p.add_argument("--plots", metavar="DIR", help="write one trade-off plot (PNG) per task here")
    add_trust_option(p)
    p.add_argument("--site", metavar="DIR", help="write a self-contained DIR/index.html")
    p.add_argument(
        "--n-boot", type=int, default=N_BOOT, metavar="N",
        help=f"bootstrap replicates for ranks and intervals (default {N_BOOT})",
    )  # fmt: skip
    p.set_defaults(func=_cmd_leaderboard)

    p = sub.add_parser(
        "checkpoints",
        help="a board's base models and oracles (`pack`: copy them from this machine's cache "
        "into the board, so `--checkpoints BOARD` evaluates on them anywhere)",
    )
    action = p.add_subparsers(dest="action", required=True)
    q = action.add_parser("pack", help="copy the cached checkpoints the results name into "
                          "RESULTS_DIR/checkpoints/<sha256>/")  # fmt: skip
    q.add_argument("results_dir", metavar="RESULTS_DIR")
    q.set_defaults(func=_cmd_checkpoints_pack)
