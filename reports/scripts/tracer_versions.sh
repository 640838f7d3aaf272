#!/bin/bash
# A TRACER version regression-tested the way a maintainer would (issue 46): on a committed board,
# on the board's own checkpoints, the TRACER cells (the method and its ablations) are run again at
# the new version and TRACER 1.2 beside them as `tracer-1.2`; every other cell stays as it is.
# Prints `compare` old -> new for the TRACER rows, and whether `tracer-1.2` reproduces the
# board's old `tracer` cells (the same computation under its new name).
# usage: bash reports/scripts/tracer_versions.sh BOARD TASK SEED... (Amazon boards: with
#        TRACER_BENCH_DATA set)
set -euo pipefail
board=$1 task=$2
shift 2
old=/tmp/tracer-versions/$(basename "$board")-before
rm -rf "$old" && mkdir -p "$(dirname "$old")"
cp -r "$board" "$old" && rm -rf "$old/checkpoints"
for m in tracer tracer-noreassign tracer-nocoherence; do
    # the cells of the previous version; kept in $old and in git history
    if [ -d "$board/$task/$m" ] && grep -q '"version": "1.2"' "$board/$task/$m/seed$1.json"; then
        rm -rf "${board:?}/$task/$m"
    fi
done
tracer-bench run --tasks "$task" --methods tracer tracer-noreassign tracer-nocoherence tracer-1.2 \
    --seeds "$@" --checkpoints "$board" --quiet --no-leaderboard --out "$board"
tracer-bench validate "$board" --checkpoints "$board"
echo "== compare: the board before (TRACER 1.2) -> after (TRACER 1.3)"
tracer-bench compare "$old" "$board" || true
echo "== tracer-1.2 against the board's old tracer cells"
mkdir -p "$old-12/$task"
cp -r "$old/$task/tracer" "$old-12/$task/tracer-1.2"
python reports/scripts/same_metrics.py "$old-12" "$board" --common || true
