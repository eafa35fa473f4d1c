"""Derives the hypnogram-model constants of `stmd_keras/data/synthetic.py`.

Reads the real whole-night hypnograms that the project has (44 Sleep-EDF
telemetry nights ST7*, the Sleep-EDF cassette night SC4001, and, for
comparison only, 25 ucddb sleep-apnea nights), fits the semi-Markov model that
the synthetic generator samples from, and prints

* the fitted constants, as Python literals ready to paste into `synthetic.py`
  (`HYPNO_*` names), and
* summary statistics (stage proportions, bout lengths, REM latency, cycle
  length, time-of-night profile) of every corpus, for `docs/SYNTHETIC.md`.

The model (fitted on the 45 Sleep-EDF nights; R&K S3+S4 -> N3, `?` and
`Movement time` epochs dropped):

1. sleep latency: W epochs before the first sleep epoch (quantiles);
2. the first sleep stage (probabilities);
3. inside the sleep period (first to last sleep epoch) a semi-Markov chain of
   bouts: a bout-to-bout transition matrix and per-stage bout-length
   quantiles, both per third of the sleep period (time of night);
4. the ultradian (~90-min) NREM-REM cycle: a hazard ratio multiplying the
   probability of entering REM, as a function of the time since the last REM
   bout ended (or since sleep onset);
5. final wake: W epochs after the last sleep epoch (quantiles).

Usage (from the repository root)::

    python docs/scripts/derive_hypnogram_stats.py [--data ../shared/data]

The reading and statistics helpers are imported by
`docs/scripts/synthetic_realism.py`.
"""

from __future__ import annotations

import argparse
import glob
import os
import re

import numpy as np

STAGES = ("W", "N1", "N2", "N3", "REM")
W, N1, N2, N3, REM = range(5)
UNSCORED = -1

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")

# Quantile levels at which length distributions are stored.
QUANTILE_PROBS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
# Bins (minutes since the last REM bout ended, or since sleep onset) of the
# REM-entry hazard ratio.
REM_HAZARD_EDGES_MIN = (0, 10, 20, 40, 60, 75, 90, 120, 1e9)

_RK_TO_AASM = {
    "Sleep stage W": W,
    "Sleep stage 1": N1,
    "Sleep stage 2": N2,
    "Sleep stage 3": N3,
    "Sleep stage 4": N3,
    "Sleep stage R": REM,
}
# ucddb codes: 0 W, 1 REM, 2 S1, 3 S2, 4 S3, 5 S4; anything else unscored.
_UCDDB_TO_AASM = {0: W, 1: REM, 2: N1, 3: N2, 4: N3, 5: N3}


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------
def _read_tal_raw(path):
    """EDF+ annotations parsed from the raw bytes.

    Seven ST hypnograms have a header that pyedflib rejects ("EDF+
    Recordingfield"); their time-stamped annotation lists are still valid.
    """
    with open(path, "rb") as f:
        raw = f.read()
    header_bytes = int(raw[184:192].decode("ascii").strip())
    data = raw[header_bytes:].decode("latin-1")
    onsets, durations, texts = [], [], []
    for tal in data.split("\x00"):
        m = re.match(r"([+-]\d+(?:\.\d*)?)(?:\x15(\d+(?:\.\d*)?))?\x14(.*)", tal, re.S)
        if not m:
            continue
        for text in m.group(3).split("\x14"):
            if text:
                onsets.append(float(m.group(1)))
                durations.append(float(m.group(2) or 0.0))
                texts.append(text)
    return np.array(onsets), np.array(durations), np.array(texts)


def read_edf_hypnogram(path):
    """Epoch labels (0..4, -1 unscored) of a Sleep-EDF hypnogram, 30-s epochs."""
    try:
        import pyedflib

        reader = pyedflib.EdfReader(path)
        try:
            onsets, durations, texts = reader.readAnnotations()
        finally:
            reader.close()
    except OSError:
        onsets, durations, texts = _read_tal_raw(path)
    end = int(round(max(o + d for o, d in zip(onsets, durations)) / 30.0))
    labels = np.full(end, UNSCORED, dtype=np.int64)
    for onset, duration, text in zip(onsets, durations, texts):
        code = _RK_TO_AASM.get(str(text), UNSCORED)
        start = int(round(onset / 30.0))
        labels[start : start + int(round(duration / 30.0))] = code
    return labels


def read_ucddb_hypnogram(path):
    codes = np.loadtxt(path, dtype=np.int64, ndmin=1)
    return np.array([_UCDDB_TO_AASM.get(int(c), UNSCORED) for c in codes], dtype=np.int64)


