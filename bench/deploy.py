"""Compression and latency of the deployed stagers, both architectures, in one run (issue 5).

    python bench/deploy.py [--repeats 3] [--arch cnn_rnn,cnn_gcn]
                           [--teacher PATH ...] [--student PATH ...] [--untrained]
                           [--tf-threads N] [--no-yasa] [--yasa-threads N]
                           [--keep DIR] [--json PATH]

For each architecture (CNN-RNN, CNN-GCN):

* Models. `--teacher` / `--student` name trained `.keras` files (with their
  `stmd_model.json`; the card's `architecture` says which architecture each
  is for). Without them, the newest `runs/teacher/*/teacher.keras` and
  `runs/rows/*/student.keras` whose card has that architecture; if there is
  none (or with `--untrained`), an untrained `build_model(arch, role)` saved
  with a card (channels F4-A1 C3-A2 C4-A1 O2-A1 LOC-A2 ROC-A1, 100 Hz, L=20,
  z-score only). Size and latency do not depend on the weights.
* Export. The student goes through `stmd_keras.deploy.export.export_checkpoint`
  (SavedModel, TFLite fp32 / fp16 / dynamic-range / int8, batch 1, LSTM form
  "auto", with its parity checks). The export API has no option to relax its
  parity thresholds; a format whose parity check fails (expected for the
  quantised files of untrained weights, whose probabilities are nearly flat)
  is exported again with the module's thresholds relaxed for this process
  only (`export.PROBABILITY_TOLERANCE`, `MIN_AGREEMENT`,
  `MAX_MACRO_F1_CHANGE`), timed, and marked "relaxed" in the table with the
  measured parity; it is then no evidence of a correct file.
* Cost. Parameters (`count_params`), size on disk (the `.keras` file, the
  SavedModel folder, each `.tflite`; MB = 10^6 bytes) and FLOPs per 30-s
  epoch (`count_flops(...).per_epoch()`, the analytic count, a multiply-add
  = 2 FLOPs).
* The night. One synthetic 8-hour night (`synthetic.generate`, seed 7,
  960 epochs, 100 Hz, every generator channel), prepared as each model's card
  says (channels in card order, z-score) and cut into the 48 non-overlapping
  sequences of L = 20 epochs that `stage_recording` uses (its
  `cover_all` windows: 960 = 48 x 20, no extra window): an array
  (48, 20, 6, 3000).
* Latency, model inference only: `Stager.predict_proba(x)` on those 48
  sequences (Keras and SavedModel 32 sequences per call, TFLite its fixed
  batch of 1, i.e. 48 invokes). Keras runs the model in one compiled
  `tf.function` (graph mode, never eager) with TensorFlow's thread setting
  (`--tf-threads`, default TF's own: every core); TFLite runs on one thread
  (`num_threads=1`) with the backend the export measured faster and wrote
  into the card (XNNPACK on or off; reported per row). One warm-up call
  each (tracing, allocation), then `--repeats` rounds in which every row is
  timed once, interleaved, so that load from other processes hits all rows
  alike; median and best of the rounds are reported.
* Latency, whole file: `stage_recording(edf, int8 student)` on the same night
  written as an EDF file (`layouts.write_isruc`, 16-bit samples): reading the
  EDF (pyedflib), channel mapping, preprocessing as the card says, staging,
  averaging; not writing outputs. Same warm-up and repeats.
* YASA (`yasa.SleepStaging`, not a requirement of stmd_keras:
  `pip install -r bench/requirements-bench.txt`) on the same night:
  EEG C4-A1, EOG LOC-A2, EMG X1 (raw µV, 100 Hz) in an `mne.io.RawArray`.
  Timed after a warm-up run (imports, numba JIT): `SleepStaging(...)` then
  `predict()`, which extracts the features (`fit`) and loads and runs the
  LightGBM classifier; features and classifier are also reported apart.
  YASA runs with its libraries' default threads unless `--yasa-threads`.

Targets (issue 5): CNN-RNN student int8 `.tflite` <= 0.4 MB; one night with
the int8 student <= 0.2 s on one thread (model inference; its FLOPs put the
floor near 0.1 s); >= 20x faster than the Keras teacher measured in the same
run. The time targets are checked for both architectures, on the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHITECTURES = ("cnn_rnn", "cnn_gcn")
NIGHT_EPOCHS = 960  # 8 hours of 30-s epochs
NIGHT_SEED = 7
GENERATOR_FS = 100.0
DEFAULT_CHANNELS = ("F4-A1", "C3-A2", "C4-A1", "O2-A1", "LOC-A2", "ROC-A1")  # CHANNEL_SETS["eeg_eog6"]
DEFAULT_SEQ_LEN = 20
YASA_CHANNELS = {"eeg_name": "C4-A1", "eog_name": "LOC-A2", "emg_name": "X1"}

TARGET_INT8_MB = 0.4
TARGET_NIGHT_S = 0.2
TARGET_SPEEDUP = 20.0
MB = 1e6

ROWS = (  # (key, label)
    ("keras-teacher", "Keras teacher"),
    ("keras-student", "Keras student"),
    ("savedmodel", "SavedModel student"),
    ("tflite-fp32", "TFLite fp32 student"),
    ("tflite-fp16", "TFLite fp16 student"),
    ("tflite-dynamic", "TFLite dynamic-range student"),
    ("tflite-int8", "TFLite int8 student"),
)


def say(message=""):
    print(message, flush=True)


def note(message):
    print(f"  . {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def card_of(path):
    from stmd_keras.deploy.runtime import find_card

    found = find_card(path)
    return read_json(found) if found else None


def newest_trained(arch, role):
    """The newest `runs/.../<role>.keras` whose model card says `arch`, or None."""
    pattern = "runs/teacher/*/teacher.keras" if role == "teacher" else "runs/rows/*/student.keras"
    pattern = os.path.join(REPO, pattern)
    found = []
    for path in glob.glob(pattern):
        card = card_of(path)
        if card and card.get("architecture") == arch and card.get("role", role) == role:
            found.append((os.path.getmtime(path), path))
    return max(found)[1] if found else None


def model_quality(path):
    """", test macro-F1 0.xx" from the model card's `test_metrics`, or ""."""
    metrics = (card_of(path) or {}).get("test_metrics") or {}
    return f", test macro-F1 {metrics['macro_f1']:.3f} per its card" if "macro_f1" in metrics else ""


