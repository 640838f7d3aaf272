"""The `leaderboard` subcommand: `leaderboard RESULTS_DIR [--format md|csv|latex|html]
[--compact | --view full|compact|headline] [--out FILE] [--plots DIR] [--site DIR] [--n-boot N]`.
Errors are BenchError (one line, exit status 2)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from benchmark.metrics.registry import N_BOOT
from leaderboard.table import FORMATS, VIEWS


def plot_name(identity: str, data_hash: str, backbone: str, unique: bool) -> str:
    """A file name for a task group's plot: the task identity, plus short hashes when the
    identity has several (data hash, backbone) groups."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", identity.replace("@", "-"))
    return f"{stem}.png" if unique else f"{stem}-{data_hash[:8]}-{backbone[:8]}.png"


def write_plots(table, out_dir: str | Path) -> list[Path]:
    """One trade-off plot per task group under `out_dir`; returns the paths written."""
    from leaderboard.plot import tradeoff_plot
    from leaderboard.table import sections

    groups = [keys for keys, _ in sections(table)]
    paths = []
    for identity, data_hash, backbone in groups:
        unique = sum(g[0] == identity for g in groups) == 1
        path = Path(out_dir) / plot_name(identity, data_hash, backbone, unique)
        paths.append(
            tradeoff_plot(table, identity, path, data_hash=data_hash, backbone_hash=backbone)
        )
    return paths


def run(args: argparse.Namespace) -> int:
    """Print (or write to --out) the leaderboard table; optionally write plots and the site."""
    from benchmark.results.keys import trusted_keys
    from benchmark.util.atomic import write_text_atomic
    from leaderboard.html import render_page
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
    if args.plots:
        for path in write_plots(table, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    if args.site:
        page = render_page(table, source=Path(args.results_dir).name)
        print(f"wrote {write_text_atomic(Path(args.site) / 'index.html', page)}", file=sys.stderr)
    if df.attrs.get("failed"):
        print(f"skipped {df.attrs['failed']} failed runs (seed<N>.failed.json)", file=sys.stderr)
    return 0


def add_trust_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust", action="append", default=[], metavar="KEY",
        help="a public key (ed25519:…) or a file of them whose signed ledger entries show ✓ "
        "(repeatable; besides the keys in your trusted-keys.txt, `tracer-bench key trust`). "
        "Never read from the results folder: with no trusted key, no row is verified",
    )  # fmt: skip


def add_parsers(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `leaderboard` subcommand to an argparse subparsers object; its `func(args)`
    returns the exit code."""
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
    p.set_defaults(func=run)
    return p
