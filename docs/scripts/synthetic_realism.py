"""Compares the synthetic PSG generator with real EEG and real hypnograms.

Prints markdown tables for `docs/SYNTHETIC.md` and writes
`docs/figures/synthetic_vs_real_spectra.png`:

(a) Wake and N3 Welch spectra and epoch amplitude distributions of the
    generator's central channel (C3-A2, generated at 128 Hz) against the real
    ucddb epochs (`../shared/data/ucddb/ucddb_eeg_w_n3_128hz.npz`, C3-A2 or
    C4-A1, W and N3 only);
(b) per-stage relative log band powers and Hjorth mobility of a frontal
    (F3-A2) and an occipital (O1-A2) channel against the real Sleep-EDF table
    of `../shared/data/README.md` (Fpz-Cz and Pz-Oz, 20 SC nights);
(c) a subject-wise linear discriminant on those 12 features (5 folds of 2
    subjects over 10 synthetic subjects) against its real-data score
    (72.5 % accuracy, 0.65 macro-F1, same README);
(d) stage proportions, bout lengths and the time-of-night profile of
    synthetic against real hypnograms.

Usage (from the repository root)::

    python docs/scripts/synthetic_realism.py [--difficulty 1.0] [--seed 0]
        [--sweep 0.5,1.0,1.5] [--no-figure]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.signal

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from stmd_keras.data import synthetic  # noqa: E402
import derive_hypnogram_stats as hyp  # noqa: E402

DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
FIGURE = os.path.join(ROOT, "docs", "figures", "synthetic_vs_real_spectra.png")
STAGES = ("W", "N1", "N2", "N3", "REM")
BANDS = ((0.5, 4), (4, 8), (8, 13), (13, 30), (30, 50))
BAND_NAMES = ("delta", "theta", "alpha", "beta", "gamma")

# Real per-stage means from ../shared/data/README.md ("Facts: real per-stage
# spectra (Sleep-EDF, 20 nights, 10 subjects)"): relative log band powers
# delta, theta, alpha, beta, gamma and Hjorth mobility.
REAL_FRONTAL = {  # Fpz-Cz
    "W": (3.01, 0.60, -0.39, -1.45, -1.77, 0.427),
    "N1": (2.63, 0.87, -0.03, -1.21, -2.26, 0.443),
    "N2": (3.25, 1.17, 0.06, -1.17, -3.31, 0.311),
    "N3": (4.50, 1.34, -0.07, -1.87, -3.89, 0.167),
    "REM": (2.79, 1.20, -0.07, -1.45, -2.47, 0.386),
}
REAL_OCCIPITAL = {  # Pz-Oz
    "W": (1.61, 0.25, 0.48, -0.92, -1.42, 0.783),
    "N1": (2.47, 1.00, 0.53, -1.46, -2.54, 0.444),
    "N2": (3.09, 1.37, 0.16, -1.24, -3.38, 0.331),
    "N3": (4.23, 1.52, -0.05, -1.95, -3.75, 0.182),
    "REM": (2.61, 1.30, 0.52, -1.60, -2.84, 0.404),
}
REAL_LDA = {"accuracy": 0.725, "macro_f1": 0.65}


# --------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------
def band_features(epochs, fs=100.0):
    """(n, 6): relative natural-log band powers (5) and Hjorth mobility.

    As in the README: Welch (nperseg 256) mean PSD inside each band, log,
    minus the mean over the five bands; mobility sqrt(var(dx) / var(x)).
    """
    f, p = scipy.signal.welch(epochs, fs=fs, nperseg=256, axis=-1)
    bp = np.stack([np.log(p[:, (f >= lo) & (f < hi)].mean(axis=1) + 1e-20) for lo, hi in BANDS], axis=1)
    rel = bp - bp.mean(axis=1, keepdims=True)
    mob = np.sqrt(np.var(np.diff(epochs, axis=1), axis=1) / (np.var(epochs, axis=1) + 1e-20))
    return np.concatenate([rel, mob[:, None]], axis=1)


def synthetic_features(recordings, frontal="F3-A2", occipital="O1-A2"):
    feats, labels, groups = [], [], []
    for rec in recordings:
        ep = rec.epochs()
        fi, oi = rec.channels.index(frontal), rec.channels.index(occipital)
        feats.append(np.concatenate([band_features(ep[:, fi], rec.fs), band_features(ep[:, oi], rec.fs)], axis=1))
        labels.append(rec.labels)
        groups.append(np.full(rec.n_epochs, rec.subject))
    return np.concatenate(feats), np.concatenate(labels), np.concatenate(groups)


def lda_scores(x, y, groups, n_folds=5):
    """Subject-wise k-fold LDA: accuracy, macro-F1, per-class F1, confusion."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.metrics import confusion_matrix, f1_score

    subjects = np.unique(groups)
    folds = np.array_split(subjects, n_folds)
    pred = np.zeros_like(y)
    for test in folds:
        te = np.isin(groups, test)
        model = LinearDiscriminantAnalysis().fit(x[~te], y[~te])
        pred[te] = model.predict(x[te])
    return {
        "accuracy": float(np.mean(pred == y)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=range(5))),
        "per_class_f1": f1_score(y, pred, average=None, labels=range(5)),
        "confusion": confusion_matrix(y, pred, labels=range(5)),
    }


