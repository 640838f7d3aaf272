#!/usr/bin/env bash
# Issue 42's cases, as a dishonest submitter would try them: each command and what it printed
# (stdout and stderr) and its exit status. Runs in a temporary folder on a copy of a committed
# board (reports/cpu-protocol2-horror) and on a tiny run with artifacts; nothing outside it is
# written. `bash reports/scripts/hostile_inputs.sh > reports/hostile-inputs-cpu.md`
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d /tmp/tracer-hostile-XXXX)"
export TRACER_BENCH_CACHE="$WORK/cache" TRACER_BENCH_CONFIG="$WORK/config"
cd "$WORK"

show() {  # the command, its output, its exit status and peak RSS
  echo '```'
  echo "\$ $*"
  /usr/bin/time -f "%M" -o "$WORK/rss" "$@" > "$WORK/out" 2>&1
  local code=$?
  sed -e "s#$WORK#\$WORK#g" "$WORK/out" | cut -c1-400 | tail -n 12
  echo "[exit $code, peak RSS $(( $(tail -n 1 "$WORK/rss") / 1024 )) MiB]"
  echo '```'
}

echo "# Hostile inputs (issue 42): commands and outputs"
echo
echo "Made by \`bash reports/scripts/hostile_inputs.sh\` on $(lscpu | sed -n 's/^Model name: *//p'),"
echo "$(date -u +%Y-%m-%d), harness $(tracer-bench --version | cut -d' ' -f2). \$WORK is a temporary folder."
echo

echo "## 1. A ledger shipped with a folder gives no ✓"
cp -r "$ROOT/reports/cpu-protocol2-horror" board
python - <<'EOF'
import hashlib, json, pathlib
root = pathlib.Path("board")
lines = []
for f in sorted(root.rglob("seed*.json")):
    ev = f.with_name(f.name.replace(".json", ".evidence.parquet"))
    lines.append(json.dumps({"result": f.relative_to(root).as_posix(),
        "result_sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
        "evidence_sha256": hashlib.sha256(ev.read_bytes()).hexdigest()}))
(root / "verification-ledger.jsonl").write_text("\n".join(lines) + "\n")
EOF
tracer-bench key create > board.pub 2>/dev/null
show tracer-bench leaderboard board --compact --trust "$(cat board.pub)"
echo "✓ in that table: $(tracer-bench leaderboard board --trust "$(cat board.pub)" 2>/dev/null | grep -c '✓')"
echo
show tracer-bench validate board --trust "$(cat board.pub)"
show tracer-bench publish board --repo org/board --dry-run --create-pr --out pr
echo

echo "## 2. Task files"
sed -e 's/^version = .*/version = "..\/..\/..\/escaped\/x"/' \
  "$ROOT/tasks/standard/ml100k-horror.toml" > escape.toml 2>/dev/null || true
if [ ! -s escape.toml ]; then
  printf 'name = "x"\nversion = "../../../escaped/x"\n[dataset]\nsource = "ml-100k"\n[concept]\nlabel = "Horror"\n' > escape.toml
fi
show tracer-bench tasks prepare escape.toml
echo "written outside the cache: $(ls -d "$WORK/escaped" 2>/dev/null || echo nothing)"
printf 'name = "everything"\nversion = "1.0"\n[dataset]\nsource = "ml-100k"\n[concept]\nlabel = "Drama"\n' > ok.toml
printf 'name = "everything"\nversion = "1.0"\n[dataset]\nsource = "atomic"\npath = "%s/all"\n[preprocess]\nuser_core = 3\nitem_core = 1\n[concept]\nlabel = "Scary"\n' "$WORK" > all.toml
mkdir -p all
python - "$WORK/all" <<'EOF'
import sys, pathlib
d = pathlib.Path(sys.argv[1])
inter = ["user_id:token\titem_id:token\ttimestamp:float"] + [
    f"{u}\t{(u * 3 + k) % 12 + 1}\t{k}" for u in range(20) for k in range(8)]
items = ["item_id:token\tclass:token_seq"] + [f"{i}\tScary" for i in range(1, 13)]
(d / "all.inter").write_text("\n".join(inter) + "\n")
(d / "all.item").write_text("\n".join(items) + "\n")
EOF
show tracer-bench tasks prepare all.toml
echo

