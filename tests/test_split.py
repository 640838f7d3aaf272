"""Split protocol 2.0 (DESIGN §3): the last n_test interactions per user are test targets, each
predicted from everything before it; the one before them is validation; at least 3 remain for
training; no test item is ever a training target. Leave-one-out stays selectable."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_atomic

from benchmark.recommender.data import histories, training_windows
from tasks import load_task_file, prepare_task
from tasks.errors import TaskFileError


def _task(tmp_path, lengths: list[int], split: str = "", k_values: str = "[5, 10]"):
    """Users with the given numbers of interactions over 60 items, timestamps = order."""
    inter, items = [], [f"{i}\tMovie {i}\t2000\t{'Scary' if i % 3 == 0 else 'Comedy'}"
                        for i in range(1, 61)]  # fmt: skip
    for u, n in enumerate(lengths, start=1):
        inter += [f"{u}\t{(u * 7 + k * 11) % 60 + 1}\t4\t{100 * k + u}" for k in range(n)]
    data = write_atomic(tmp_path / "data", inter, items)
    text = f"""name = "split-test"
version = "2.0"
k_values = {k_values}
[dataset]
source = "atomic"
path = "{data}"
[preprocess]
user_core = 3
item_core = 1
max_history = 50
[concept]
label = "Scary"
[split]
{split}
"""
    (tmp_path / "t.toml").write_text(text)
    return prepare_task(load_task_file(tmp_path / "t.toml"))


def test_last_n_targets_validation_and_training_parts(tmp_path):
    t = _task(tmp_path, [12, 9, 6, 5, 4])
    # n_test = 5, fewer for short histories so that >= 3 training interactions remain
    assert t.n_test_per_user.tolist() == [5, 5, 2, 1, 1]
    for u in range(t.n_users):
        start, end = t.seq_offsets[u], t.seq_offsets[u + 1]
        n = t.n_test_per_user[u]
        mine = t.test_pos[t.test_user == u]
        assert mine.tolist() == list(range(end - n, end))  # the last n, in order
        assert t.valid_pos[u] == end - n - 1  # the one just before them
        train = t.train_pos[t.train_user == u]
        assert train.tolist() == list(range(start + 1, t.valid_pos[u]))  # first item: history
        if end - start >= 5:
            assert t.valid_pos[u] - start >= 3
    assert not np.isin(t.train_pos, t.test_pos).any()
    assert not np.isin(t.train_pos, t.valid_pos).any()


def test_each_test_target_is_predicted_from_everything_before_it(tmp_path):
    t = _task(tmp_path, [12, 9])
    hist, lengths = histories(t, t.test_pos)
    for row, pos in enumerate(t.test_pos):
        u = t.test_user[row]
        assert lengths[row] == pos - t.seq_offsets[u]  # earlier test targets included
        assert (hist[row, : lengths[row]] == t.seq_items[t.seq_offsets[u] : pos]).all()


def test_no_test_item_is_ever_a_training_target(tmp_path):
    t = _task(tmp_path, [12, 9, 6])
    inp, tgt, msk = training_windows(t)
    trained = set(tgt[msk].tolist())
    for u in range(t.n_users):
        train_targets = t.seq_items[t.train_pos[t.train_user == u]]
        test_items = t.seq_items[t.test_pos[t.test_user == u]]
        assert not np.isin(test_items, train_targets).any()
    # the windows' targets are exactly the training targets (validation and test never appear)
    assert trained == set(t.seq_items[t.train_pos].tolist())
    assert len(tgt[msk]) == len(t.train_pos)


def test_leave_one_out_stays_selectable(tmp_path):
    t = _task(tmp_path, [12, 9, 6], split='protocol = "leave-one-out"')
    assert t.n_test_per_user.tolist() == [1, 1, 1]
    assert (t.test_pos == t.seq_offsets[1:] - 1).all()
    assert (t.valid_pos == t.seq_offsets[1:] - 2).all()


def test_split_fields_are_checked(tmp_path):
    with pytest.raises(TaskFileError, match="split.n_test"):
        _task(tmp_path, [9], split="n_test = 0")
    with pytest.raises(TaskFileError, match="split.protocol"):
        _task(tmp_path, [9], split='protocol = "random"')
    with pytest.raises(TaskFileError, match="must include 10"):
        _task(tmp_path, [9], k_values="[5, 20]")


def test_selection_view_splits_the_part_before_the_test_targets_again(tmp_path):
    from tasks.prepare import selection_view
    from tasks.spec import MIN_TRAIN

    t = _task(tmp_path, [14, 12, 9, 6])
    s = selection_view(t)
    assert s.spec.name == "split-test-selection" and s.content_hash != t.content_hash
    # view sequences of 9, 7, 4 and 4 items (each user's up to its validation target)
    assert s.n_test_per_user.tolist() == [5, 3, 1, 1]
    for u in range(t.n_users):
        # the view's sequence is the task's up to and including its validation target
        assert s.sequence(u).tolist() == t.seq_items[t.seq_offsets[u] : t.valid_pos[u] + 1].tolist()
        # ... split by the same protocol: the real validation target is the view's last test target
        mine = s.test_pos[s.test_user == u]
        assert s.seq_items[mine[-1]] == t.seq_items[t.valid_pos[u]]
        assert len(mine) == min(s.spec.split.n_test, max(len(s.sequence(u)) - 1 - MIN_TRAIN, 1))
    # no real test target is anywhere in the view
    real_test = {(int(t.test_user[i]), int(t.seq_times[p])) for i, p in enumerate(t.test_pos)}
    users = np.searchsorted(s.seq_offsets, np.arange(s.n_interactions), side="right") - 1
    assert not real_test & {(int(u), int(x)) for u, x in zip(users, s.seq_times, strict=True)}
