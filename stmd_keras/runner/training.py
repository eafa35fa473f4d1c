"""Training recipes of the table rows: pre-train, train alone, distill."""

import dataclasses
import json
import os
import sys
import time

import keras
import numpy as np
import scipy.special

from stmd_keras.distill import MutualDistiller, ResumableCheckpoint, SupervisedTrainer
from stmd_keras.distill.batch_norm import BatchNormRecalibration
from stmd_keras.evaluation import evaluate
from stmd_keras.io import atomic_path, write_json
from stmd_keras.models import build_model
from stmd_keras.reproducibility import set_seed, weights_fingerprint
from stmd_keras.runner.settings import settings_key


@dataclasses.dataclass
class RunContext:
    """Everything a row needs besides its own parameters."""

    data: object  # ExperimentData
    data_settings: object
    train_settings: object
    architecture: str
    seed: int
    work_dir: str
    verbose: int = None
    row_dir: str = None

    def model(self, role):
        d = self.data_settings
        return build_model(
            self.architecture, role, n_channels=len(self.data.channels), seq_len=d.seq_len, fs=d.fs
        )

    @property
    def fit_verbose(self):
        if self.verbose is not None:
            return self.verbose
        return 1 if sys.stdout.isatty() else 2


def fit_resumable(trainer, ctx, directory, monitor):
    """`fit` with a per-epoch checkpoint in `directory`; resumes if one exists.

    Returns the `ResumableCheckpoint` (its `history`, `best_epoch`, ...).
    """
    ts = ctx.train_settings
    ckpt = ResumableCheckpoint(
        directory, monitor=monitor, mode="max", patience=ts.patience, restore_best=ts.restore_best
    )
    start = ckpt.restore(trainer)
    if start < ts.epochs and not ckpt.finished:
        if start:
            print(f"  resuming from epoch {start} ({directory})", flush=True)
        trainer.fit(
            ctx.data.train.train_dataset(ts.batch_size, seed=ctx.seed, start_epoch=start,
                                         steps=ts.steps_per_epoch),
            steps_per_epoch=min(ts.steps_per_epoch or np.inf, ctx.data.train.steps_per_epoch(ts.batch_size)),
            epochs=ts.epochs,
            initial_epoch=start,
            validation_data=ctx.data.val.eval_dataset(4 * ts.batch_size),
            callbacks=[*_batch_norm_callbacks(trainer, ctx), ckpt],
            shuffle=False,  # the stream is already shuffled per (seed, epoch)
            verbose=ctx.fit_verbose,
        )
    elif ts.restore_best:
        ckpt.restore_best_weights(trainer)
    return ckpt


RECALIBRATION_STEPS = 16
"""Training batches over which BatchNorm statistics are re-estimated (dropout off)."""


def _batch_norm_callbacks(trainer, ctx):
    """`BatchNormRecalibration` for the trained models that have BatchNorm (SleepKD backbones)."""
    ts = ctx.train_settings

    def batches():  # the same batches every time: a resumed run stays identical
        steps = min(RECALIBRATION_STEPS, ctx.data.train.steps_per_epoch(ts.batch_size))
        data = ctx.data.train.train_dataset(ts.batch_size, seed=ctx.seed + 1, steps=steps)
        return data.map(lambda x, *_: x).take(steps)  # the stream itself repeats forever

    callback = BatchNormRecalibration(getattr(trainer, "trainees", ()), batches)
    return [callback] if callback.recalibrators else []


def predict_epoch_probabilities(model, sequences, batch_size=32):
    """Per-epoch stage probabilities `(N, 5)` of `model` over `sequences`."""
    logits = model.predict(sequences.eval_dataset(batch_size).map(lambda x, y: x), verbose=0)["logits"]
    return sequences.epoch_probabilities(scipy.special.softmax(logits, axis=-1))


def evaluate_model(model, sequences):
    """Metrics of `model` on every epoch of `sequences` (pooled and per subject)."""
    probs = predict_epoch_probabilities(model, sequences)
    return evaluate(sequences.y, probs.argmax(-1), subjects=sequences.subject)


def save_weights(model, path):
    """`model.save_weights(path)`, atomically (a kill leaves no half-written cache)."""
    with atomic_path(path) as tmp:
        model.save_weights(tmp)


MODEL_CARD = "stmd_model.json"
"""Written beside every saved `.keras` model: what input it expects."""


def model_card(ctx, role, metrics=None):
    """What a deployed model needs to know about its input (see `save_model`)."""
    from stmd_keras.data.recording import EPOCH_SEC, STAGES
    from stmd_keras.runner.datasets import preprocess_config

    config = preprocess_config(ctx.data_settings)
    return {
        "architecture": ctx.architecture,
        "role": role,
        "channels": list(ctx.data.channels),
        "fs": float(config.fs),
        "seq_len": int(ctx.data_settings.seq_len),
        "epoch_sec": EPOCH_SEC,
        "stages": list(STAGES),
        "preprocess": {"bandpass": config.bandpass, "notch": config.notch, "standardize": config.standardize},
        "dataset": ctx.data_settings.dataset,
        "seed": ctx.seed,
        "test_metrics": metrics,
    }


