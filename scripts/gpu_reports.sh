#!/usr/bin/env bash
# The protocol 2.0 reports on a lent GPU machine (see reports/README.md): TRACER's defaults
# selected on validation targets (both public ML-100k tasks, seeds 0 and 1; the four (task, seed)
# selections side by side), then every method x both tasks x seeds 0-2 with the selected TRACER
# config. Expects the harness importable (PYTHONPATH) and $TRACER_BENCH_CACHE holding the
# prepared features; writes under $1.
set -euo pipefail
out=${1:?usage: gpu_reports.sh OUT}
mkdir -p "$out"
export TRACER_BENCH_DEVICE=${TRACER_BENCH_DEVICE:-cuda} PYTHONUNBUFFERED=1
start=$(date +%s)
for task in ml100k-horror ml100k-childrens; do
    for seed in 0 1; do
        OMP_NUM_THREADS=4 python3 scripts/tune_tracer.py "$out/tune-$task-$seed.jsonl" "$task" \
            "$seed" > "$out/tune-$task-$seed.log" 2>&1 &
    done
done
wait
cat "$out"/tune-*.jsonl > "$out/tune.jsonl"
flags=$(python3 scripts/tune_tracer.py --best "$out/tune.jsonl")
echo "selected on validation: ${flags:-defaults} ($(( $(date +%s) - start )) s)" | tee "$out/grid.log"
# shellcheck disable=SC2086
python3 -c "import sys; from benchmark.cli import main; sys.exit(main())" run \
    --tasks ml100k-horror ml100k-childrens --seeds 0 1 2 --jobs 6 --quiet --no-leaderboard \
    --out "$out/grid" $flags 2>&1 | tail -n 5 | tee -a "$out/grid.log"
echo "total $(( $(date +%s) - start )) s" | tee -a "$out/grid.log"
