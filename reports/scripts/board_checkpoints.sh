#!/bin/bash
# Issue 45's checks of a board's checkpoints, on one machine (reports/board-checkpoints-cpu.md).
# A machine whose own training gives other bits is stood in for by training at another thread
# count (the board's models were trained with one thread per process): its own models differ
# from the board's, then `run --checkpoints` replaces them with the board's and the new NPO row
# must validate beside the board's cells.
# usage: bash reports/scripts/board_checkpoints.sh [WORK_FOLDER]
set -euo pipefail
board=reports/cpu-protocol2-horror
work=${1:-/tmp/board-checkpoints}
rm -rf "$work" && mkdir -p "$work"
export TRACER_BENCH_CACHE="$work/cache"
echo "== this machine's own models, trained with 2 threads"
tracer-bench run --tasks ml100k-horror --methods retrain --seeds 0 --threads 2 --quiet \
    --no-leaderboard --out "$work/own"
python - "$work/own" "$board" <<'PY'
import json, sys
own = json.load(open(f"{sys.argv[1]}/ml100k-horror/retrain/seed0.json"))
board = json.load(open(f"{sys.argv[2]}/ml100k-horror/retrain/seed0.json"))
for part in ("backbone", "oracle"):
    a, b = own[part]["checkpoint_sha256"], board[part]["checkpoint_sha256"]
    print(f"{part}: own {a[:12]}, board {b[:12]}, {'same' if a == b else 'other bits'}")
PY
echo "== NPO on the board's checkpoints, 2 threads"
/usr/bin/time -f "%e s wall, %M KiB peak" tracer-bench run --tasks ml100k-horror --methods npo \
    --seeds 0 --threads 2 --quiet --no-leaderboard --checkpoints "$board" --out "$work/npo"
echo "== the new row beside the board's cells"
cp -r "$board" "$work/board" && rm -rf "$work/board/checkpoints"
cp "$work/npo/ml100k-horror/npo/"seed0.* "$work/board/ml100k-horror/npo/"
tracer-bench validate "$work/board"
echo "== the new row against the board's own NPO seed-0 row (what another thread count moves)"
python reports/scripts/same_metrics.py "$board" "$work/npo" --common || true
echo "== a tampered checkpoint"
cp -r "$board" "$work/tampered"
sha=$(python -c "import json; print(json.load(open('$board/ml100k-horror/npo/seed0.json'))['backbone']['checkpoint_sha256'])")
python - "$work/tampered/checkpoints/$sha/model.safetensors" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[-1] ^= 1; open(p, "wb").write(bytes(b))
PY
set +e
tracer-bench run --tasks ml100k-horror --methods npo --seeds 0 --quiet --no-leaderboard \
    --checkpoints "$work/tampered" --out "$work/refused"
echo "exit status $?"