def trim_wake(labels, keep=60):
    """Keeps at most `keep` W epochs before sleep onset and after final wake.

    Only used for SC4001, a 24-h recording (the usual ±30 min rule); the ST
    and ucddb nights are lights-off to lights-on recordings and kept whole.
    """
    sleep = np.flatnonzero((labels > W))
    lo, hi = max(0, sleep[0] - keep), min(labels.size, sleep[-1] + 1 + keep)
    return labels[lo:hi]


def load_corpora(data_dir):
    """Returns {"sleep-edf": [labels...], "ucddb": [labels...]} (unscored dropped)."""
    sedf = []
    for path in sorted(glob.glob(os.path.join(data_dir, "sleep-edf", "*-Hypnogram.edf"))):
        labels = read_edf_hypnogram(path)
        if os.path.basename(path).startswith("SC"):
            labels = trim_wake(labels[labels != UNSCORED])
        sedf.append(labels[labels != UNSCORED])
    ucddb = []
    for path in sorted(glob.glob(os.path.join(data_dir, "ucddb", "hypnograms", "*_stage.txt"))):
        labels = read_ucddb_hypnogram(path)
        ucddb.append(labels[labels != UNSCORED])
    return {"sleep-edf": sedf, "ucddb": ucddb}


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------
def bouts(labels):
    """Runs of equal labels as (stage, start, length) arrays."""
    labels = np.asarray(labels)
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [labels.size]]))
    return labels[starts], starts, lengths


def sleep_period(labels):
    """(first, last + 1) epoch of the sleep period (first to last non-W epoch)."""
    sleep = np.flatnonzero(np.asarray(labels) > W)
    return int(sleep[0]), int(sleep[-1]) + 1


