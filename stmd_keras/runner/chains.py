"""Teacher-assistant recipes: teacher -> TA -> student (SleepKD, TAKD, DGKD).

A teacher assistant (TA) is the architecture's "assistant" model (between
teacher and student in size), distilled from the pre-trained teacher with
the teacher frozen. It is cached like the teacher, per (architecture, link,
data, training settings, seed) under `WORK_DIR/assistant/<key>`, so every row
that needs the same TA trains it once. A *link* is the keyword arguments of
`MutualDistiller.compile` for one teacher -> pupil step.

Row methods added to `training.METHODS` (see `runner/__init__.py`):

* `"assistant"`: the TA itself, scored on the test subjects; `params` is
  the teacher -> TA link, e.g. `{"method": "kd"}`.
* `"chain"`: teacher -> TA -> student, both links with `params` (TAKD:
  `{"method": "kd"}`; SleepKD with its TA module: `{"method": "sleepkd"}`).
  An `"assistant"` entry gives the first link other parameters.
* `"guided"`: the student taught by the teacher and the TA at once (DGKD:
  `{"method": "dgkd", "assistant": {"method": "kd"}}`); the TA link defaults
  to KD, as in DGKD's paper.
"""

import json
import os

import keras

from stmd_keras.distill import MutualDistiller
from stmd_keras.io import write_json
from stmd_keras.reproducibility import set_seed
from stmd_keras.runner.settings import settings_key
from stmd_keras.runner.training import (
    save_weights, distill_student, evaluate_model, fit_resumable, model_card, pretrained_teacher,
    save_model,
)

DEFAULT_ASSISTANT_LINK = {"method": "kd"}
"""How DGKD's (and TAKD's) assistant is taught by the teacher."""


def assistant_key(ctx, link):
    """The cache key of the TA distilled with `link` under `ctx`."""
    return settings_key("assistant", ctx.architecture, dict(link), ctx.data_settings,
                        ctx.train_settings, ctx.seed)


def pretrained_assistant(ctx, link):
    """The teacher assistant distilled from the pre-trained teacher with `link` (cached).

    Returns `(assistant, info)` where `info` has the training history and
    the cache key.
    """
    link = dict(link)
    key = assistant_key(ctx, link)
    directory = os.path.join(ctx.work_dir, "assistant", key)
    final = os.path.join(directory, "final.weights.h5")
    info_path = os.path.join(directory, "final.json")
    if os.path.exists(final) and os.path.exists(info_path):
        set_seed(ctx.seed)
        assistant = ctx.model("assistant")
        assistant.load_weights(final)
        with open(info_path) as f:
            return assistant, json.load(f)
    teacher, teacher_info = pretrained_teacher(ctx)
    set_seed(ctx.seed)  # the same initial TA whatever the teacher's cache state
    assistant = ctx.model("assistant")
    lr = ctx.train_settings.learning_rate
    distiller = MutualDistiller(teacher, assistant)
    distiller.compile(keras.optimizers.Adam(lr), keras.optimizers.Adam(lr), **link)
    if distiller.settings["mutual"]:
        raise ValueError(
            f"A teacher assistant is distilled from a frozen teacher; link {link} trains the teacher."
        )
    print(f"  distilling the teacher assistant ({assistant.count_params():,} parameters) with {link}",
          flush=True)
    ckpt = fit_resumable(distiller, ctx, os.path.join(directory, "checkpoint"), "val_student_macro_f1")
    info = {"history": ckpt.history, "best_epoch": ckpt.best_epoch, "link": link, "assistant_key": key,
            "teacher_fingerprint": teacher_info["teacher_fingerprint"]}
    info["model"] = save_model(assistant, directory, model_card(ctx, "assistant"), "assistant.keras")
    save_weights(assistant, final)
    write_json(info_path, info)
    return assistant, info


def _split_link(params, default=None):
    """`(assistant link, student link)` of a row's params."""
    student_link = dict(params)
    assistant_link = student_link.pop("assistant", default)
    return dict(student_link if assistant_link is None else assistant_link), student_link


def run_assistant(ctx, params):
    assistant, info = pretrained_assistant(ctx, params)
    return {"metrics": evaluate_model(assistant, ctx.data.test), "params": assistant.count_params(), **info}


def run_chain(ctx, params):
    """Teacher -> TA -> student, each link distilled with a frozen teacher."""
    assistant_link, student_link = _split_link(params)
    assistant, info = pretrained_assistant(ctx, assistant_link)
    result = distill_student(ctx, assistant, student_link)
    return dict(result, **_provenance(info))


def run_guided(ctx, params):
    """The student taught by the teacher and the TA together (DGKD)."""
    assistant_link, student_link = _split_link(params, DEFAULT_ASSISTANT_LINK)
    assistant, info = pretrained_assistant(ctx, assistant_link)
    teacher, teacher_info = pretrained_teacher(ctx)
    result = distill_student(ctx, teacher, student_link, guides=[assistant])
    return {**result, **_provenance(info), "teacher_fingerprint": teacher_info["teacher_fingerprint"]}


def _provenance(info):
    """The TA's cache key and the fingerprint of the teacher it was distilled
    from (unknown for TAs cached before fingerprints were recorded)."""
    provenance = {"assistant_key": info["assistant_key"]}
    if "teacher_fingerprint" in info:
        provenance["assistant_teacher_fingerprint"] = info["teacher_fingerprint"]
    return provenance


CHAIN_METHODS = {"assistant": run_assistant, "chain": run_chain, "guided": run_guided}