def untrained_model(arch, role, directory, template=None):
    """Builds `build_model(arch, role)` and saves it with a model card; returns the path."""
    import keras

    from stmd_keras.data.recording import EPOCH_SEC, STAGES
    from stmd_keras.models import build_model
    from stmd_keras.runner.training import save_model

    template = template or {}
    channels = list(template.get("channels") or DEFAULT_CHANNELS)
    fs = float(template.get("fs") or GENERATOR_FS)
    seq_len = int(template.get("seq_len") or DEFAULT_SEQ_LEN)
    keras.utils.set_random_seed(0)
    model = build_model(arch, role, n_channels=len(channels), seq_len=seq_len, fs=fs)
    card = {
        "architecture": arch, "role": role, "channels": channels, "fs": fs, "seq_len": seq_len,
        "epoch_sec": EPOCH_SEC, "stages": list(STAGES),
        "preprocess": template.get("preprocess") or {"bandpass": None, "notch": None, "standardize": True},
        "card_source": "bench/deploy.py: untrained build_model() (size and latency only)",
    }
    os.makedirs(directory, exist_ok=True)
    return save_model(model, directory, card, name=f"{role}.keras")


def resolve_models(args, tmp):
    """{arch: {"teacher": (path, trained?), "student": (path, trained?)}}."""
    given = {arch: {} for arch in args.arch}
    for role in ("teacher", "student"):
        for path in getattr(args, role) or []:
            if not (path.endswith(".keras") and os.path.isfile(path)):
                raise SystemExit(f"--{role} {path}: not a .keras file")
            card = card_of(path)
            arch = (card or {}).get("architecture")
            if arch is None and len(args.arch) == 1:
                arch = args.arch[0]
            if arch not in given:
                raise SystemExit(f"--{role} {path}: its model card says architecture {arch!r}; "
                                 f"benchmarking {list(args.arch)} (see --arch)")
            given[arch][role] = path
    models = {}
    for arch in args.arch:
        models[arch] = {}
        for role in ("teacher", "student"):
            path = given[arch].get(role) or (None if args.untrained else newest_trained(arch, role))
            models[arch][role] = (path, True)
        # An untrained model takes the input of the other role's trained card, if any.
        for role in ("teacher", "student"):
            if models[arch][role][0] is None:
                other = models[arch]["student" if role == "teacher" else "teacher"][0]
                template = card_of(other) if other else None
                path = untrained_model(arch, role, os.path.join(tmp, arch, f"untrained-{role}"), template)
                models[arch][role] = (path, False)
    return models


