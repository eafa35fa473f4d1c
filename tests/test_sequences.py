import time
import warnings

import numpy as np
import pytest
import tensorflow as tf

from stmd_keras.data import DataError, Recording, SequenceSet

S = 30  # 1 Hz: a 30-s epoch is 30 samples, keeping arrays tiny


def make_recording(subject, n_epochs, first_id, channels=("C3", "C4"), fs=1.0):
    """Every sample of epoch k, channel c holds (first_id + k) * 10 + c."""
    ids = first_id + np.arange(n_epochs)
    per_epoch = ids[:, None] * 10 + np.arange(len(channels))[None, :]  # (n, C)
    spe = int(30 * fs)
    signals = np.repeat(per_epoch.T, spe, axis=1).astype(np.float32)  # (C, n * spe)
    labels = (ids * 7) % 5
    return Recording(subject, signals, fs, channels, labels, source=f"{subject}.edf")


def make_set(lengths=(45, 20, 33), **kw):
    recs, first = [], 0
    for i, n in enumerate(lengths):
        recs.append(make_recording(f"s{i}", n, first))
        first += n
    return SequenceSet(recs, **kw)


def epoch_ids(x):
    """Decode the global epoch id of each (.., L) position from the signal."""
    return np.rint(x[..., 0, 0] / 10).astype(int)


def take(ds, n):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def test_concatenation_and_metadata():
    s = make_set(seq_len=10)
    x = s.epochs(np.arange(98))
    assert x.shape == (98, 2, S) and x.dtype == np.float32
    assert s.y.shape == (98,) and s.y.dtype == np.int32
    np.testing.assert_array_equal(epoch_ids(x[:, None]).ravel(), np.arange(98))
    np.testing.assert_array_equal(s.y, (np.arange(98) * 7) % 5)
    assert list(s.subject[[0, 44, 45, 64, 65, 97]]) == ["s0", "s0", "s1", "s1", "s2", "s2"]
    np.testing.assert_array_equal(np.bincount(s.recording_index), [45, 20, 33])
    assert (s.seq_len, s.n_channels, s.epoch_samples, s.channels) == (10, 2, S, ("C3", "C4"))
    assert s.subjects == ("s0", "s1", "s2")


def test_starts_default_stride_and_cover_all():
    s = make_set(seq_len=20)
    # s0: 0, 20 and end-aligned 25; s1: exactly one; s2: 0 and end-aligned 13.
    np.testing.assert_array_equal(s.starts, [0, 20, 25, 45, 65, 78])
    s = make_set(seq_len=20, cover_all=False)
    np.testing.assert_array_equal(s.starts, [0, 20, 45, 65])
    s = make_set(seq_len=20, stride=10)
    np.testing.assert_array_equal(s.starts, [0, 10, 20, 25, 45, 65, 75, 78])
    assert len(s) == 8


@pytest.mark.parametrize("seq_len,stride", [(20, None), (7, 3), (10, 1), (8, 8)])
def test_sequences_never_cross_recordings_and_cover_every_epoch(seq_len, stride):
    s = make_set(seq_len=seq_len, stride=stride)
    idx = s.epoch_indices()
    assert idx.shape == (len(s), seq_len)
    rec = s.recording_index[idx]
    assert (rec == rec[:, :1]).all(), "a sequence crosses two recordings"
    x, y = s.get(np.arange(len(s)))
    ids = epoch_ids(x)
    np.testing.assert_array_equal(np.diff(ids, axis=1), 1)  # consecutive epochs
    np.testing.assert_array_equal(ids, idx)
    np.testing.assert_array_equal(y, s.y[idx])
    assert set(idx.ravel().tolist()) == set(range(s.n_epochs))


def test_get_shapes_and_dtypes():
    s = make_set(seq_len=10)
    x, y = s.get([2, 0])
    assert x.shape == (2, 10, 2, S) and x.dtype == np.float32
    assert y.shape == (2, 10) and y.dtype == np.int32
    assert epoch_ids(x)[:, 0].tolist() == [s.starts[2], 0]
    with pytest.raises(IndexError, match="out of range"):
        s.get([len(s)])