def save_model(model, directory, card, name="model.keras"):
    """Saves `model` as `directory/name` plus its model card, atomically.

    `stmd export` and `stmd stage` read both: the card tells them the
    channels, rate, sequence length and preprocessing the model was trained
    with.
    """
    path = os.path.join(directory, name)
    with atomic_path(path) as tmp:
        model.save(tmp)
    write_json(os.path.join(directory, MODEL_CARD), card)
    return path


def pretrained_teacher(ctx):
    """The teacher trained alone (cached per data, training settings and seed).

    Returns `(teacher, info)` where `info` has the training history and the
    teacher's `weights_fingerprint` ("teacher_fingerprint"), which every row
    distilled from it records.
    """
    key = settings_key("teacher", ctx.architecture, ctx.data_settings, ctx.train_settings, ctx.seed)
    directory = os.path.join(ctx.work_dir, "teacher", key)
    final = os.path.join(directory, "final.weights.h5")
    info_path = os.path.join(directory, "final.json")
    set_seed(ctx.seed)
    teacher = ctx.model("teacher")
    if os.path.exists(final) and os.path.exists(info_path):
        teacher.load_weights(final)
        with open(info_path) as f:
            return teacher, dict(json.load(f), teacher_fingerprint=weights_fingerprint(teacher))
    print(f"  pre-training the teacher ({teacher.count_params():,} parameters)", flush=True)
    trainer = SupervisedTrainer(teacher)
    trainer.compile(keras.optimizers.Adam(ctx.train_settings.learning_rate))
    ckpt = fit_resumable(trainer, ctx, os.path.join(directory, "checkpoint"), "val_macro_f1")
    info = {"history": ckpt.history, "best_epoch": ckpt.best_epoch}
    info["model"] = save_model(teacher, directory, model_card(ctx, "teacher"), "teacher.keras")
    save_weights(teacher, final)
    write_json(info_path, info)
    return teacher, dict(info, teacher_fingerprint=weights_fingerprint(teacher))


def run_teacher(ctx, params):
    teacher, info = pretrained_teacher(ctx)
    return {"metrics": evaluate_model(teacher, ctx.data.test), "params": teacher.count_params(), **info}


def run_student(ctx, params):
    set_seed(ctx.seed)
    student = ctx.model("student")
    trainer = SupervisedTrainer(student)
    trainer.compile(keras.optimizers.Adam(ctx.train_settings.learning_rate))
    ckpt = fit_resumable(trainer, ctx, ctx.row_dir, "val_macro_f1")
    metrics = evaluate_model(student, ctx.data.test)
    path = save_model(student, ctx.row_dir, model_card(ctx, "student", metrics), "student.keras")
    return {
        "model": path,
        "metrics": metrics,
        "params": student.count_params(),
        "history": ckpt.history,
        "best_epoch": ckpt.best_epoch,
    }


def run_distill(ctx, params):
    """Distils a fresh student from the pre-trained teacher with `params`.

    `params` are `MutualDistiller.compile` keyword arguments (weights,
    switches, KD temperature...).
    """
    teacher, info = pretrained_teacher(ctx)
    return dict(distill_student(ctx, teacher, params), teacher_fingerprint=info["teacher_fingerprint"])


def distill_student(ctx, teacher, params, guides=()):
    """Distils a fresh student from `teacher` (and frozen `guides`) into `ctx.row_dir`."""
    set_seed(ctx.seed)  # the same initial student as the no-KD row
    student = ctx.model("student")
    lr = ctx.train_settings.learning_rate
    distiller = MutualDistiller(teacher, student, guides=guides)
    distiller.compile(keras.optimizers.Adam(lr), keras.optimizers.Adam(lr), **params)
    ckpt = fit_resumable(distiller, ctx, ctx.row_dir, "val_student_macro_f1")
    metrics = evaluate_model(student, ctx.data.test)
    path = save_model(student, ctx.row_dir, model_card(ctx, "student", metrics), "student.keras")
    result = {
        "model": path,
        "metrics": metrics,
        "params": student.count_params(),
        "history": ckpt.history,
        "best_epoch": ckpt.best_epoch,
    }
    if distiller.settings["mutual"]:
        result["teacher_metrics"] = evaluate_model(teacher, ctx.data.test)
    return result


METHODS = {"teacher": run_teacher, "student": run_student, "distill": run_distill}
"""Row methods by name; `runner.chains` adds the teacher-assistant recipes."""


def run_method(ctx, method, params, row_dir):
    """Runs one row's `method` with `params`; returns its result dict."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; available: {sorted(METHODS)}")
    ctx.row_dir = row_dir
    started = time.time()
    result = METHODS[method](ctx, dict(params))
    result["seconds"] = round(time.time() - started, 1)
    return result
