"""The real ML-100k data from the RecBole wheel, prepared as the standard tasks."""

from __future__ import annotations

import numpy as np

from tasks import get_task, prepare_task, standard_tasks


def test_raw_counts_match_movielens(ml100k_horror):
    s = ml100k_horror.summary()
    assert (s["raw_users"], s["raw_items"], s["raw_interactions"]) == (943, 1682, 100_000)


def test_counts_after_5core(ml100k_horror):
    s = ml100k_horror.summary()
    # every ML-100k user has >= 20 ratings; the item 5-core drops the rarely rated films
    assert s["users"] == 943
    assert s["items"] == 1349
    assert s["interactions"] == 99_287
    assert s["forget_items"] == 80
    # protocol 2.0: the last 5 interactions of every user (all have >= 9) are test targets
    assert s["protocol"] == "last-n" and s["test_targets"] == 5 * 943
    assert (s["forget_test_targets"], s["retain_test_targets"]) == (264, 4451)
    assert s["forget_items"] + s["retain_items"] == s["items"]


def test_the_ml100k_concepts_share_one_base_hash(ml100k_horror):
    """One base model per dataset: Horror, Children's and Romance differ only in the concept."""
    others = [prepare_task(get_task(n)) for n in ("ml100k-childrens", "ml100k-romance")]
    assert {t.base_hash for t in others} == {ml100k_horror.base_hash}
    assert len({t.content_hash for t in [ml100k_horror, *others]}) == 3
    assert ml100k_horror.summary()["base_hash"] == ml100k_horror.base_hash


def test_every_test_target_in_exactly_one_test_pool(ml100k_horror):
    t = ml100k_horror
    pools = np.concatenate([t.forget_test, t.retain_test])
    assert len(pools) == len(t.test_pos) and len(np.unique(pools)) == len(t.test_pos)
    assert t.forget_mask[t.test_items[t.forget_test]].all()
    assert not t.forget_mask[t.test_items[t.retain_test]].any()


def test_no_test_or_valid_item_leaks_into_training(ml100k_horror):
    t = ml100k_horror
    for u in range(t.n_users):
        seq = t.sequence(u)
        train, valid, test = seq[:-6], seq[-6], seq[-5:]
        assert not np.isin(test, train).any() and valid not in train and valid not in test
    # training targets never reach a user's validation or test position
    assert not np.isin(t.train_pos, t.test_pos).any()
    assert not np.isin(t.train_pos, t.valid_pos).any()
    assert (t.train_pos > t.seq_offsets[t.train_user]).all()  # each target has a history


def test_sequences_are_chronological_with_item_tiebreak(ml100k_horror):
    t = ml100k_horror
    for u in range(0, t.n_users, 37):
        sl = slice(t.seq_offsets[u], t.seq_offsets[u + 1])
        order = np.lexsort((t.seq_items[sl], t.seq_times[sl]))
        assert (order == np.arange(len(order))).all()


def test_forget_and_retain_training_data_partition(ml100k_horror):
    t = ml100k_horror
    both = np.concatenate([t.d_forget, t.d_retain])
    assert len(np.unique(both)) == len(t.train_pos) == len(both)
    assert t.forget_mask[t.seq_items[t.train_pos[t.d_forget]]].all()
    assert np.isin(t.forget_set, t.d_forget).all()
    assert len(t.forget_set) == min(2000, len(t.d_forget))


def test_history_is_the_recent_past(ml100k_horror):
    t = ml100k_horror
    pos = int(t.test_pos[5])
    hist = t.history(pos)
    assert len(hist) == t.spec.preprocess.max_history
    assert (hist == t.seq_items[pos - len(hist) : pos]).all()


def test_hash_is_stable_across_rebuilds(ml100k_horror):
    again = prepare_task(get_task("ml100k-horror"), rebuild=True)
    assert again.content_hash == ml100k_horror.content_hash
    assert (again.seq_items == ml100k_horror.seq_items).all()


def test_standard_suite_and_concepts():
    suite = standard_tasks()
    assert {"ml100k-horror", "ml100k-childrens", "ml100k-romance", "ml1m-horror"} <= set(suite)
    assert sum(s.dataset.source == "amazon-2023" for s in suite.values()) == 2
    kids = prepare_task(suite["ml100k-childrens"])
    assert kids.forget_items.size > 0
    assert all("Children's" in kids.item_labels(i) for i in kids.forget_items)
    assert all("Children's" not in kids.item_labels(i) for i in kids.retain_items[:50])