# ---------------------------------------------------------------------------
# The night
# ---------------------------------------------------------------------------
def make_night():
    from stmd_keras.data import synthetic

    (night,) = synthetic.generate(1, seed=NIGHT_SEED, fs=GENERATOR_FS, n_epochs=NIGHT_EPOCHS,
                                  channels=synthetic.ISRUC_CHANNELS)
    return night


def prepared_sequences(night, card):
    """The night as the card's model takes it: (n_epochs / L, L, C, S) float32."""
    from stmd_keras.data.preprocess import PreprocessConfig, prepare

    pre = dict(card.get("preprocess") or {})
    bandpass = pre.get("bandpass")
    config = PreprocessConfig(
        fs=float(card["fs"]), channels=tuple(card["channels"]), standardize=bool(pre.get("standardize", True)),
        bandpass=tuple(bandpass) if bandpass is not None else None, notch=pre.get("notch"),
    )
    rec = prepare(night, config)
    seq_len = int(card["seq_len"])
    epochs = rec.epochs()  # (N, C, S)
    n = (epochs.shape[0] // seq_len) * seq_len
    if n != epochs.shape[0]:
        raise SystemExit(f"{epochs.shape[0]} epochs are not a whole number of sequences of {seq_len}")
    return np.ascontiguousarray(epochs[:n].reshape((n // seq_len, seq_len) + epochs.shape[1:]), np.float32)


def write_edf(night, directory):
    from stmd_keras.data.layouts import write_isruc

    write_isruc(night, directory, extra_label_lines=0)
    return os.path.join(directory, "1", "1.rec")


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def relaxed_parity():
    """Parity thresholds that anything passes, for this process, while in the block."""
    from stmd_keras.deploy import export

    names = ("PROBABILITY_TOLERANCE", "MIN_AGREEMENT", "MAX_MACRO_F1_CHANGE")
    saved = {n: getattr(export, n) for n in names}
    export.PROBABILITY_TOLERANCE, export.MIN_AGREEMENT, export.MAX_MACRO_F1_CHANGE = 1.0, 0.0, 1.0
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(export, n, v)


def parity_summary(entry):
    """One short line of the parity an export entry measured."""
    parts = []
    for backend, p in (entry.get("parity") or {}).items():
        if entry.get("format") in ("savedmodel", "tflite-fp32"):
            parts.append(f"{backend} max|Δp| {p['max_abs_prob_diff']:.1e}")
        else:
            parts.append(f"{backend} agree {100 * p['agreement']:.1f} %, ΔF1 {100 * p['macro_f1_change']:+.1f}")
    return "; ".join(parts)


def export_student(path, out):
    """Exports every format; returns {format: {"path", "entry", "status", "detail"}}."""
    from stmd_keras.deploy.export import FORMATS, OUTPUT_NAMES, ExportError, export_checkpoint

    results = {}

    def run(formats, relaxed):
        try:
            report = export_checkpoint(path, out, formats=formats, overwrite=True, verbose=False)
        except ExportError:
            # export_checkpoint wrote its report before raising.
            report = read_json(os.path.join(out, "export_report.json"))
        for fmt, entry in report["formats"].items():
            if entry.get("ok"):
                results[fmt] = {"path": os.path.join(out, OUTPUT_NAMES[fmt]), "entry": entry,
                                "status": "relaxed" if relaxed else "ok", "detail": parity_summary(entry)}
            else:
                results[fmt] = {"path": None, "entry": entry, "status": "failed", "detail": entry["error"]}

    run(list(FORMATS), relaxed=False)
    again = [f for f, r in results.items() if r["status"] == "failed" and "parity check failed" in r["detail"]]
    if again:
        strict = {f: results[f]["detail"] for f in again}
        note(f"parity failed for {again}; exporting them again with relaxed thresholds (timing only)")
        with relaxed_parity():
            run(again, relaxed=True)
        for f in again:
            results[f]["strict_failure"] = strict[f]
    return results


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
def time_interleaved(fns, repeats):
    """Warm-up call of each, then `repeats` rounds timing each once, interleaved.

    Returns `({key: last result}, {key: {"median", "best", "runs"}})` in seconds.
    """
    results = {key: fn() for key, fn in fns.items()}
    runs = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.perf_counter()
            results[key] = fn()
            runs[key].append(time.perf_counter() - start)
    return results, {key: {"median": float(np.median(t)), "best": float(min(t)), "runs": [round(s, 4) for s in t]}
                     for key, t in runs.items()}


def tf_threads_text():
    import tensorflow as tf

    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    if intra == 0:
        return f"TF default threads (intra-op all {os.cpu_count()} cores)"
    return f"TF {intra} intra-op / {inter or 'default'} inter-op threads"


def bench_architecture(arch, models, night, edf_path, tmp, args):
    from stmd_keras.deploy.runtime import load_stager
    from stmd_keras.deploy.stage import stage_recording
    from stmd_keras.models.cost import count_flops, count_params

    described = {}
    for role in ("teacher", "student"):
        path, trained = models[role]
        described[role] = "untrained" if not trained else "trained" + model_quality(path)
        say(f"[{arch}] {role} {path} ({described[role]})")
    teacher_path, student_path = models["teacher"][0], models["student"][0]
    teacher = load_stager(teacher_path)
    student = load_stager(student_path)

    started = time.perf_counter()
    cost = {}
    for role, stager in (("teacher", teacher), ("student", student)):
        flops = count_flops(stager.model)
        cost[role] = {"params": count_params(stager.model), "flops_per_epoch": flops.per_epoch("analytic"),
                      "macs_per_epoch": flops.per_epoch("macs")}
    note(f"[{arch}] FLOPs counted in {time.perf_counter() - started:.0f} s")

    started = time.perf_counter()
    exported = export_student(student_path, os.path.join(tmp, arch, "export"))
    note(f"[{arch}] exported in {time.perf_counter() - started:.0f} s")

    rows = {
        "keras-teacher": {"stager": teacher, "path": teacher_path, "role": "teacher", "status": "—", "detail": ""},
        "keras-student": {"stager": student, "path": student_path, "role": "student", "status": "—", "detail": ""},
    }
    for fmt in ("savedmodel", "tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8"):
        r = exported.get(fmt, {"path": None, "status": "failed", "detail": "not exported"})
        row = {"path": r["path"], "role": "student", "status": r["status"], "detail": r["detail"],
               "strict_failure": r.get("strict_failure")}
        if r["path"]:
            row["stager"] = load_stager(r["path"], num_threads=1)
            entry = r["entry"]
            row["lstm_form"] = entry.get("lstm_form")
            row["encoder"] = entry.get("encoder", "per-channel")
            row["export_ms_per_batch"] = entry.get("latency_ms_per_batch")
        rows[fmt] = row

    for key, row in rows.items():
        c = cost[row["role"]]
        row.update(params=c["params"], flops_per_epoch=c["flops_per_epoch"], macs_per_epoch=c["macs_per_epoch"])
        path = row["path"]
        if path is None:
            row["bytes"] = None
        elif os.path.isdir(path):
            row["bytes"] = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
        else:
            row["bytes"] = os.path.getsize(path)
        stager = row.get("stager")
        if stager is None:
            row["runtime"] = "—"
        elif key.startswith("tflite"):
            row["runtime"] = f"LiteRT {stager.num_threads} thread, XNNPACK {'on' if stager.xnnpack else 'off'}"
        elif key == "savedmodel":
            row["runtime"] = "TF SavedModel `serve`"
        else:
            row["runtime"] = "Keras, compiled tf.function"

    # Model inference on the prepared night, interleaved.
    inputs = {}
    fns = {}
    for key, row in rows.items():
        stager = row.get("stager")
        if stager is None:
            continue
        signature = json.dumps([stager.card["channels"], stager.card["fs"], stager.card["seq_len"],
                                stager.card.get("preprocess")], sort_keys=True)
        if signature not in inputs:
            inputs[signature] = prepared_sequences(night, stager.card)
        x = inputs[signature]
        fns[key] = (lambda s=stager, x=x: s.predict_proba(x))
    shape = next(iter(inputs.values())).shape
    say(f"[{arch}] timing model inference on {shape[0]} sequences {shape[1:]} "
        f"({shape[0] * shape[1]} epochs), warm-up + {args.repeats} interleaved rounds ...")
    probs, timing = time_interleaved(fns, args.repeats)
    reference = probs["keras-student"].argmax(-1)
    for key, row in rows.items():
        if key in timing:
            row["timing"] = timing[key]
            if row["role"] == "student":
                row["agreement_with_keras_student"] = float(np.mean(probs[key].argmax(-1) == reference))
            fn = getattr(row["stager"], "_fn", None)  # KerasStager's compiled function
            if fn is not None:
                row["traces"] = int(fn.experimental_get_tracing_count())

    # The whole file, with the int8 student (else the fastest TFLite file there is).
    staged = None
    for key in ("tflite-int8", "tflite-fp32"):
        if rows[key].get("stager") is not None:
            staged = key
            break
    whole = None
    if staged and edf_path:
        stager = rows[staged]["stager"]
        say(f"[{arch}] timing stage_recording(EDF, {staged} student) ...")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result, t = time_interleaved(
                    {"stage": lambda: stage_recording(edf_path, stager, progress=False)}, args.repeats)
            whole = {"model": staged, "timing": t["stage"], "n_epochs": result["stage"].n_epochs,
                     "channels": result["stage"].channels, "reader": result["stage"].reader,
                     "preprocess": stager.card.get("preprocess")}
        except Exception as e:  # reported, not fatal
            whole = {"model": staged, "error": f"{type(e).__name__}: {e}"}

    for row in rows.values():
        row.pop("stager", None)
    return {"architecture": arch,
            "teacher": {"path": teacher_path, "trained": models["teacher"][1], "described": described["teacher"]},
            "student": {"path": student_path, "trained": models["student"][1], "described": described["student"]},
            "tf_threads": tf_threads_text(), "night_input_shape": list(shape), "rows": rows,
            "stage_recording": whole}


# ---------------------------------------------------------------------------
# YASA
# ---------------------------------------------------------------------------
def bench_yasa(night, args):
    try:
        import mne
        import yasa
    except ImportError as e:
        return {"installed": False, "error": str(e),
                "how": "pip install -r bench/requirements-bench.txt   (yasa, which brings mne and lightgbm)"}
    mne.set_log_level("WARNING")
    logging.getLogger("yasa").setLevel(logging.WARNING)
    names = list(YASA_CHANNELS.values())
    index = [night.channels.index(c) for c in names]
    info = mne.create_info(names, sfreq=night.fs, ch_types=["eeg", "eog", "emg"])
    raw = mne.io.RawArray(night.signals[index].astype(np.float64) * 1e-6, info, verbose=False)  # µV -> V

    limit = contextlib.nullcontext()
    if args.yasa_threads:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(args.yasa_threads)

    def once():
        t0 = time.perf_counter()
        staging = yasa.SleepStaging(raw, **YASA_CHANNELS)
        staging.fit()  # features
        t1 = time.perf_counter()
        hypnogram = staging.predict()  # loads the LightGBM classifier and runs it on the cached features
        t2 = time.perf_counter()
        return hypnogram, t1 - t0, t2 - t1

    with limit, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        say(f"[yasa] timing yasa {yasa.__version__} SleepStaging.predict, warm-up + {args.repeats} runs ...")
        hypnogram, _, _ = once()  # warm-up: numba JIT, first imports
        totals, features, classifier = [], [], []
        for _ in range(args.repeats):
            hypnogram, f, c = once()
            features.append(f)
            classifier.append(c)
            totals.append(f + c)
    return {
        "installed": True, "version": yasa.__version__, "mne": mne.__version__,
        "channels": YASA_CHANNELS, "n_epochs": int(len(hypnogram.hypno)),
        "threads": f"{args.yasa_threads} (threadpoolctl)" if args.yasa_threads
        else f"library defaults (up to {os.cpu_count()} cores)",
        "timing": {"median": float(np.median(totals)), "best": float(min(totals)),
                   "runs": [round(t, 4) for t in totals]},
        "features_median": float(np.median(features)), "classifier_median": float(np.median(classifier)),
    }


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
def fmt_mb(b):
    return "—" if b is None else f"{b / MB:.3f} MB"


def fmt_s(t):
    return "—" if t is None else f"{t['median']:.3f} ({t['best']:.3f})"


def print_architecture(res, n_epochs, repeats):
    rows = res["rows"]
    teacher = rows["keras-teacher"].get("timing")
    trained = {r: res[r]["described"] for r in ("teacher", "student")}
    say()
    say(f"### {res['architecture']} (teacher {trained['teacher']}; student {trained['student']}); "
        f"one night = {n_epochs} epochs = {res['night_input_shape'][0]} sequences "
        f"{tuple(res['night_input_shape'][1:])}, model inference only")
    say()
    say(f"| model | params | size on disk | FLOPs / epoch | s / 8-h night, median (best) of {repeats} | "
        "speed-up vs Keras teacher | GFLOP/s | runtime | parity (export check) |")
    say("|---|---|---|---|---|---|---|---|---|")
    for key, label in ROWS:
        row = rows[key]
        t = row.get("timing")
        speed = f"{teacher['median'] / t['median']:.1f}×" if t and teacher else "—"
        gflops = f"{row['flops_per_epoch'] * n_epochs / t['median'] / 1e9:.1f}" if t else "—"
        status = row["status"]
        if status == "ok":
            status = f"ok ({row['detail']})"
        elif status == "relaxed":
            status = f"**relaxed**: strict check failed ({row['detail']})"
        elif status == "failed":
            status = "**export failed**: " + row["detail"].replace("|", "\\|").replace("\n", " ")[:200]
        say(f"| {label} | {row['params']:,} | {fmt_mb(row['bytes'])} | {row['flops_per_epoch'] / 1e6:.1f} M | "
            f"{fmt_s(t)} | {speed} | {gflops} | {row['runtime']} | {status} |")
    say()
    counts = {label.split()[1]: rows[key]["traces"] for key, label in ROWS[:2] if "traces" in rows[key]}
    traced = ("each compiled function traced once (warm-up), never retraced while timed"
              if set(counts.values()) == {1} else f"compiled-function traces: {counts}")
    say(f"- Keras rows: {res['tf_threads']}; {traced}. FLOPs: analytic count, multiply-add = 2 "
        f"(MACs / epoch: teacher {rows['keras-teacher']['macs_per_epoch'] / 1e6:.1f} M, "
        f"student {rows['keras-student']['macs_per_epoch'] / 1e6:.1f} M).")
    agreement = {label: rows[key].get("agreement_with_keras_student") for key, label in ROWS[2:]}
    say("- Stage agreement with the Keras student on this night: " + ", ".join(
        f"{label.replace(' student', '')} {100 * a:.1f} %" for label, a in agreement.items() if a is not None)
        + (" (untrained weights: near-flat probabilities, so quantised files disagree by chance)"
           if not res["student"]["trained"] else ""))
    export_ms = {label: rows[key].get("export_ms_per_batch") for key, label in ROWS[3:]}
    if any(export_ms.values()):
        say("- Export's own timing, ms per sequence (batch 1), XNNPACK / builtin kernels: " + ", ".join(
            f"{label.replace(' student', '').replace('TFLite ', '')} {ms['xnnpack']:.2f} / {ms['builtin']:.2f}"
            for label, ms in export_ms.items() if ms))
    forms = {rows[key].get("lstm_form") for key, _ in ROWS[3:] if rows[key].get("lstm_form")}
    if forms:
        say(f"- TFLite LSTM form: {', '.join(sorted(forms))}")
    encoders = {rows[key].get("encoder") for key, _ in ROWS[3:] if rows[key].get("encoder")}
    if encoders:
        say(f"- TFLite channel streams: {', '.join(sorted(encoders))} "
            "(grouped: one depthwise + grouped convolutions for all channels, `GroupedChannelEncoder`)")
    whole = res.get("stage_recording")
    if whole:
        if "error" in whole:
            say(f"- `stage_recording` on the EDF file with the {whole['model']} student: FAILED: {whole['error']}")
        else:
            t = whole["timing"]
            inference = rows[whole["model"]]["timing"]["median"]
            say(f"- Whole file, `stage_recording(edf, {whole['model']} student)`: {fmt_s(t)} s for "
                f"{whole['n_epochs']} epochs, incl. reading the EDF ({whole['reader']}), preprocessing "
                f"{json.dumps(whole['preprocess'])}, staging and averaging (≈ {t['median'] - inference:.3f} s "
                f"beyond model inference).")


def targets(results, yasa):
    """[(description, measured, PASS/FAIL)]."""
    out = []
    for res in results:
        arch = res["architecture"]
        rows = res["rows"]
        int8, teacher = rows["tflite-int8"], rows["keras-teacher"]
        suffix = "" if res["student"]["trained"] else " (untrained weights)"
        if arch == "cnn_rnn":
            if int8["bytes"] is None:
                out.append((f"{arch} student int8 .tflite ≤ {TARGET_INT8_MB} MB", "no int8 file", "FAIL"))
            else:
                mb = int8["bytes"] / MB
                out.append((f"{arch} student int8 .tflite ≤ {TARGET_INT8_MB} MB", f"{mb:.3f} MB",
                            "PASS" if mb <= TARGET_INT8_MB else "FAIL"))
        t = int8.get("timing")
        if t is None:
            out.append((f"{arch} one night, int8 student, 1 thread ≤ {TARGET_NIGHT_S} s", "no int8 file", "FAIL"))
            out.append((f"{arch} int8 student ≥ {TARGET_SPEEDUP:g}× faster than Keras teacher", "no int8 file",
                        "FAIL"))
            continue
        floor = int8["flops_per_epoch"] * NIGHT_EPOCHS
        out.append((f"{arch} one night, int8 student, 1 thread ≤ {TARGET_NIGHT_S} s{suffix}",
                    f"{t['median']:.3f} s median ({t['best']:.3f} best; {floor / 1e9:.2f} GFLOP, "
                    f"{floor / t['median'] / 1e9:.1f} GFLOP/s)",
                    "PASS" if t["median"] <= TARGET_NIGHT_S else "FAIL"))
        speed = teacher["timing"]["median"] / t["median"]
        out.append((f"{arch} int8 student ≥ {TARGET_SPEEDUP:g}× faster than Keras teacher (graph mode)",
                    f"{speed:.1f}× ({teacher['timing']['median']:.3f} s vs {t['median']:.3f} s)",
                    "PASS" if speed >= TARGET_SPEEDUP else "FAIL"))
    return out


def print_summary(results, yasa, n_epochs, repeats, load):
    for res in results:
        print_architecture(res, n_epochs, repeats)
    say()
    say("### YASA (side-by-side reference, same night)")
    say()
    if not yasa or not yasa.get("installed"):
        why = "skipped (--no-yasa)" if yasa is None else f"not installed ({yasa['error']}); {yasa['how']}"
        say(f"| tool | s / 8-h night |\n|---|---|\n| YASA SleepStaging | {why} |")
    else:
        t = yasa["timing"]
        say(f"| tool | channels | s / 8-h night, median (best) of {repeats} | features | classifier | threads |")
        say("|---|---|---|---|---|---|")
        channels = ", ".join(f"{k.split('_')[0].upper()} {v}" for k, v in yasa["channels"].items())
        say(f"| YASA {yasa['version']} `SleepStaging.predict` | {channels} | {fmt_s(t)} | "
            f"{yasa['features_median']:.3f} | {yasa['classifier_median']:.3f} | {yasa['threads']} |")
        say()
        for res in results:
            row = res["rows"]["tflite-int8"]
            if row.get("timing"):
                m = row["timing"]["median"]
                ratio = t["median"] / m
                whole = res.get("stage_recording") or {}
                extra = ""
                if whole.get("timing") and whole.get("model") == "tflite-int8":
                    extra = (f"; the whole EDF file through `stage_recording` ({whole['timing']['median']:.3f} s) "
                             f"is {t['median'] / whole['timing']['median']:.1f}× faster than YASA's predict alone")
                say(f"- {res['architecture']} int8 student (1 thread, model inference {m:.3f} s) is "
                    f"{ratio:.1f}× {'faster' if ratio >= 1 else 'slower'} than YASA{extra}.")
        say("- Not like for like: YASA computes hand-made features of 3 channels and runs LightGBM; our students "
            "run a CNN over 6 raw channels. YASA's figure excludes reading the file; it includes loading its "
            "classifier file, which `predict` does on every call.")
    say()
    say("### Targets (issue 5)")
    say()
    say("| target | measured | result |\n|---|---|---|")
    for description, measured, verdict in targets(results, yasa):
        say(f"| {description} | {measured} | {verdict} |")
    say()
    say(f"Time targets are judged on the median of {repeats} interleaved rounds after a warm-up. "
        f"Load average before / after: {load[0]:.2f} / {load[1]:.2f} on {os.cpu_count()} cores"
        + (" — the machine was busy; rerun on an idle one for the figures to report."
           if max(load) > 0.5 else "."))


def versions():
    from importlib import metadata

    out = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert", "numpy", "yasa", "mne", "lightgbm"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="timed rounds after the warm-up (default 5)")
    p.add_argument("--arch", default=",".join(ARCHITECTURES),
                   help=f"comma-separated, of {','.join(ARCHITECTURES)} (default both)")
    p.add_argument("--teacher", action="append", help="a trained teacher .keras (repeat for each architecture)")
    p.add_argument("--student", action="append", help="a trained student .keras (repeat for each architecture)")
    p.add_argument("--untrained", action="store_true",
                   help="do not look in runs/: untrained models where --teacher/--student give none")
    p.add_argument("--tf-threads", type=int, default=None,
                   help="TensorFlow intra-op threads for the Keras and SavedModel rows (default: TF's, all cores)")
    p.add_argument("--no-yasa", action="store_true", help="skip the YASA reference")
    p.add_argument("--yasa-threads", type=int, default=None,
                   help="limit YASA's thread pools (threadpoolctl; default: library defaults)")
    p.add_argument("--keep", metavar="DIR", help="keep the exported files and the EDF night in DIR")
    p.add_argument("--json", metavar="PATH", help="also write the measured figures as JSON")
    args = p.parse_args(argv)
    args.arch = [a.strip() for a in args.arch.split(",") if a.strip()]
    unknown = [a for a in args.arch if a not in ARCHITECTURES]
    if unknown or not args.arch:
        p.error(f"--arch: unknown {unknown}; choose from {list(ARCHITECTURES)}")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")

    load_before = os.getloadavg()[0]
    import tensorflow as tf

    if args.tf_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.tf_threads)
    import stmd_keras.models  # noqa: F401  (registers the custom layers)

    tmp = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="stmd-bench-deploy-")
    os.makedirs(tmp, exist_ok=True)
    started = time.perf_counter()
    try:
        say(f"bench/deploy.py: {NIGHT_EPOCHS}-epoch synthetic night (seed {NIGHT_SEED}, {GENERATOR_FS:g} Hz); "
            f"files in {tmp}")
        night = make_night()
        edf_path = write_edf(night, os.path.join(tmp, "edf"))
        models = resolve_models(args, tmp)
        results = [bench_architecture(arch, models[arch], night, edf_path, tmp, args) for arch in args.arch]
        yasa = None if args.no_yasa else bench_yasa(night, args)
        load = (load_before, os.getloadavg()[0])
        say()
        say(f"Versions: {json.dumps(versions())}. Wall time {time.perf_counter() - started:.0f} s.")
        print_summary(results, yasa, NIGHT_EPOCHS, args.repeats, load)
        if args.json:
            figures = {"versions": versions(), "repeats": args.repeats, "night_epochs": NIGHT_EPOCHS,
                       "night_seed": NIGHT_SEED, "load_average": load, "architectures": results, "yasa": yasa,
                       "targets": [dict(zip(("target", "measured", "result"), t)) for t in targets(results, yasa)]}
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(figures, f, indent=2, default=str)
            say(f"figures: {args.json}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
