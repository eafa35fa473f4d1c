"""Per-epoch, crash-safe training state: resume, early stopping, best weights."""

import json
import os

import h5py
import keras
import numpy as np

from stmd_keras.io import atomic_path

STATE_FILE = "state.h5"


def trainer_optimizers(trainer):
    """The distinct optimizers a training engine uses."""
    found = []
    for name in ("optimizer", "teacher_optimizer", "student_optimizer"):
        opt = getattr(trainer, name, None)
        if opt is not None and all(opt is not f for f in found):
            found.append(opt)
    return found


def state_variables(trainer):
    """Every variable needed to continue training bit-for-bit.

    Model weights, dropout seed-generator states and optimizer slots.
    """
    variables = list(trainer.variables)
    for opt in trainer_optimizers(trainer):
        variables += list(opt.variables)
    return variables


class ResumableCheckpoint(keras.callbacks.Callback):
    """Saves the whole training state after every epoch and resumes from it.

    After each epoch it writes `directory/state.h5` atomically (temporary file
    + rename, so a kill never leaves a half-written state): all model and
    optimizer variables (including dropout RNG states), the epoch, the
    per-epoch history, and the early-stopping state with the best weights.
    `restore()` loads it back and returns the epoch to pass to
    `fit(initial_epoch=...)`; combined with a data stream whose epoch `e`
    order depends only on `(seed, e)`, a run killed at any point finishes
    with the same weights and metrics as an uninterrupted one.

    Args:
        directory: where the state file lives (created if needed).
        monitor: log key to watch (e.g. "val_student_macro_f1").
        mode: "max" or "min".
        patience: stop after this many epochs without improvement
            (`None`: never stop early).
        restore_best: at the end of training, load the weights of the best
            epoch (by `monitor`) into the models.
    """

    def __init__(self, directory, monitor="val_loss", mode="min", patience=None, restore_best=True):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"`mode` must be 'min' or 'max'. Received: mode={mode!r}")
        self.directory = str(directory)
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.restore_best = restore_best
        self.history = []
        self.best = None
        self.best_epoch = None
        self.best_values = None
        self.wait = 0
        self.stopped_early = False

    @property
    def path(self):
        return os.path.join(self.directory, STATE_FILE)

    def _improved(self, value):
        if value is None or not np.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def restore(self, trainer):
        """Loads a saved state into `trainer`; returns the next epoch (0 if none)."""
        self.set_model(trainer)
        if not os.path.exists(self.path):
            return 0
        variables = state_variables(trainer)
        try:
            with h5py.File(self.path, "r") as f:
                values = [f["state"][str(i)][()] for i in range(len(f["state"]))]
                best = f.get("best")
                best_values = [best[str(i)][()] for i in range(len(best))] if best else None
                meta = json.loads(f.attrs["meta"])
        except (OSError, KeyError, ValueError) as e:
            raise OSError(f"{self.path}: unreadable training state ({e}); delete it to restart.")
        if len(values) != len(variables) or any(
            tuple(v.shape) != tuple(a.shape) for v, a in zip(variables, values)
        ):
            raise ValueError(
                f"{self.path}: the saved state does not match this model "
                f"({len(values)} saved vs {len(variables)} variables); delete it to restart."
            )
        for var, value in zip(variables, values):
            var.assign(value)
        self.history = meta["history"]
        self.best, self.best_epoch, self.wait = meta["best"], meta["best_epoch"], meta["wait"]
        self.stopped_early = meta["stopped_early"]
        self.best_values = best_values
        return meta["epoch"] + 1

    @property
    def finished(self):
        """Whether the restored run had already stopped early."""
        return self.stopped_early

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.history.append(dict(logs, epoch=epoch))
        variables = state_variables(self.model)
        value = logs.get(self.monitor)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            self.best_values = [keras.ops.convert_to_numpy(v) for v in self.model.variables]
        else:
            self.wait += 1
            if self.patience is not None and self.wait >= self.patience:
                self.model.stop_training = True
                self.stopped_early = True
        meta = dict(
            epoch=epoch, history=self.history, best=self.best, best_epoch=self.best_epoch,
            wait=self.wait, stopped_early=self.stopped_early, monitor=self.monitor,
        )
        os.makedirs(self.directory, exist_ok=True)
        with atomic_path(self.path) as tmp:
            with h5py.File(tmp, "w") as f:
                g = f.create_group("state")
                for i, v in enumerate(variables):
                    g.create_dataset(str(i), data=keras.ops.convert_to_numpy(v))
                if self.best_values is not None:
                    b = f.create_group("best")
                    for i, v in enumerate(self.best_values):
                        b.create_dataset(str(i), data=v)
                f.attrs["meta"] = json.dumps(meta)

    def restore_best_weights(self, trainer):
        """Loads the best epoch's model variables into `trainer` (if any)."""
        if self.best_values is None:
            return False
        for var, value in zip(trainer.variables, self.best_values):
            var.assign(value)
        return True

    def on_train_end(self, logs=None):
        if self.restore_best:
            self.restore_best_weights(self.model)