echo "## 3. Result files"
cp -r board deep && rm deep/verification-ledger.jsonl
f=$(ls deep/*/tracer/seed0.json)
python -c "import sys; open(sys.argv[1],'w').write('{\"a\": ' + '[' * 10000 + ']' * 10000 + '}')" "$f"
show tracer-bench leaderboard deep
show tracer-bench publish deep --repo org/b --dry-run --out pub
cp -r board dup && rm dup/verification-ledger.jsonl
f=$(ls dup/*/tracer/seed0.json)
python -c "import sys; p=sys.argv[1]; t=open(p).read(); open(p,'w').write(t.replace('\"seed\":', '\"seed\": 7, \"seed\":', 1))" "$f"
show tracer-bench leaderboard dup
cp -r board link && rm link/verification-ledger.jsonl
f=$(ls link/*/tracer/seed0.json); mv "$f" outside.json; ln -s "$WORK/outside.json" "$f"
show tracer-bench leaderboard link
cp -r board ranks && rm ranks/verification-ledger.jsonl
python - <<'EOF'
import glob, pandas as pd
p = glob.glob("ranks/*/tracer/seed0.evidence.parquet")[0]
ev = pd.read_parquet(p); ev.loc[ev["latent_rank"].notna(), "latent_rank"] = 1e12; ev.to_parquet(p)
EOF
show tracer-bench validate ranks
cp -r board beam && rm beam/verification-ledger.jsonl
python - <<'EOF'
import glob, json
p = glob.glob("beam/*/tracer/seed0.json")[0]
d = json.load(open(p)); d["evaluation"]["beam"] = 1; d["evaluation"]["relearn_lr"] = 100.0
json.dump(d, open(p, "w"))
EOF
show tracer-bench validate beam
show tracer-bench publish board --repo org/b --dry-run --out board/pub --trust "$(cat board.pub)"
echo '```'
echo '$ tracer-bench validate deep | head -1'
tracer-bench validate deep 2>&1 | head -1 | sed -e "s#$WORK#\$WORK#g" | cut -c1-300
echo "[exit statuses: ${PIPESTATUS[*]}]"
echo '```'
echo

echo "## 4. verify on crafted artifacts"
mkdir -p toy
python - "$WORK/toy" <<'EOF'
import sys, pathlib
d = pathlib.Path(sys.argv[1])
inter = ["user_id:token\titem_id:token\ttimestamp:float"] + [
    f"{u}\t{(u * 5 + k * 7) % 24 + 1}\t{k}" for u in range(40) for k in range(9)]
items = ["item_id:token\tclass:token_seq"] + [
    f"{i}\t{'Scary Drama' if i % 2 == 0 else 'Comedy'}" for i in range(1, 25)]
(d / "toy.inter").write_text("\n".join(inter) + "\n")
(d / "toy.item").write_text("\n".join(items) + "\n")
EOF
cat > toy.toml <<EOF
name = "toy-scary"
version = "1.0"
[dataset]
source = "atomic"
path = "$WORK/toy"
[preprocess]
user_core = 3
item_core = 1
max_history = 4
[concept]
label = "Scary"
[evaluation]
beam = 8
relearn_steps = 3
relearn_sample = 16
geometry_items = 10
[backbone.features]
text = "tfidf"
tfidf_dim = 8
collab_dim = 4
[backbone.sid]
levels = 2
codebook_size = 4
[backbone.arch]
d_model = 32
n_heads = 2
n_enc_layers = 1
d_ff = 64
dropout = 0.0
[backbone.train]
max_epochs = 3
batch_size = 16
lr = 5e-3
EOF
tracer-bench run --tasks toy.toml --methods tracer --save-artifacts --out sub --quiet \
  --no-leaderboard --jobs 1 > /dev/null 2>&1
art=sub/toy-scary/tracer/seed0.artifacts
craft() {  # a copy of the submission with one artifact file changed, manifest rehashed
  rm -rf crafted && cp -r sub crafted
  python - crafted/toy-scary/tracer/seed0.artifacts "$@" <<'EOF'
import hashlib, json, sys, pathlib
folder, name, code = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
doc = json.loads((folder / name).read_text())
exec(code)
(folder / name).write_text(json.dumps(doc))
m = json.loads((folder / "manifest.json").read_text())
m["files"][name] = {"bytes": (folder / name).stat().st_size,
                    "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}
(folder / "manifest.json").write_text(json.dumps(m))
rec = folder.parent / "seed0.json"
r = json.loads(rec.read_text())
r["artifacts"]["manifest_sha256"] = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
rec.write_text(json.dumps(r))
EOF
}
craft model.json 'doc["d_model"] = 4096'
show tracer-bench verify crafted --out verified --task-file toy.toml
craft model.json 'doc["sizes"][0] = 10**10'
show tracer-bench verify crafted --out verified --task-file toy.toml
craft sids.json 'doc["centroids"] = {"file": "../../../../../../etc/passwd", "sha256": "0"}'
show tracer-bench verify crafted --out verified --task-file toy.toml
craft ban.json 'doc["applies"] = {"x": 1}'
show tracer-bench verify crafted --out verified --task-file toy.toml
echo "written under --out: $(ls verified 2>/dev/null | wc -l) files"
show tracer-bench verify sub --out verified --task-file toy.toml
echo "✓ under the board key: $(tracer-bench leaderboard verified --trust "$(cat board.pub)" 2>/dev/null | grep -c '✓'), without: $(tracer-bench leaderboard verified 2>/dev/null | grep -c '✓')"
rm -rf "$WORK"
