"""Per-epoch checkpoints: a resumed run ends exactly where an uninterrupted one does."""

import h5py
import keras
import numpy as np
import pytest

from stmd_keras.data import Recording
from stmd_keras.data.sequences import SequenceSet
from stmd_keras.distill import MutualDistiller, ResumableCheckpoint
from stmd_keras.distill.checkpoint import STATE_FILE
from stmd_keras.models import build_cnn_rnn
from stmd_keras.reproducibility import set_seed

L, C, FS, EPOCHS = 3, 2, 8, 4


def sequences():
    rng = np.random.default_rng(0)
    recs = [
        Recording(f"s{i}", rng.standard_normal((C, 40 * 30 * FS)).astype("float32"), FS,
                  ("a", "b"), rng.integers(0, 5, 40))
        for i in range(2)
    ]
    return SequenceSet(recs, seq_len=L)


def distiller():
    set_seed(0)
    t = build_cnn_rnn(4, 3, n_channels=C, seq_len=L, fs=FS, name="t")
    s = build_cnn_rnn(3, 2, n_channels=C, seq_len=L, fs=FS, name="s")
    d = MutualDistiller(t, s)
    d.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    return d


def train(directory, seqs, stop_after=None, patience=None):
    d = distiller()
    ckpt = ResumableCheckpoint(directory, monitor="val_student_macro_f1", mode="max", patience=patience)
    start = ckpt.restore(d)
    epochs = EPOCHS if stop_after is None else stop_after
    if start < epochs and not ckpt.finished:
        d.fit(seqs.train_dataset(4, seed=3, start_epoch=start), steps_per_epoch=seqs.steps_per_epoch(4),
              epochs=epochs, initial_epoch=start, validation_data=seqs.eval_dataset(8),
              callbacks=[ckpt], verbose=0)
    else:
        ckpt.restore_best_weights(d)
    return d, ckpt


def state(d):
    return [v.numpy() for v in d.variables]


def test_resumed_training_is_bit_identical(tmp_path):
    seqs = sequences()
    full, full_ckpt = train(tmp_path / "full", seqs)
    # "Crash" after epoch 2: a fresh process would rebuild everything from scratch.
    train(tmp_path / "resumed", seqs, stop_after=2)
    with h5py.File(tmp_path / "resumed" / STATE_FILE) as f:
        assert '"epoch": 1' in f.attrs["meta"]
    resumed, resumed_ckpt = train(tmp_path / "resumed", seqs)
    assert len(resumed_ckpt.history) == EPOCHS
    # The weights first: they are the claim (bit-identical).
    for a, b in zip(state(full), state(resumed)):
        np.testing.assert_array_equal(a, b)
    assert resumed_ckpt.best_epoch == full_ckpt.best_epoch
    # Logged losses may differ in the last float32 bit (validation ones also
    # between two uninterrupted runs in one process; once, in a CI run beside a
    # training job, a training loss too: 2.1060376 vs 2.1060379), so compare
    # them to 1e-6 relative and the accuracies exactly.
    for a, b in zip(full_ckpt.history, resumed_ckpt.history):
        assert a.keys() == b.keys()
        for k in a:
            exact = "accuracy" in k or "macro_f1" in k
            assert a[k] == (b[k] if exact else pytest.approx(b[k], rel=1e-6)), k


def test_best_weights_are_restored_and_early_stopping_state_survives(tmp_path):
    seqs = sequences()
    d, ckpt = train(tmp_path, seqs, patience=1)
    scores = [h["val_student_macro_f1"] for h in ckpt.history]
    assert ckpt.best == max(scores) and ckpt.best_epoch == int(np.argmax(scores))
    if len(scores) < EPOCHS:
        assert ckpt.stopped_early
    # The models hold the best epoch's weights, not the last epoch's.
    for v, b in zip(d.variables, ckpt.best_values):
        np.testing.assert_array_equal(v.numpy(), b)
    again, ckpt2 = train(tmp_path, seqs, patience=1)  # finished: nothing left to train
    assert ckpt2.history == ckpt.history
    for a, b in zip(again.variables, d.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_mismatched_or_corrupt_state_is_reported(tmp_path):
    seqs = sequences()
    train(tmp_path, seqs, stop_after=1)
    set_seed(0)
    other = MutualDistiller(build_cnn_rnn(5, 3, n_channels=C, seq_len=L, fs=FS),
                            build_cnn_rnn(3, 2, n_channels=C, seq_len=L, fs=FS))
    other.compile()
    with pytest.raises(ValueError, match="does not match"):
        ResumableCheckpoint(tmp_path).restore(other)
    (tmp_path / STATE_FILE).write_bytes(b"not hdf5")
    with pytest.raises(OSError, match="unreadable training state"):
        ResumableCheckpoint(tmp_path).restore(distiller())