def summary(nights):
    """Per-corpus summary statistics used in the docs' comparison tables."""
    all_labels = np.concatenate(nights)
    counts = np.bincount(all_labels, minlength=5)
    out = {"nights": len(nights), "epochs_per_night": float(np.mean([n.size for n in nights]))}
    out["proportion"] = counts / counts.sum()
    lengths = {s: [] for s in range(5)}
    third_counts = np.zeros((3, 5))
    rem_latency, cycle = [], []
    latency, final_wake = [], []
    for labels in nights:
        lo, hi = sleep_period(labels)
        latency.append(lo)
        final_wake.append(labels.size - hi)
        st, start, ln = bouts(labels[lo:hi])
        for s, l in zip(st, ln):
            lengths[int(s)].append(int(l))
        spt = labels[lo:hi]
        for k in range(3):
            part = spt[k * spt.size // 3 : (k + 1) * spt.size // 3]
            third_counts[k] += np.bincount(part, minlength=5)
        rem = np.flatnonzero(spt == REM)
        if rem.size:
            rem_latency.append(rem[0] / 2.0)
        # REM periods: REM bouts closer than 15 min belong to one period.
        rem_bouts = start[st == REM]
        if rem_bouts.size > 1:
            onsets = [rem_bouts[0]]
            ends = start[st == REM] + ln[st == REM]
            for b, e_prev in zip(rem_bouts[1:], ends[:-1]):
                if b - e_prev > 30:
                    onsets.append(b)
            cycle.extend(np.diff(onsets) / 2.0)
    out["mean_bout_epochs"] = np.array([np.mean(lengths[s]) if lengths[s] else np.nan for s in range(5)])
    out["third_proportion"] = third_counts / third_counts.sum(axis=1, keepdims=True)
    out["latency_min"] = float(np.median(latency)) / 2.0
    out["final_wake_min"] = float(np.median(final_wake)) / 2.0
    out["rem_latency_min"] = float(np.median(rem_latency)) if rem_latency else float("nan")
    out["rem_cycle_min"] = float(np.median(cycle)) if cycle else float("nan")
    return out


def epoch_transition_matrix(nights):
    counts = np.zeros((5, 5))
    for labels in nights:
        np.add.at(counts, (labels[:-1], labels[1:]), 1)
    return counts / counts.sum(axis=1, keepdims=True)


def _quantiles(values):
    return np.quantile(np.asarray(values, dtype=float), QUANTILE_PROBS)


def fit_model(nights):
    """Fits the generator's hypnogram model (see the module docstring)."""
    latency, final_wake, first_stage = [], [], np.zeros(5)
    trans = np.zeros((3, 5, 5))
    lengths = [[[] for _ in range(5)] for _ in range(3)]
    # REM-entry hazard: observed vs expected REM entries per time bin.
    records = []  # (third, from_stage, minutes_since_rem, went_to_rem)
    for labels in nights:
        lo, hi = sleep_period(labels)
        latency.append(lo)
        final_wake.append(labels.size - hi)
        spt = labels[lo:hi]
        first_stage[spt[0]] += 1
        st, start, ln = bouts(spt)
        last_rem_end = 0
        for i, (s, b, l) in enumerate(zip(st, start, ln)):
            third = min(2, 3 * b // spt.size)
            lengths[third][s].append(l)
            if i + 1 < st.size:
                nxt = st[i + 1]
                trans[third, s, nxt] += 1
                if s != REM:
                    records.append((third, s, (b + l - last_rem_end) / 2.0, nxt == REM))
            if s == REM:
                last_rem_end = b + l
    probs = trans / np.maximum(trans.sum(axis=2, keepdims=True), 1)
    # Bout lengths per third; a cell with < 15 bouts borrows the pooled ones.
    pooled = [sum((lengths[k][s] for k in range(3)), []) for s in range(5)]
    length_q = np.zeros((3, 5, len(QUANTILE_PROBS)))
    for k in range(3):
        for s in range(5):
            vals = lengths[k][s] if len(lengths[k][s]) >= 15 else pooled[s]
            length_q[k, s] = _quantiles(vals)
    edges = np.array(REM_HAZARD_EDGES_MIN)
    obs = np.zeros(edges.size - 1)
    exp = np.zeros(edges.size - 1)
    for third, s, minutes, went in records:
        j = np.searchsorted(edges, minutes, side="right") - 1
        obs[j] += went
        exp[j] += probs[third, s, REM]
    hazard = obs / np.maximum(exp, 1e-9)
    return {
        "latency_q": _quantiles(latency),
        "final_wake_q": _quantiles(final_wake),
        "first_stage": first_stage / first_stage.sum(),
        "transitions": probs,
        "transition_counts": trans,
        "bout_length_q": length_q,
        "rem_hazard": hazard,
        "rem_hazard_n": exp,
    }


# --------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------
def _fmt(a, digits=3):
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        return "(" + ", ".join(f"{v:.{digits}f}".rstrip("0").rstrip(".") if "." in f"{v:.{digits}f}" else f"{v:.{digits}f}" for v in a) + ("," if a.size == 1 else "") + ")"
    return "(\n" + "".join("    " + _fmt(row, digits).replace("\n", "\n    ") + ",\n" for row in a) + ")"


def print_constants(model):
    print("# ---- constants for stmd_keras/data/synthetic.py ----")
    print(f"HYPNO_QUANTILE_PROBS = {_fmt(QUANTILE_PROBS, 2)}")
    print(f"HYPNO_LATENCY_Q = {_fmt(model['latency_q'], 1)}")
    print(f"HYPNO_FINAL_WAKE_Q = {_fmt(model['final_wake_q'], 1)}")
    print(f"HYPNO_FIRST_STAGE = {_fmt(model['first_stage'], 3)}")
    print(f"HYPNO_TRANSITIONS = {_fmt(model['transitions'], 3)}")
    print(f"HYPNO_BOUT_LENGTH_Q = {_fmt(model['bout_length_q'], 1)}")
    print(f"HYPNO_REM_HAZARD_EDGES_MIN = {_fmt(REM_HAZARD_EDGES_MIN[:-1], 0)}")
    print(f"HYPNO_REM_HAZARD = {_fmt(model['rem_hazard'], 2)}")
    print()


def print_summary(name, s):
    print(f"## {name}: {s['nights']} nights, {s['epochs_per_night']:.0f} epochs/night on average")
    print("| | " + " | ".join(STAGES) + " |")
    print("|---|" + "---|" * 5)
    print("| proportion (%) | " + " | ".join(f"{100 * v:.1f}" for v in s["proportion"]) + " |")
    print("| mean bout (epochs) | " + " | ".join(f"{v:.1f}" for v in s["mean_bout_epochs"]) + " |")
    for k, row in enumerate(s["third_proportion"]):
        print(f"| third {k + 1} of sleep period (%) | " + " | ".join(f"{100 * v:.1f}" for v in row) + " |")
    print(
        f"\nmedian sleep latency {s['latency_min']:.1f} min, final wake {s['final_wake_min']:.1f} min, "
        f"REM latency {s['rem_latency_min']:.0f} min, REM-onset to REM-onset {s['rem_cycle_min']:.0f} min\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="the shared data folder")
    args = parser.parse_args(argv)
    corpora = load_corpora(args.data)
    model = fit_model(corpora["sleep-edf"])
    print_constants(model)
    print("# bouts per (third, from-stage) behind HYPNO_TRANSITIONS:")
    print(model["transition_counts"].sum(axis=2).astype(int))
    print("# expected REM entries per hazard bin:", np.round(model["rem_hazard_n"], 1))
    print()
    for name, nights in corpora.items():
        print_summary(name, summary(nights))
        print("epoch-level transition matrix (rows: from W, N1, N2, N3, REM):")
        print(np.round(epoch_transition_matrix(nights), 3))
        print()


if __name__ == "__main__":
    main()