# --------------------------------------------------------------------------
# (a) W / N3 against ucddb
# --------------------------------------------------------------------------
def load_ucddb():
    d = np.load(os.path.join(DATA, "ucddb", "ucddb_eeg_w_n3_128hz.npz"), allow_pickle=False)
    x = d["x"].astype(np.float32) * d["scale"]
    y = d["y"].astype(np.int64)
    keep = x.std(axis=1) > 0  # a few exported W epochs are flat
    return x[keep], y[keep], int(d["fs"])


def spectra(epochs, fs):
    f, p = scipy.signal.welch(epochs, fs=fs, nperseg=int(4 * fs), axis=-1)
    return f, p


def highpassed_std(epochs, fs):
    """Epoch RMS after a 0.3-Hz high-pass (the real export keeps DC drifts)."""
    sos = scipy.signal.butter(2, 0.3, "highpass", fs=fs, output="sos")
    return scipy.signal.sosfiltfilt(sos, epochs, axis=-1).std(axis=-1)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------
def fmt_row(cells):
    return "| " + " | ".join(cells) + " |"


def run(difficulty, seed, n_subjects=10, figure=True):
    t0 = time.perf_counter()
    recs = synthetic.generate(n_subjects, seed=seed, difficulty=difficulty)
    gen_s = time.perf_counter() - t0
    n_ep = sum(r.n_epochs for r in recs)
    print(f"generated {n_subjects} nights, {n_ep} epochs, 9 channels at 100 Hz in {gen_s:.1f} s "
          f"(difficulty {difficulty}, seed {seed})\n")
    x, y, g = synthetic_features(recs)
    scores = lda_scores(x, y, g)
    return recs, x, y, g, scores, gen_s


def print_band_table(x, y):
    print("### (b) relative log band power and Hjorth mobility per stage (synthetic / real)\n")
    print(fmt_row(["channel", "stage"] + list(BAND_NAMES) + ["mobility"]))
    print("|---|---|" + "---|" * 6)
    for name, off, real in (("F3-A2 / Fpz-Cz", 0, REAL_FRONTAL), ("O1-A2 / Pz-Oz", 6, REAL_OCCIPITAL)):
        for s, stage in enumerate(STAGES):
            m = x[y == s, off : off + 6].mean(axis=0)
            cells = [f"{m[i]:+.2f} / {real[stage][i]:+.2f}" for i in range(5)]
            cells.append(f"{m[5]:.3f} / {real[stage][5]:.3f}")
            print(fmt_row([name, stage] + cells))
    print()
    err = []
    for off, real in ((0, REAL_FRONTAL), (6, REAL_OCCIPITAL)):
        for s, stage in enumerate(STAGES):
            err.append(np.abs(x[y == s, off : off + 5].mean(axis=0) - np.array(real[stage][:5])))
    print(f"mean absolute difference of the relative band powers: {np.mean(err):.2f} (natural-log units)\n")