def test_train_batches_shapes_order_and_determinism():
    s = make_set(seq_len=5)  # 9 + 4 + 7 = 20 sequences
    bs = 3
    steps = s.steps_per_epoch(bs)
    assert steps == 20 // 3
    ds = s.train_dataset(bs, seed=4)
    spec_x, spec_y = ds.element_spec
    assert spec_x.shape == (bs, 5, 2, S) and spec_x.dtype == tf.float32
    assert spec_y.shape == (bs, 5) and spec_y.dtype == tf.int32
    batches = take(ds, 2 * steps)
    for e in range(2):
        perm = np.random.default_rng([4, e]).permutation(len(s))
        for b in range(steps):
            x, y = batches[e * steps + b]
            want_x, want_y = s.get(perm[b * bs:(b + 1) * bs])
            assert x.shape == (bs, 5, 2, S) and x.dtype == np.float32
            assert y.dtype == np.int32
            np.testing.assert_array_equal(x, want_x)
            np.testing.assert_array_equal(y, want_y)
    again = take(s.train_dataset(bs, seed=4), 2 * steps)
    for (x1, y1), (x2, y2) in zip(batches, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    other = take(s.train_dataset(bs, seed=5), steps)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(batches, other))


def test_resume_sees_the_uninterrupted_batches():
    s = make_set(seq_len=4, stride=2)
    bs = 4
    steps = s.steps_per_epoch(bs)
    full = take(s.train_dataset(bs, seed=1), 4 * steps)
    resumed = take(s.train_dataset(bs, seed=1, start_epoch=2), 2 * steps)
    for (x1, y1), (x2, y2) in zip(full[2 * steps:], resumed):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    # ... and differs from what a restart at epoch 0 would have produced.
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(full[:steps], resumed[:steps]))


def test_eval_dataset_is_ordered_and_keeps_partial_batch():
    s = make_set(seq_len=5)
    batches = take(s.eval_dataset(6), -1)
    assert [len(x) for x, _ in batches] == [6, 6, 6, 2]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    want_x, want_y = s.get(np.arange(len(s)))
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(y, want_y)
    assert s.eval_dataset(6).element_spec[0].shape.as_list() == [None, 5, 2, S]


def test_epoch_probabilities_average_overlapping_sequences():
    s = make_set(seq_len=6, stride=4)
    k = 5
    rng = np.random.default_rng(0)
    seq_probs = rng.random((len(s), 6, k))
    got = s.epoch_probabilities(seq_probs)
    assert got.shape == (s.n_epochs, k) and got.dtype == np.float32
    want = np.zeros((s.n_epochs, k))
    count = np.zeros(s.n_epochs)
    for i, start in enumerate(s.starts):
        for j in range(6):
            want[start + j] += seq_probs[i, j]
            count[start + j] += 1
    assert count.max() > 1  # the test really exercises overlap
    np.testing.assert_allclose(got, want / count[:, None], rtol=1e-6)
    # One-hot truth per sequence maps back to the per-epoch truth.
    _, y = s.get(np.arange(len(s)))
    onehot = np.eye(k)[y]
    np.testing.assert_array_equal(s.epoch_probabilities(onehot).argmax(1), s.y)
    with pytest.raises(ValueError, match=r"\(.*6, K\)"):
        s.epoch_probabilities(seq_probs[:-1])


