#!/usr/bin/env bash
# The protocol 2.0 reports on a lent GPU machine (see reports/README.md): TRACER's defaults
# selected on validation targets (both public ML-100k tasks, seeds 0 and 1), then every method x
# both tasks x seeds 0-2 with the selected TRACER config. Expects the harness importable
# (PYTHONPATH) and $TRACER_BENCH_CACHE holding the prepared features; writes under $1.
set -euo pipefail
out=${1:?usage: gpu_reports.sh OUT}
mkdir -p "$out"
export TRACER_BENCH_DEVICE=${TRACER_BENCH_DEVICE:-cuda} PYTHONUNBUFFERED=1
tb() { python3 -c "import sys; from benchmark.cli import main; sys.exit(main())" "$@"; }
start=$(date +%s)
python3 scripts/tune_tracer.py "$out/tune.jsonl" ml100k-horror,ml100k-childrens 0,1 \
    > "$out/tune.log" 2>&1
flags=$(python3 scripts/tune_tracer.py --best "$out/tune.jsonl")
echo "selected on validation: ${flags:-defaults} ($(( $(date +%s) - start )) s)" | tee "$out/grid.log"
# shellcheck disable=SC2086
tb run --tasks ml100k-horror ml100k-childrens --seeds 0 1 2 --jobs 3 --quiet --no-leaderboard \
    --out "$out/grid" $flags 2>&1 | tail -n 5 | tee -a "$out/grid.log"
echo "total $(( $(date +%s) - start )) s" | tee -a "$out/grid.log"
