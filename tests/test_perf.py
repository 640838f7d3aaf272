"""Smoke test of the perf harness: a tiny model, a few batches, a few users; no timing asserts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.app.perf import (
    allowed_next_tokens,
    format_perf_table,
    item_tokens,
    run_perf,
    window_examples,
)
from benchmark.recommender.model import ModelConfig


def radix_codes(n_items: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Unique 4-level SIDs without fitting a tokenizer: the item index in base 8."""
    i = np.arange(n_items)
    codes = np.stack([i % 8, (i // 8) % 8, (i // 64) % 8, i // 512], axis=1)
    return codes, (8, 8, 8, int(codes[:, 3].max()) + 1)


def test_window_examples_are_the_window_targets():
    inp = np.array([[5, 6, 7, -1], [1, 2, -1, -1]])
    tgt = np.array([[6, 7, 8, -1], [2, 3, -1, -1]])
    hist, lengths, target = window_examples(inp, tgt, tgt >= 0)
    assert target.tolist() == [6, 7, 8, 2, 3]
    assert lengths.tolist() == [1, 2, 3, 1, 2]
    assert hist[2].tolist() == [5, 6, 7, -1] and hist[4].tolist() == [1, 2, -1, -1]


def test_token_trie_covers_exactly_the_items():
    codes, sizes = radix_codes(70)
    tokens = item_tokens(codes, sizes)
    allowed = allowed_next_tokens(tokens)
    assert allowed[()] == list(range(3, 11))  # level-1 codes after the 3 specials
    for row in tokens.tolist():
        for lv in range(len(row)):
            assert row[lv] in allowed[tuple(row[:lv])]
    assert sum(len(v) for k, v in allowed.items() if len(k) == 3) == 70


def test_run_perf_smoke(ml100k_horror):
    # the peer is a Hugging Face T5 (the dev extra installs transformers, so CI runs this)
    pytest.importorskip("transformers", reason="needs transformers (pip install -e '.[dev]')")
    codes, sizes = radix_codes(ml100k_horror.n_items)
    cfg = ModelConfig(
        sizes=sizes, d_model=32, n_heads=2, n_enc_layers=1, n_dec_layers=1, d_ff=64, max_history=10
    )
    rows = run_perf(
        ml100k_horror, codes, sizes, cfg, batches=2, seed=0, batch_size=4, hf_batch_size=32,
        decode_users=12, decode_chunk=6, threads=1, matmul_size=256, progress=False,
    )  # fmt: skip
    assert len(rows) >= 8
    for row in rows:
        assert row["ours"] > 0, row
        if row["peer_value"] is not None:
            assert row["peer_value"] > 0 and math.isfinite(row["ratio"]) and row["ratio"] > 0, row
    decode = next(r for r in rows if r["measure"].startswith("top-10 decode"))
    assert "invalid slots ours 0, HF 0" in decode["note"]
    assert "train examples/s" in format_perf_table(rows)


def test_breakdown_sums_a_runs_recorded_costs(tiny_results, capsys):
    """`tracer-bench perf --breakdown`: every step's seconds come from the results' costs."""
    import json

    from benchmark.app.breakdown import breakdown
    from benchmark.app.cli import main

    rows = dict(breakdown(tiny_results))
    recs = [json.loads(f.read_text()) for f in sorted(tiny_results.rglob("seed*.json"))]
    per_seed = {r["seed"]: r["cost"] for r in recs}
    assert rows["base model training"] == pytest.approx(
        sum(c["base_seconds"] for c in per_seed.values())
    )
    assert rows["oracle training"] == pytest.approx(
        sum(c["retrain_seconds"] for c in per_seed.values())
    )
    assert rows["unlearning: ga"] == pytest.approx(
        sum(r["cost"]["unlearn_seconds"] for r in recs if r["method"]["name"] == "ga")
    )
    assert rows["evaluation: latent"] == pytest.approx(
        sum(r["cost"]["evaluation_parts"]["latent"] for r in recs)
    )
    assert main(["perf", "--breakdown", str(tiny_results), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "unlearning: tracer" in out and "100.0%" in out and "GFLOP/s" in out


def test_breakdown_counts_a_shared_base_model_once(tiny_results, tmp_path):
    """Two concepts of one dataset share the base model: its training counts once, each
    concept's oracle training counts for itself."""
    import json
    import shutil

    from benchmark.app.breakdown import breakdown

    one = dict(breakdown(tiny_results))
    shutil.copytree(tiny_results, tmp_path / "r")
    (task,) = [p for p in tiny_results.iterdir() if p.is_dir()]
    other = tmp_path / "r" / f"{task.name}-other"
    shutil.copytree(task, other)
    for f in other.rglob("seed*.json"):
        rec = json.loads(f.read_text())
        rec["task"]["identity"] = "other@1.0"
        f.write_text(json.dumps(rec))
    two = dict(breakdown(tmp_path / "r"))
    assert two["base model training"] == pytest.approx(one["base model training"])
    assert two["oracle training"] == pytest.approx(2 * one["oracle training"])


def test_breakdown_of_no_results_is_an_error(tmp_path):
    from benchmark.app.breakdown import breakdown
    from tasks.errors import BenchError

    with pytest.raises(BenchError, match="no result files"):
        breakdown(tmp_path)
