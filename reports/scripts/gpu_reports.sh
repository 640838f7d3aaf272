#!/usr/bin/env bash
# The protocol 2.0 reports on a lent GPU machine (see reports/README.md). Step 1 (selection):
# `reports/scripts/tune_tracer.py` on validation targets of both public ML-100k tasks, seeds 0 and 1, the
# four (task, seed) selections side by side; its choice became TRACER 1.2's defaults. Step 2
# (report): the same variants on test targets (never used to choose), and every method x both
# tasks x seeds 0-2 with the defaults. Expects the harness importable (PYTHONPATH) and
# $TRACER_BENCH_CACHE holding the prepared features; writes under $1. STEPS: "select", "report".
set -euo pipefail
out=${1:?usage: gpu_reports.sh OUT [STEPS]}
steps=${2:-select report}
mkdir -p "$out"
export TRACER_BENCH_DEVICE=${TRACER_BENCH_DEVICE:-cuda} PYTHONUNBUFFERED=1
start=$(date +%s)
tune() {  # split, then (task, seed) pairs, each in its own process
    local split=$1; shift
    while [ $# -gt 0 ]; do
        OMP_NUM_THREADS=3 python3 reports/scripts/tune_tracer.py "$out/tune-$split.jsonl.$1.$2" "$1" "$2" \
            "$split" > "$out/tune-$split-$1-$2.log" 2>&1 &
        shift 2
    done
    wait
    cat "$out"/tune-"$split".jsonl.* > "$out/tune-$split.jsonl" && rm "$out"/tune-"$split".jsonl.*
}
pairs="ml100k-horror 0 ml100k-horror 1 ml100k-childrens 0 ml100k-childrens 1"
if [[ $steps == *select* ]]; then
    # shellcheck disable=SC2086
    tune valid $pairs
    echo "selected on validation: $(python3 reports/scripts/tune_tracer.py --best "$out/tune-valid.jsonl")"
fi
if [[ $steps == *report* ]]; then
    # shellcheck disable=SC2086
    tune test $pairs
    python3 -c "import sys; from benchmark.app.cli import main; sys.exit(main())" run \
        --tasks ml100k-horror ml100k-childrens --seeds 0 1 2 --jobs 6 --quiet --no-leaderboard \
        --out "$out/grid" 2>&1 | tail -n 5
fi
echo "total $(( $(date +%s) - start )) s"
rm -f "$out"/tune-*.log