def test_short_recordings_are_skipped_with_a_warning():
    recs = [make_recording("a", 30, 0), make_recording("b", 8, 30)]
    with pytest.warns(UserWarning, match=r"b\.edf"):
        s = SequenceSet(recs, seq_len=10)
    assert s.subjects == ("a",) and s.n_epochs == 30
    with pytest.raises(DataError, match="shorter than seq_len"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            SequenceSet([make_recording("b", 8, 0)], seq_len=10)


def test_mismatched_recordings_raise():
    a = make_recording("a", 30, 0)
    with pytest.raises(DataError, match="same PreprocessConfig"):
        SequenceSet([a, make_recording("b", 30, 0, channels=("C4", "C3"))], seq_len=10)
    with pytest.raises(DataError, match="fs=2"):
        SequenceSet([a, make_recording("b", 30, 0, fs=2.0)], seq_len=10)
    with pytest.raises(DataError, match="no recordings"):
        SequenceSet([], seq_len=10)


def test_argument_errors():
    s = make_set(seq_len=20)
    with pytest.raises(ValueError, match="batch_size=7"):
        s.steps_per_epoch(7)
    with pytest.raises(ValueError, match="batch_size=0"):
        s.train_dataset(0)
    with pytest.raises(ValueError, match="seq_len=0"):
        make_set(seq_len=0)
    with pytest.raises(ValueError, match="cover_all=False"):
        make_set(seq_len=5, stride=6)
    np.testing.assert_array_equal(make_set(seq_len=5, stride=6, cover_all=False).starts[:3],
                                  [0, 6, 12])


def test_memmapped_recordings_are_sliced_not_copied(tmp_path):
    x = np.arange(2 * 6 * S, dtype=np.float32).reshape(2, 6 * S)
    path = tmp_path / "signals.f32"
    x.tofile(path)
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=x.shape)
    s = SequenceSet([Recording("s0", mm, S / 30, ("a", "b"), np.zeros(6, int))], seq_len=2)
    assert np.shares_memory(s._signals[0], mm)  # kept lazy, not concatenated
    got, _ = s.get([1])
    np.testing.assert_array_equal(got[0, :, 0], x[0, 2 * S: 4 * S].reshape(2, S))
    np.testing.assert_array_equal(got[0, 1, 1], x[1, 3 * S: 4 * S])


def test_input_pipeline_is_fast_and_not_a_graph_constant():
    n_epochs, channels = 200, tuple(f"c{j}" for j in range(6))
    recs = [Recording(f"s{i}", np.zeros((6, n_epochs * 3000), np.float32), 100.0, channels,
                      np.zeros(n_epochs, int)) for i in range(4)]
    s = SequenceSet(recs, seq_len=20, stride=1)
    ds = s.train_dataset(8, seed=0)
    graph = ds._as_serialized_graph(
        external_state_policy=tf.data.experimental.ExternalStatePolicy.WARN)
    assert len(graph.numpy()) < 100_000 < sum(r.signals.nbytes for r in recs)  # data is gathered, not embedded
    it = iter(ds)
    for _ in range(5):  # warm-up
        next(it)
    t0 = time.perf_counter()
    for _ in range(200):
        x, y = next(it)
        assert x.shape == (8, 20, 6, 3000)
    per_batch = (time.perf_counter() - t0) / 200
    assert per_batch < 0.1, f"{per_batch:.4f} s per batch"


def test_keras_fit_resumed_with_initial_epoch_sees_the_same_batches():
    import keras

    s = make_set(seq_len=4)
    bs = 4
    steps = s.steps_per_epoch(bs)

    class Recorder(keras.Model):
        def __init__(self):
            super().__init__()
            self.seen = []
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            self.seen.append(epoch_ids(data[0].numpy()))
            return {"n": 0.0}

    def run(initial_epoch):
        model = Recorder()
        model.compile(run_eagerly=True)
        model.fit(s.train_dataset(bs, seed=3, start_epoch=initial_epoch), epochs=4,
                  steps_per_epoch=steps, initial_epoch=initial_epoch, verbose=0)
        return model.seen

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full, resumed = run(0), run(2)
    assert len(full) == 4 * steps and len(resumed) == 2 * steps
    for a, b in zip(full[2 * steps:], resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(full[0], full[steps])  # epochs really differ


def test_train_dataset_with_a_step_budget_draws_a_new_part_each_epoch():
    s = make_set(seq_len=5)
    full = s.steps_per_epoch(2)
    ds = s.train_dataset(2, seed=3, steps=4)
    starts = [epoch_ids(x)[:, 0] for x, _ in take(ds, 8)]  # two epochs of 4 steps
    first, second = np.concatenate(starts[:4]), np.concatenate(starts[4:])
    np.testing.assert_array_equal(first, s.starts[s.epoch_permutation(0, 3)[:8]])
    np.testing.assert_array_equal(second, s.starts[s.epoch_permutation(1, 3)[:8]])
    capped = [epoch_ids(x)[:, 0] for x, _ in take(s.train_dataset(2, seed=3, steps=50), full)]
    np.testing.assert_array_equal(np.concatenate(capped), s.starts[s.epoch_permutation(0, 3)[: 2 * full]])