def print_lda(scores, seed, extra=()):
    print("### (c) subject-wise LDA on the 12 features (5 folds x 2 subjects)\n")
    print(fmt_row(["", "accuracy", "macro-F1"] + [f"F1 {s}" for s in STAGES]))
    print("|---|---|---|" + "---|" * 5)
    for sd, sc in ((seed, scores),) + tuple(extra):
        print(fmt_row([f"synthetic, seed {sd}", f"{100 * sc['accuracy']:.1f} %", f"{sc['macro_f1']:.3f}"]
                      + [f"{v:.2f}" for v in sc["per_class_f1"]]))
    print(fmt_row(["real Sleep-EDF (README)", "72.5 %", "0.65"] + ["-"] * 5))
    print(f"\nconfusion matrix, seed {seed} (rows true, columns predicted; W N1 N2 N3 REM):\n")
    print("```")
    print(scores["confusion"])
    print("```\n")


def print_ucddb(syn128):
    """`syn128`: synthetic recordings at 128 Hz with a C3-A2 channel."""
    xr, yr, fsr = load_ucddb()
    ep = np.concatenate([r.epochs()[:, r.channels.index("C3-A2")] for r in syn128])
    ys = np.concatenate([r.labels for r in syn128])
    print(f"### (a) W and N3 on a central channel: synthetic C3-A2 ({len(syn128)} nights) vs real ucddb (128 Hz)\n")
    print(fmt_row(["", "epochs W / N3", "median RMS W", "median RMS N3", "N3/W RMS ratio",
                   "delta (0.5-4 Hz) power share W / N3", "alpha (8-13 Hz) share W / N3"]))
    print("|---|---|---|---|---|---|---|")
    out = {}
    for name, e, y, fs, unit in (("synthetic", ep, ys, syn128[0].fs, "uV"), ("ucddb (real)", xr, yr, fsr, "export units")):
        rms = highpassed_std(e, fs)
        f, p = spectra(e, fs)
        tot = p[:, (f >= 0.5) & (f < 30)].sum(axis=1)
        share = lambda lo, hi: p[:, (f >= lo) & (f < hi)].sum(axis=1) / tot  # noqa: E731
        w, n3 = y == 0, y == 3
        mw, mn = np.median(rms[w]), np.median(rms[n3])
        dl, al = share(0.5, 4), share(8, 13)
        print(fmt_row([name, f"{w.sum()} / {n3.sum()}", f"{mw:.3g} {unit}", f"{mn:.3g} {unit}", f"{mn / mw:.2f}",
                       f"{np.median(dl[w]):.2f} / {np.median(dl[n3]):.2f}",
                       f"{np.median(al[w]):.2f} / {np.median(al[n3]):.2f}"]))
        out[name] = {"f": f, "p_w": p[w], "p_n3": p[n3], "rms_w": rms[w], "rms_n3": rms[n3]}
    print("\n(RMS after a 0.3-Hz high-pass; the ucddb export's amplitude unit is not documented, so compare "
          "ratios and shapes, not absolute values.)\n")
    return out


def print_hypnograms(n_nights, seed, difficulty):
    real = hyp.load_corpora(DATA)
    nights = [synthetic.generate_hypnogram(seed, k, None, difficulty) for k in range(n_nights)]
    print("### (d) hypnograms: synthetic vs real\n")
    print(fmt_row(["corpus", "nights", "epochs/night"] + [f"% {s}" for s in STAGES]
                  + [f"bout {s}" for s in STAGES] + ["N3 % third 1 / 3", "REM % third 1 / 3", "REM latency (min)",
                                                    "REM cycle (min)"]))
    print("|---|---|---|" + "---|" * 14)
    stats = {}
    for name, corpus in (("synthetic", nights), ("Sleep-EDF (45, the model's source)", real["sleep-edf"]),
                         ("ucddb (25, apnea; not used)", real["ucddb"])):
        s = hyp.summary(corpus)
        stats[name] = s
        tp = s["third_proportion"]
        print(fmt_row([name, str(s["nights"]), f"{s['epochs_per_night']:.0f}"]
                      + [f"{100 * v:.1f}" for v in s["proportion"]]
                      + [f"{v:.1f}" for v in s["mean_bout_epochs"]]
                      + [f"{100 * tp[0, 3]:.0f} / {100 * tp[2, 3]:.0f}", f"{100 * tp[0, 4]:.0f} / {100 * tp[2, 4]:.0f}",
                         f"{s['rem_latency_min']:.0f}", f"{s['rem_cycle_min']:.0f}"]))
    print("\n(bout = mean bout length in 30-s epochs inside the sleep period; REM latency from sleep onset; "
          "REM cycle = median REM-onset to REM-onset interval, REM bouts < 15 min apart merged.)\n")
    print("Epoch-to-epoch transition probabilities, synthetic / Sleep-EDF (rows: from; columns: to):\n")
    ts, tr = hyp.epoch_transition_matrix(nights), hyp.epoch_transition_matrix(real["sleep-edf"])
    print(fmt_row(["from \\ to"] + list(STAGES)))
    print("|---|" + "---|" * 5)
    for i, stage in enumerate(STAGES):
        print(fmt_row([stage] + [f"{ts[i, j]:.3f} / {tr[i, j]:.3f}" for j in range(5)]))
    print()
    return nights, real


def make_figure(x, y, scores, ucddb_cmp, night, real_night, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5))
    # (a) spectra, each source normalised by its median W power in 0.5-30 Hz.
    ax = axes[0, 0]
    for name, style in (("synthetic", "-"), ("ucddb (real)", "--")):
        d = ucddb_cmp[name]
        f = d["f"]
        sel = (f >= 0.5) & (f < 30)
        ref = np.median(d["p_w"][:, sel].sum(axis=1) * (f[1] - f[0]))
        for key, color, lab in (("p_w", "tab:orange", "W"), ("p_n3", "tab:blue", "N3")):
            m = np.median(d[key], axis=0) / ref
            ax.semilogy(f[f <= 40], m[f <= 40], style, color=color, label=f"{lab} {name}")
    ax.set(xlabel="Hz", ylabel="median PSD / (median W power)", title="(a) C3-A2 synthetic vs ucddb central EEG")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    # (a) amplitudes.
    ax = axes[0, 1]
    bins = np.linspace(-1.5, 2.0, 50)
    for name, style in (("synthetic", "step"), ("ucddb (real)", "stepfilled")):
        d = ucddb_cmp[name]
        ref = np.median(d["rms_w"])
        for key, color, lab in (("rms_w", "tab:orange", "W"), ("rms_n3", "tab:blue", "N3")):
            kw = {"alpha": 0.3} if style == "stepfilled" else {"linewidth": 2}
            ax.hist(np.log10(d[key] / ref), bins=bins, density=True, histtype=style, color=color,
                    label=f"{lab} {name}", **kw)
    ax.set(xlabel="log10(epoch RMS / median W RMS)", ylabel="density",
           title="(a) epoch amplitude, relative to each source's W")
    ax.legend(fontsize=8)
    # (b) band powers.
    for col, (off, real, chan) in enumerate(((0, REAL_FRONTAL, "F3-A2 vs Fpz-Cz"), (6, REAL_OCCIPITAL, "O1-A2 vs Pz-Oz"))):
        ax = axes[0, 2] if col == 0 else axes[1, 0]
        colors = ("tab:orange", "tab:green", "tab:cyan", "tab:blue", "tab:red")
        for s, stage in enumerate(STAGES):
            m = x[y == s, off : off + 5].mean(axis=0)
            ax.plot(range(5), m, "-o", color=colors[s], label=f"{stage} synthetic")
            ax.plot(range(5), real[stage][:5], "--x", color=colors[s], alpha=0.8, label=f"{stage} real")
        ax.set_xticks(range(5), BAND_NAMES)
        ax.set(ylabel="log band power - mean over bands", title=f"(b) relative band power, {chan}")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
    # (c) confusion.
    ax = axes[1, 1]
    cm = scores["confusion"] / scores["confusion"].sum(axis=1, keepdims=True)
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    for i in range(5):
        for j in range(5):
            ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center", color="white" if cm[i, j] > 0.5 else "black")
    ax.set_xticks(range(5), STAGES)
    ax.set_yticks(range(5), STAGES)
    ax.set(xlabel="predicted", ylabel="true",
           title=f"(c) subject-wise LDA, synthetic: acc {100 * scores['accuracy']:.1f} %, "
                 f"MF1 {scores['macro_f1']:.2f}")
    # (d) hypnograms.
    ax = axes[1, 2]
    order = np.array([4, 2, 1, 0, 3])  # W top, then REM, N1, N2, N3 (plotting height)
    for lab, h, off, color in (("synthetic night", night, 0.0, "tab:purple"), ("real ST7011 night", real_night, -6.0, "tab:gray")):
        t = np.arange(h.size) / 120.0
        ax.step(t, order[h] + off, where="post", color=color, label=lab)
    ax.set_yticks(list(order) + list(order - 6), list(STAGES) * 2)
    ax.set(xlabel="hours", title="(d) hypnograms: synthetic (top) vs real (bottom)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"figure: {os.path.relpath(path, ROOT)}\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--difficulty", type=float, default=synthetic.DEFAULT_DIFFICULTY)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", default="", help="comma-separated difficulties: LDA scores only")
    parser.add_argument("--extra-seeds", default="1,2", help="more seeds for the LDA table ('' for none)")
    parser.add_argument("--no-figure", action="store_true")
    args = parser.parse_args(argv)
    if args.sweep:
        print(fmt_row(["difficulty", "accuracy", "macro-F1"] + [f"F1 {s}" for s in STAGES]))
        print("|---|---|---|" + "---|" * 5)
        for d in (float(v) for v in args.sweep.split(",")):
            *_, scores, _ = run(d, args.seed)
            print(fmt_row([f"{d:g}", f"{100 * scores['accuracy']:.1f} %", f"{scores['macro_f1']:.3f}"]
                          + [f"{v:.2f}" for v in scores["per_class_f1"]]))
        return
    recs, x, y, g, scores, gen_s = run(args.difficulty, args.seed)
    extra = []
    for sd in (int(v) for v in args.extra_seeds.split(",") if v.strip()):
        extra.append((sd, run(args.difficulty, sd)[4]))
    print_band_table(x, y)
    print_lda(scores, args.seed, extra)
    syn128 = synthetic.generate(3, seed=args.seed, fs=128, difficulty=args.difficulty, channels=("C3-A2",))
    ucddb_cmp = print_ucddb(syn128)
    nights, real = print_hypnograms(200, args.seed, args.difficulty)
    if not args.no_figure:
        real_night = hyp.read_edf_hypnogram(os.path.join(DATA, "sleep-edf", "ST7011JP-Hypnogram.edf"))
        real_night = real_night[real_night >= 0]
        make_figure(x, y, scores, ucddb_cmp, recs[0].labels, real_night, FIGURE)


if __name__ == "__main__":
    main()
