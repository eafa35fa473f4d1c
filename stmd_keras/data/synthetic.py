"""Synthetic multi-channel PSG nights: the project's embedded default dataset.

`generate` returns whole nights of ISRUC-III-like recordings (six referential
EEG channels, two EOG channels, chin EMG) with one AASM label per 30-s epoch.
It exists because no real full night can be shipped with the project; it is
built so that the two kinds of knowledge the paper distils are present:

* **spatial** - every rhythm is mixed into the channels from one global, two
  hemispheric and one local source per channel, with stage-dependent spatial
  weights and variance shares (`STAGE_PARAMS`), so the channel-correlation
  graph of an epoch carries stage information (e.g. coherent frontal-dominant
  slow waves in N3, anti-phase LOC/ROC eye movements in REM and W);
* **temporal** - hypnograms come from a semi-Markov model fitted to 45 real
  Sleep-EDF nights (`HYPNO_*`, see `docs/scripts/derive_hypnogram_stats.py`):
  per-stage bout lengths and bout-to-bout transitions per third of the night,
  and a REM-entry hazard that produces ~90-min NREM-REM cycles.

How the signal of one epoch is made (details in `docs/SYNTHETIC.md`):

1. its label (plus, for ambiguous epochs, a share of a neighbouring or
   confusable stage) picks a mixture over the seven generator states of
   `STAGE_PARAMS` (W with eyes open or closed, N1, N2, N3, tonic or phasic
   REM); every parameter is the mixture's average;
2. stationary rhythms (aperiodic background, delta, theta, alpha, beta, EMG,
   sensor noise) are drawn in the frequency domain for a 31-s segment per
   epoch and overlap-added with 1-s power-complementary cross-fades, so
   amplitudes change smoothly across epoch boundaries;
3. transient events are added in the time domain: spindles, K-complexes,
   vertex sharp waves, sawtooth waves, blinks, saccades, slow and rapid eye
   movements, REM muscle twitches, arousals, movement artefacts, ECG.

Amplitudes are in microvolts. The generator is vectorised numpy/scipy and is
deterministic: subject `k` of seed `s` is drawn from
`np.random.default_rng([s, k, ...])` alone, so it does not depend on how many
subjects are generated.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.signal
from scipy.special import ndtri

from stmd_keras.data.recording import EPOCH_SEC, DataError, Recording

ISRUC_CHANNELS = ("F3-A2", "C3-A2", "O1-A2", "F4-A1", "C4-A1", "O2-A1", "LOC-A2", "ROC-A1", "X1")
"""ISRUC-III channel names (X1 is the chin EMG)."""

DEFAULT_DIFFICULTY = 1.0
"""The calibrated default: the scales below (`SENSOR_NOISE_UV` ...) were set
so that at 1.0 a subject-wise linear discriminant on 12 spectral features
scores as on real Sleep-EDF nights (~71 % accuracy and 0.65 macro-F1 over
seeds 0-2, real 72.5 % and 0.65; N1 hardest); see
`docs/SYNTHETIC.md`."""

# Region (0 F frontal, 1 C central, 2 O occipital, 3 E EOG, 4 M chin EMG)
# and side (0 left / A2-referenced, 1 right / A1-referenced, -1 none) of
# each channel.
_REGION_INDEX = np.array([0, 1, 2, 0, 1, 2, 3, 3, 4])
_SIDE = np.array([0, 0, 0, 1, 1, 1, 0, 1, -1])
_N_CH = len(ISRUC_CHANNELS)
_LOC, _ROC, _X1 = 6, 7, 8

# --------------------------------------------------------------------------
# Hypnogram model: numbers printed by docs/scripts/derive_hypnogram_stats.py
# from 45 Sleep-EDF nights (44 ST7* telemetry nights + SC4001; R&K S3+S4 ->
# N3; `?` and movement epochs dropped). Lengths are in 30-s epochs.
# --------------------------------------------------------------------------
HYPNO_QUANTILE_PROBS = (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1)
HYPNO_LATENCY_Q = (0, 0, 13.4, 16, 19, 21, 24.4, 35.6, 43, 51.6, 71.2, 106)
HYPNO_FINAL_WAKE_Q = (1, 1, 2, 3, 5, 9, 13, 19.2, 34.2, 45.6, 65.6, 172)
HYPNO_FIRST_STAGE = (0, 1, 0, 0, 0)
# Bout-to-bout transition probabilities [third of the sleep period][from][to].
HYPNO_TRANSITIONS = (
    (
        (0, 0.965, 0.03, 0.004, 0),
        (0.329, 0, 0.641, 0.002, 0.028),
        (0.082, 0.156, 0, 0.682, 0.079),
        (0.052, 0.054, 0.886, 0, 0.008),
        (0.108, 0.338, 0.554, 0, 0),
    ),
    (
        (0, 0.934, 0.051, 0.005, 0.01),
        (0.161, 0, 0.72, 0.002, 0.116),
        (0.146, 0.256, 0, 0.465, 0.133),
        (0.051, 0.037, 0.895, 0, 0.017),
        (0.206, 0.55, 0.244, 0, 0),
    ),
    (
        (0, 0.947, 0.023, 0, 0.03),
        (0.246, 0, 0.592, 0, 0.162),
        (0.15, 0.358, 0, 0.305, 0.187),
        (0.052, 0.03, 0.904, 0, 0.015),
        (0.326, 0.577, 0.097, 0, 0),
    ),
)
# Bout-length quantiles (at HYPNO_QUANTILE_PROBS) [third][stage].
HYPNO_BOUT_LENGTH_Q = (
    (
        (1, 1, 1, 1, 1, 2, 2, 3, 5, 8.1, 11.5, 43),
        (1, 1, 1, 1, 1, 2, 2, 3, 4, 7, 9, 19),
        (1, 1, 1, 1, 2, 3, 5, 8, 13, 23, 34, 111),
        (1, 1, 1, 1, 1, 2, 2, 3.7, 8, 24, 61, 120),
        (1, 1, 1, 3, 4, 14, 18.8, 26.3, 37, 50.1, 63, 76),
    ),
    (
        (1, 1, 1, 1, 1, 1, 2, 2, 3, 7, 9, 175),
        (1, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5, 17),
        (1, 1, 1, 2, 3, 4, 7, 11, 19, 35, 52, 139),
        (1, 1, 1, 1, 1, 1, 2, 2.5, 4, 10.5, 27.8, 87),
        (1, 2, 3, 7, 9, 15, 21, 34, 47, 64, 79.5, 105),
    ),
    (
        (1, 1, 1, 1, 1, 1, 2, 3, 4, 7.6, 16.8, 37),
        (1, 1, 1, 1, 1, 2, 2, 3, 4, 7, 9, 26),
        (1, 1, 2, 2.8, 4, 5, 8, 13, 22, 37, 59.6, 103),
        (1, 1, 1, 1, 1, 1, 2, 2, 3, 8, 14, 50),
        (1, 2, 4, 6, 9, 12, 16, 24, 32, 53, 69, 110),
    ),
)
# Multiplier of the probability of entering REM from an NREM/W bout, by the
# minutes since the last REM bout ended (or since sleep onset). The dip at
# 10-40 min and the peak at 75-90 min make the ~90-min cycle.
HYPNO_REM_HAZARD_EDGES_MIN = (0, 10, 20, 40, 60, 75, 90, 120)
HYPNO_REM_HAZARD = (2.55, 0.05, 0.03, 0.51, 0.83, 1.85, 1.3, 0.83)

# --------------------------------------------------------------------------
# Signal model
# --------------------------------------------------------------------------
RHYTHMS = {
    "background": "aperiodic 1/(f+1)^slope, 0.3-45 Hz (slope per state)",
    "delta": "log-Gaussian around 1 Hz (0.5-2 Hz slow waves, tail to 4 Hz)",
    "theta": "Gaussian 6 Hz, sd 1.3 Hz",
    "alpha": "Gaussian at the subject's alpha peak (8.5-11.5 Hz), sd 0.7 Hz",
    "beta": "Gaussian 21 Hz, sd 6 Hz",
    "emg": "muscle: high-pass 20 Hz (4th order), low-pass 150 Hz",
}
"""Spectral shape of each stationary rhythm (`rms` in `STAGE_PARAMS` is its RMS
in 0-50 Hz at spatial weight 1, before subject and epoch factors)."""

STATES = ("W-eyes-open", "W-eyes-closed", "N1", "N2", "N3", "REM-tonic", "REM-phasic")
_STATE_OF_STAGE = {0: (0, 1), 1: (2,), 2: (3,), 3: (4,), 4: (5, 6)}


def _r(rms, weights, shares):
    """One rhythm entry: RMS (uV), weights over regions F C O E M, variance
    shares of the (global, hemispheric, local) sources."""
    return {"rms": rms, "weights": weights, "shares": shares}


STAGE_PARAMS = {
    "W-eyes-open": {
        "rhythms": {
            "background": _r(9.0, (1.0, 1.0, 0.9, 0.7, 0.0), (0.2, 0.25, 0.55)),
            "delta": _r(16.0, (1.0, 0.75, 0.55, 1.0, 0.0), (0.25, 0.3, 0.45)),
            "theta": _r(3.0, (0.9, 1.0, 0.8, 0.3, 0.0), (0.3, 0.3, 0.4)),
            "alpha": _r(4.0, (0.25, 0.6, 1.0, 0.1, 0.0), (0.45, 0.35, 0.2)),
            "beta": _r(2.5, (1.0, 0.8, 0.8, 0.5, 0.0), (0.2, 0.3, 0.5)),
            "emg": _r(20.0, (0.2, 0.08, 0.2, 0.35, 1.0), (0.0, 0.1, 0.9)),
        },
        "slope": 1.2,
        "jitter": 1.5,
        "events": {"blink": 6.0, "saccade": 10.0, "sem": 0.0, "movement": 0.1},
    },
    "W-eyes-closed": {
        "rhythms": {
            "background": _r(9.0, (1.0, 1.0, 0.9, 0.7, 0.0), (0.2, 0.25, 0.55)),
            "delta": _r(10.0, (1.0, 0.75, 0.55, 0.8, 0.0), (0.25, 0.3, 0.45)),
            "theta": _r(3.5, (0.9, 1.0, 0.8, 0.3, 0.0), (0.3, 0.3, 0.4)),
            "alpha": _r(10.0, (0.25, 0.6, 1.0, 0.1, 0.0), (0.45, 0.35, 0.2)),
            "beta": _r(2.2, (1.0, 0.8, 0.8, 0.4, 0.0), (0.2, 0.3, 0.5)),
            "emg": _r(14.0, (0.15, 0.05, 0.15, 0.25, 1.0), (0.0, 0.1, 0.9)),
        },
        "slope": 1.3,
        "jitter": 1.5,
        "events": {"blink": 0.8, "saccade": 1.0, "sem": 0.4, "movement": 0.03},
    },
    "N1": {
        "rhythms": {
            "background": _r(10.0, (1.0, 1.0, 0.9, 0.6, 0.0), (0.3, 0.3, 0.4)),
            "delta": _r(11.0, (1.0, 0.9, 0.7, 0.5, 0.0), (0.4, 0.3, 0.3)),
            "theta": _r(7.5, (0.8, 1.0, 0.7, 0.3, 0.0), (0.35, 0.3, 0.35)),
            "alpha": _r(5.0, (0.5, 0.7, 1.0, 0.1, 0.0), (0.3, 0.3, 0.4)),
            "beta": _r(2.5, (1.0, 0.8, 0.7, 0.3, 0.0), (0.2, 0.3, 0.5)),
            "emg": _r(9.0, (0.08, 0.03, 0.05, 0.15, 1.0), (0.0, 0.1, 0.9)),
        },
        "slope": 1.6,
        "jitter": 1.2,
        "events": {"vertex": 1.0, "sem": 1.2, "spindle": 0.15, "k_complex": 0.05,
                   "arousal": 0.08, "movement": 0.01},
    },
    "N2": {
        "rhythms": {
            "background": _r(12.0, (1.0, 1.0, 0.85, 0.5, 0.0), (0.35, 0.3, 0.35)),
            "delta": _r(22.0, (1.0, 0.85, 0.6, 0.5, 0.0), (0.55, 0.25, 0.2)),
            "theta": _r(8.0, (0.9, 1.0, 0.7, 0.3, 0.0), (0.4, 0.3, 0.3)),
            "alpha": _r(3.5, (0.7, 0.8, 1.0, 0.1, 0.0), (0.4, 0.3, 0.3)),
            "beta": _r(2.8, (1.0, 0.8, 0.6, 0.2, 0.0), (0.3, 0.3, 0.4)),
            "emg": _r(7.0, (0.05, 0.02, 0.03, 0.1, 1.0), (0.0, 0.1, 0.9)),
        },
        "slope": 1.9,
        "jitter": 1.0,
        "events": {"spindle": 2.5, "k_complex": 0.8, "vertex": 0.15, "sem": 0.1,
                   "arousal": 0.05, "movement": 0.005},
    },
    "N3": {
        "rhythms": {
            "background": _r(14.0, (1.0, 0.95, 0.8, 0.5, 0.0), (0.45, 0.25, 0.3)),
            "delta": _r(48.0, (1.0, 0.8, 0.55, 0.55, 0.0), (0.75, 0.15, 0.1)),
            "theta": _r(6.0, (1.0, 0.9, 0.85, 0.3, 0.0), (0.5, 0.25, 0.25)),
            "alpha": _r(4.0, (1.0, 0.8, 0.7, 0.1, 0.0), (0.4, 0.3, 0.3)),
            "beta": _r(2.2, (1.0, 0.8, 0.6, 0.2, 0.0), (0.3, 0.3, 0.4)),
            "emg": _r(6.0, (0.04, 0.02, 0.03, 0.08, 1.0), (0.0, 0.1, 0.9)),
        },
        "slope": 2.3,
        "jitter": 0.7,
        "events": {"spindle": 0.8, "k_complex": 0.3, "arousal": 0.02, "movement": 0.003},
    },
    "REM-tonic": {
        "rhythms": {
            "background": _r(9.0, (1.0, 1.0, 0.9, 0.5, 0.0), (0.25, 0.25, 0.5)),
            "delta": _r(12.0, (1.0, 0.9, 0.7, 0.4, 0.0), (0.35, 0.3, 0.35)),
            "theta": _r(7.0, (0.9, 1.0, 0.7, 0.2, 0.0), (0.3, 0.3, 0.4)),
            "alpha": _r(4.5, (0.6, 0.8, 1.0, 0.1, 0.0), (0.3, 0.3, 0.4)),
            "beta": _r(2.5, (1.0, 0.8, 0.7, 0.2, 0.0), (0.2, 0.3, 0.5)),
            "emg": _r(2.5, (0.03, 0.01, 0.02, 0.05, 1.0), (0.0, 0.1, 0.9)),
        },
        "slope": 1.8,
        "jitter": 1.0,
        "events": {"sawtooth": 0.15, "rem_burst": 0.1, "twitch": 0.3, "arousal": 0.04,
                   "movement": 0.005},
    },
    "REM-phasic": {
        "rhythms": {
            "background": _r(9.0, (1.0, 1.0, 0.9, 0.5, 0.0), (0.25, 0.25, 0.5)),
            "delta": _r(12.0, (1.0, 0.9, 0.7, 0.4, 0.0), (0.35, 0.3, 0.35)),
            "theta": _r(8.0, (0.9, 1.0, 0.7, 0.2, 0.0), (0.3, 0.3, 0.4)),
            "alpha": _r(4.0, (0.6, 0.8, 1.0, 0.1, 0.0), (0.3, 0.3, 0.4)),
            "beta": _r(3.0, (1.0, 0.8, 0.7, 0.2, 0.0), (0.2, 0.3, 0.5)),
            "emg": _r(2.5, (0.03, 0.01, 0.02, 0.05, 1.0), (0.0, 0.1, 0.9)),
        },
        "slope": 1.7,
        "jitter": 1.0,
        "events": {"sawtooth": 0.8, "rem_burst": 2.0, "twitch": 1.5, "arousal": 0.05,
                   "movement": 0.005},
    },
}
"""Per-state generation parameters.

`rhythms[name]`: `rms` (uV, 0-50 Hz, at weight 1), `weights` over the regions
(F, C, O, E, M) and `shares` of its variance carried by a global source, one
source per hemisphere (A2- vs A1-referenced channels) and one per channel.
`slope`: exponent of the aperiodic background. `jitter`: multiplier of
`EPOCH_JITTER` (wake is the most variable state, N3 the least). `events`: mean count per 30-s
epoch of each transient in `EVENT_PARAMS` (a `rem_burst` holds 2-8 saccades).
"""

EVENT_PARAMS = {
    "spindle": {"amp": 25.0, "dur": (0.5, 2.0), "freq": "subject 11-16 Hz",
                "weights": (0.8, 1.0, 0.45, 0.25, 0.0)},
    "k_complex": {"amp": 90.0, "dur": (0.8, 1.2), "weights": (1.0, 0.85, 0.4, 0.6, 0.0)},
    "vertex": {"amp": 55.0, "dur": (0.2, 0.4), "weights": (0.6, 1.0, 0.3, 0.2, 0.0)},
    "sawtooth": {"amp": 25.0, "dur": (1.5, 5.0), "freq": (2.0, 5.0),
                 "weights": (0.8, 1.0, 0.4, 0.2, 0.0)},
    "blink": {"amp": 150.0, "dur": (0.2, 0.5), "eog": "vertical, LOC and ROC anti-phase"},
    "saccade": {"amp": 60.0, "dur": (1.0, 3.0), "eog": "horizontal step, AC-coupled"},
    "rem_burst": {"amp": 90.0, "n": (2, 8), "eog": "horizontal saccades 0.3-1 s apart"},
    "sem": {"amp": 70.0, "dur": (3.0, 8.0), "freq": (0.2, 0.5), "eog": "horizontal"},
    "twitch": {"amp": 12.0, "dur": (0.1, 0.3), "weights": (0.0, 0.0, 0.0, 0.1, 1.0)},
    "arousal": {"amp": 12.0, "dur": (3.0, 15.0), "weights": (1.0, 1.0, 1.0, 0.5, 2.0)},
    "movement": {"amp": 120.0, "dur": (2.0, 8.0), "weights": (1.0, 1.0, 1.0, 1.3, 1.5)},
}
"""Transient events: peak amplitude (uV at weight 1, jittered +-30 %),
duration range (s), spatial weights over regions (F, C, O, E, M)."""

# Eye signals leak into the frontal EEG (F3 gets +h, F4 -h; blinks both).
_EYE_TO_FRONTAL = 0.12
_BLINK_TO_FRONTAL = 0.2
# ECG picked up through the mastoid references and on the chin.
_ECG_UV = {"A2": 2.5, "A1": 3.5, "X1": 8.0}

# What `difficulty` scales (the values at difficulty 1, the calibrated
# default; every one is multiplied by `difficulty`).
SENSOR_NOISE_UV = 3.4
"""RMS of independent per-channel sensor noise (pink + white, 0-50 Hz)."""
EPOCH_JITTER = 0.4
"""SD of the per-epoch log-amplitude of each rhythm (AR(1) over epochs, rho 0.6)."""
SLOPE_JITTER = 0.135
"""SD of the per-epoch aperiodic slope (AR(1) over epochs, rho 0.6)."""
SUBJECT_SD = 0.34
"""SD of per-subject log factors: rhythm amplitudes, event rates, EMG level
(x1.4), channel gains (x0.5), bout lengths (x0.6), transition probabilities."""
SUBJECT_GAIN_SD = 0.27
"""SD of the per-subject log gain common to all channels."""
ALPHA_PEAK_SD_HZ = 0.95
"""SD of the subject's alpha peak around 10 Hz (clipped to 8.5-11.5 Hz)."""
SPINDLE_PEAK_SD_HZ = 0.8
"""SD of the subject's spindle frequency around 13 Hz (clipped to 11.5-15 Hz)."""
AMBIGUOUS_NEAR = 0.675
"""Probability that an epoch next to a stage change is mixed with the
neighbouring stage (share uniform in 0-0.5)."""
AMBIGUOUS_FAR = 0.2
"""Probability that any other epoch is mixed with a confusable stage."""
CONFUSABLE = {0: (1,), 1: (0, 2, 4), 2: (1, 3), 3: (2,), 4: (1, 0)}
"""Stages an epoch of a stage can be confused with (ambiguity, label noise)."""

_RHYTHM_NAMES = tuple(RHYTHMS)
_EVENT_NAMES = tuple(EVENT_PARAMS)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------
def generate(
    n_subjects,
    seed=0,
    fs=100,
    n_epochs=None,
    channels=ISRUC_CHANNELS,
    difficulty=DEFAULT_DIFFICULTY,
    label_noise=0.0,
):
    """Generates synthetic whole-night PSG recordings.

    Parameters
    ----------
    n_subjects : int
        Number of nights (one per subject), named "synth00", "synth01", ...
    seed : int
        Seed; subject `k` depends only on `(seed, k)` and the other arguments.
    fs : float
        Sampling rate in Hz (100 by default; 200 as ISRUC, 128, 256, ...).
        A 30-s epoch must be a whole number of samples.
    n_epochs : int or None
        Epochs per night. None draws each night's length from
        N(900, 50) clipped to [750, 1050] (ISRUC-III has ~855 per night).
    channels : sequence of str
        Subset of `ISRUC_CHANNELS`, in the order wanted.
    difficulty : float
        Scales sensor noise, per-epoch variability, inter-subject variability
        and the share of stage-ambiguous epochs (0 = clean, prototypical
        epochs; `DEFAULT_DIFFICULTY` ~ real scoring difficulty).
    label_noise : float
        Fraction of labels replaced by a confusable stage (signals keep the
        original stage), on top of the ambiguity that `difficulty` adds.

    Returns
    -------
    list of Recording
        float32 `(C, T)` signals in microvolts, labels 0 W .. 4 REM for
        consecutive 30-s epochs from the first sample.

    Examples
    --------
    >>> recs = generate(2, seed=1, n_epochs=60, channels=("C3-A2", "LOC-A2"))
    >>> recs[0].signals.shape, recs[0].subject
    ((2, 180000), 'synth00')
    """
    n_subjects = _check_int("n_subjects", n_subjects, 0)
    idx = _channel_index(channels)
    fs = _check_fs(fs)
    if n_epochs is not None:
        n_epochs = _check_int("n_epochs", n_epochs, 10)
    difficulty = float(difficulty)
    if not 0.0 <= difficulty <= 5.0:
        raise ValueError(f"difficulty must be in [0, 5]. Received: difficulty={difficulty}")
    label_noise = float(label_noise)
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1]. Received: label_noise={label_noise}")
    names = tuple(ISRUC_CHANNELS[i] for i in idx)
    out = []
    for k in range(n_subjects):
        labels = generate_hypnogram(seed, k, n_epochs, difficulty)
        signals = _night_signals(np.random.default_rng([seed, k, 1]), labels, fs, difficulty)
        if label_noise > 0:
            labels = _flip_labels(np.random.default_rng([seed, k, 2]), labels, label_noise)
        out.append(
            Recording(
                subject=f"synth{k:02d}",
                signals=signals[idx],
                fs=fs,
                channels=names,
                labels=labels,
                source=f"synthetic(seed={seed})",
            )
        )
    return out


def generate_hypnogram(seed=0, subject=0, n_epochs=None, difficulty=DEFAULT_DIFFICULTY):
    """The hypnogram (int array, 0 W .. 4 REM) of subject `subject` of `seed`.

    The same labels `generate` gives that subject (before `label_noise`).
    Nights start with sleep latency in W, end with W, and follow the
    semi-Markov model `HYPNO_*` with subject-specific jitter.
    """
    rng = np.random.default_rng([seed, subject, 0])
    if n_epochs is None:
        n_epochs = int(np.clip(np.round(rng.normal(900, 50)), 750, 1050))
    return _sample_hypnogram(rng, int(n_epochs), float(difficulty))


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------
def _check_int(name, value, minimum):
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _check_fs(fs):
    fs = float(fs)
    n = EPOCH_SEC * fs
    if fs < 50 or abs(n - round(n)) > 1e-6:
        raise ValueError(
            f"fs must be >= 50 Hz with a whole number of samples per 30-s epoch. Received: fs={fs:g}"
        )
    return fs


def _channel_index(channels):
    if isinstance(channels, str):
        channels = (channels,)
    channels = tuple(channels)
    unknown = [c for c in channels if c not in ISRUC_CHANNELS]
    if unknown or not channels:
        raise DataError(
            f"synthetic: unknown channel(s) {unknown or '(none given)'}; "
            f"valid names are {list(ISRUC_CHANNELS)}."
        )
    if len(set(channels)) != len(channels):
        raise DataError(f"synthetic: duplicate channel names in {list(channels)}.")
    return [ISRUC_CHANNELS.index(c) for c in channels]


# --------------------------------------------------------------------------
# Hypnogram
# --------------------------------------------------------------------------
def _draw_quantile(rng, q, size=None, log=False):
    u = rng.random(size)
    probs = np.asarray(HYPNO_QUANTILE_PROBS)
    if log:
        return np.exp(np.interp(u, probs, np.log(np.asarray(q, dtype=float))))
    return np.interp(u, probs, np.asarray(q, dtype=float))


def _sample_hypnogram(rng, n, d):
    latency = int(min(max(2, round(_draw_quantile(rng, HYPNO_LATENCY_Q))), 0.15 * n))
    final = int(min(max(2, round(_draw_quantile(rng, HYPNO_FINAL_WAKE_Q))), 0.1 * n))
    latency, final = max(latency, 1), max(final, 1)
    spt = n - latency - final
    trans = np.array(HYPNO_TRANSITIONS, dtype=float)
    trans *= np.exp(rng.normal(0, SUBJECT_SD * d, size=(1, 5, 5)))
    trans /= trans.sum(axis=2, keepdims=True)
    scale = np.exp(rng.normal(0, 0.6 * SUBJECT_SD * d, size=5))
    lengths_q = np.array(HYPNO_BOUT_LENGTH_Q, dtype=float)
    edges = np.array(HYPNO_REM_HAZARD_EDGES_MIN, dtype=float)
    hazard = np.array(HYPNO_REM_HAZARD)
    labels = np.zeros(n, dtype=np.int64)
    stage = int(rng.choice(5, p=np.array(HYPNO_FIRST_STAGE, dtype=float)))
    t, last_rem_end = 0, 0
    while t < spt:
        third = min(2, 3 * t // spt)
        length = max(1, int(round(_draw_quantile(rng, lengths_q[third, stage], log=True) * scale[stage])))
        labels[latency + t : latency + min(spt, t + length)] = stage
        t += length
        if stage == 4:
            last_rem_end = t
            row = trans[third, stage].copy()
        else:
            row = trans[third, stage].copy()
            h = hazard[np.searchsorted(edges, (t - last_rem_end) / 2.0, side="right") - 1]
            p_rem = min(0.95, row[4] * h)
            rest = 1.0 - row[4]
            row[:4] *= (1.0 - p_rem) / rest if rest > 0 else 0.0
            row[4] = p_rem
        stage = int(rng.choice(5, p=row / row.sum()))
    return labels


def _flip_labels(rng, labels, fraction):
    labels = labels.copy()
    flip = np.flatnonzero(rng.random(labels.size) < fraction)
    for i in flip:
        options = CONFUSABLE[int(labels[i])]
        labels[i] = options[rng.integers(len(options))]
    return labels


# --------------------------------------------------------------------------
# Per-epoch parameters
# --------------------------------------------------------------------------
def _table():
    """STAGE_PARAMS as arrays: rms (S, R), weights (S, R, 5), shares (S, R, 3),
    slope (S,), jitter (S,), rates (S, n_events)."""
    rms = np.array([[STAGE_PARAMS[s]["rhythms"][r]["rms"] for r in _RHYTHM_NAMES] for s in STATES])
    w = np.array([[STAGE_PARAMS[s]["rhythms"][r]["weights"] for r in _RHYTHM_NAMES] for s in STATES])
    sh = np.array([[STAGE_PARAMS[s]["rhythms"][r]["shares"] for r in _RHYTHM_NAMES] for s in STATES])
    slope = np.array([STAGE_PARAMS[s]["slope"] for s in STATES])
    jitter = np.array([STAGE_PARAMS[s]["jitter"] for s in STATES])
    rates = np.array([[STAGE_PARAMS[s]["events"].get(e, 0.0) for e in _EVENT_NAMES] for s in STATES])
    return rms, w, sh / sh.sum(axis=2, keepdims=True), slope, jitter, rates


def _state_mixture(rng, labels, d, subject):
    """(n, 7) weights over STATES: the label's stage plus, for ambiguous
    epochs, a share (< 0.5) of a neighbouring or confusable stage."""
    n = labels.size
    mix5 = np.zeros((n, 5))
    mix5[np.arange(n), labels] = 1.0
    prev = np.concatenate([labels[:1], labels[:-1]])
    nxt = np.concatenate([labels[1:], labels[-1:]])
    near = (prev != labels) | (nxt != labels)
    other = np.where(prev != labels, prev, nxt)
    conf = np.array([CONFUSABLE[int(s)][rng.integers(len(CONFUSABLE[int(s)]))] for s in labels])
    u = rng.random(n)
    share = rng.uniform(0.0, 0.5, size=n)
    mixed = np.where(near, u < min(1.0, AMBIGUOUS_NEAR * d), u < min(1.0, AMBIGUOUS_FAR * d))
    target = np.where(near, other, conf)
    rows = np.flatnonzero(mixed)
    mix5[rows, labels[rows]] -= share[rows]
    mix5[rows, target[rows]] += share[rows]
    # W splits into eyes open / closed (persistent over a few epochs), REM
    # into tonic / phasic (phasic more likely late in the night).
    closed = _persistent_bernoulli(rng, n, subject["p_eyes_closed"], 0.8)
    t_frac = np.arange(n) / n
    phasic = _persistent_bernoulli(rng, n, 0.25 + 0.4 * t_frac, 0.6)
    mix = np.zeros((n, len(STATES)))
    mix[:, 0] = mix5[:, 0] * ~closed
    mix[:, 1] = mix5[:, 0] * closed
    mix[:, 2:5] = mix5[:, 1:4]
    mix[:, 5] = mix5[:, 4] * ~phasic
    mix[:, 6] = mix5[:, 4] * phasic
    return mix


def _persistent_bernoulli(rng, n, p, rho):
    """Boolean series with marginal P(True) = p and lag-1 correlation ~rho."""
    z = _ar1(rng, n, rho)
    return z < ndtri(np.clip(p, 1e-6, 1 - 1e-6))


def _ar1(rng, n, rho, size=()):
    eps = rng.standard_normal(size + (n,))
    z = scipy.signal.lfilter([np.sqrt(1 - rho**2)], [1.0, -rho], eps, axis=-1)
    z[..., 0] = eps[..., 0]
    return z


def _subject_params(rng, d):
    sd = SUBJECT_SD * d
    return {
        "gain": np.exp(rng.normal(0, SUBJECT_GAIN_SD * d) + rng.normal(0, 0.5 * sd, size=_N_CH)),
        "rhythm": np.exp(rng.normal(0, sd, size=len(_RHYTHM_NAMES))),
        "emg": np.exp(rng.normal(0, 1.4 * sd)),
        "event": np.exp(rng.normal(0, sd, size=len(_EVENT_NAMES))),
        "alpha_hz": float(np.clip(10.0 + rng.normal(0, ALPHA_PEAK_SD_HZ * d), 8.5, 11.5)),
        "spindle_hz": float(np.clip(13.0 + rng.normal(0, SPINDLE_PEAK_SD_HZ * d), 11.5, 15.0)),
        "p_eyes_closed": float(rng.uniform(0.35, 0.8)),
        "heart_bpm": float(rng.uniform(52, 75)),
    }


def _epoch_params(rng, labels, d, subject):
    n = labels.size
    mix = _state_mixture(rng, labels, d, subject)
    rms, w, sh, slope, jitter, rates = _table()
    amp = np.sqrt(mix @ rms**2)  # powers mix
    amp *= subject["rhythm"]
    amp[:, _RHYTHM_NAMES.index("emg")] *= subject["emg"]
    amp *= np.exp(EPOCH_JITTER * d * (mix @ jitter)[:, None] * _ar1(rng, n, 0.6, (len(_RHYTHM_NAMES),)).T)
    # Slow-wave activity declines across the night (homeostatic process S).
    t_frac = np.arange(n) / n
    amp[:, _RHYTHM_NAMES.index("delta")] *= np.exp(0.45 * (0.4 - t_frac))
    return {
        "mix": mix,
        "amp": amp,
        "weights": np.einsum("ns,srk->nrk", mix, w),
        "shares": np.einsum("ns,srk->nrk", mix, sh),
        "slope": mix @ slope + SLOPE_JITTER * d * _ar1(rng, n, 0.6),
        "rates": (mix @ rates) * subject["event"],
    }


# --------------------------------------------------------------------------
# Spectral synthesis of the stationary rhythms
# --------------------------------------------------------------------------
def _hp(f, fc, order):
    x = (f / fc) ** (2 * order)
    return x / (1.0 + x)


def _lp(f, fc, order):
    return 1.0 / (1.0 + (f / fc) ** (2 * order))


def _psd(name, f, subject, slope=None):
    """Unnormalised PSD shape of a rhythm on frequencies `f` (Hz)."""
    f = np.asarray(f, dtype=float)
    if name == "background":
        return _hp(f, 0.3, 2) * _lp(f, 45.0, 4) * (f + 1.0) ** (-np.asarray(slope)[..., None])
    if name == "delta":
        return np.exp(-0.5 * (np.log2(np.maximum(f, 1e-9)) / 0.75) ** 2) * _hp(f, 0.3, 2)
    if name == "theta":
        return np.exp(-0.5 * ((f - 6.0) / 1.3) ** 2)
    if name == "alpha":
        return np.exp(-0.5 * ((f - subject["alpha_hz"]) / 0.7) ** 2)
    if name == "beta":
        return np.exp(-0.5 * ((f - 21.0) / 6.0) ** 2) * _lp(f, 40.0, 4)
    if name == "emg":
        return _hp(f, 20.0, 4) * _lp(f, 150.0, 4)
    if name == "sensor":
        return _hp(f, 0.2, 1) * (1.0 / (f + 1.0) + 0.01)
    raise KeyError(name)


_REF_F = np.linspace(0.0, 50.0, 5001)[1:]


def _norm(name, subject, slope=None):
    """1 / integral over 0-50 Hz of the PSD shape (so that rms is 0-50 Hz)."""
    p = _psd(name, _REF_F, subject, slope)
    return 1.0 / (p.sum(axis=-1) * (_REF_F[1] - _REF_F[0]))


def _mixing(amp, weights, shares):
    """(n, 9, 12) mixing from (global, hemi L, hemi R, 9 local) sources."""
    n = amp.shape[0]
    wc = weights[:, _REGION_INDEX] * amp[:, None]  # (n, 9)
    m = np.zeros((n, _N_CH, 3 + _N_CH))
    m[:, :, 0] = wc * np.sqrt(shares[:, 0:1])
    local = shares[:, 2:3] + shares[:, 1:2] * (_SIDE < 0)  # no hemisphere: all local
    m[:, np.arange(_N_CH), 3 + np.arange(_N_CH)] = wc * np.sqrt(local)
    for c in np.flatnonzero(_SIDE >= 0):
        m[:, c, 1 + _SIDE[c]] = wc[:, c] * np.sqrt(shares[:, 1])
    return m


def _stationary(rng, params, subject, fs, E, d):
    n = params["amp"].shape[0]
    ov = 2 * int(round(fs / 2))
    L = E + ov
    f = np.fft.rfftfreq(L, 1.0 / fs)
    ramp = np.sin(0.5 * np.pi * (np.arange(ov) + 0.5) / ov)
    win = np.ones(L)
    win[:ov], win[-ov:] = ramp, ramp[::-1]
    out = np.zeros((_N_CH, (n + 1) * E + ov), dtype=np.float32)
    # Spectral scaling: |X_k|^2 = P(f_k) fs L / 2 gives variance sum P df.
    k = fs * L / 2.0
    specs = {}
    for name in _RHYTHM_NAMES + ("sensor",):
        if name == "background":
            continue
        p = _psd(name, f, subject) * _norm(name, subject)
        band = np.flatnonzero(p > 1e-3 * p.max())
        lo, hi = band[0], band[-1] + 1
        specs[name] = (lo, hi, np.sqrt(p[lo:hi] * k))
    slopes = np.linspace(0.0, 4.0, 81)
    bg_norms = _norm("background", subject, slopes)
    # Frequency coefficients are uniform, not Gaussian: 7x cheaper to draw,
    # and each time sample, a sum over >100 of them, is Gaussian all the same.
    # sqrt(12) * (U - 1/2) has unit variance; sqrt(1/2) splits it over the
    # real and imaginary parts.
    unit = np.float32(np.sqrt(12.0 * 0.5))
    chunk = max(1, int(2_000_000 // (_N_CH * L)))
    for e0 in range(0, n, chunk):
        e1 = min(n, e0 + chunk)
        m = e1 - e0
        Xri = np.zeros((m, _N_CH, 2, f.size), dtype=np.float32)  # real, imag
        for r, name in enumerate(_RHYTHM_NAMES + ("sensor",)):
            if name == "background":
                lo, hi = 1, f.size
                sl = params["slope"][e0:e1]
                scale = np.sqrt(_psd(name, f[lo:hi], subject, sl) * np.interp(sl, slopes, bg_norms)[:, None] * k)
                scale = scale[:, None, None, :]
            else:
                lo, hi, scale = specs[name]
            nb = hi - lo
            if name == "sensor":
                z = rng.random((m, _N_CH, 2 * nb), dtype=np.float32)
                z -= 0.5
                y = z * (unit * SENSOR_NOISE_UV * d)
            else:
                mixing = _mixing(params["amp"][e0:e1, r], params["weights"][e0:e1, r], params["shares"][e0:e1, r])
                z = rng.random((m, 3 + _N_CH, 2 * nb), dtype=np.float32)
                z -= 0.5
                y = (mixing * unit).astype(np.float32) @ z
            y = y.reshape(m, _N_CH, 2, nb)
            y *= np.asarray(scale, dtype=np.float32)
            Xri[..., lo:hi] += y
        X = Xri[:, :, 0] + 1j * Xri[:, :, 1]
        x = scipy.fft.irfft(X, n=L, axis=-1).astype(np.float32) * win.astype(np.float32)
        head = out[:, e0 * E : e1 * E].reshape(_N_CH, m, E)
        head += x[:, :, :E].transpose(1, 0, 2)
        tail = out[:, (e0 + 1) * E : (e1 + 1) * E].reshape(_N_CH, m, E)
        tail[:, :, :ov] += x[:, :, E:].transpose(1, 0, 2)
    return out[:, ov // 2 : ov // 2 + n * E]


# --------------------------------------------------------------------------
# Transient events
# --------------------------------------------------------------------------
def _place(series_len, starts, waves):
    """Sum of waveforms `waves` (m, Lw) starting at `starts` (m,)."""
    if len(starts) == 0:
        return np.zeros(series_len)
    lw = waves.shape[1]
    idx = starts[:, None] + np.arange(lw)
    ok = (idx >= 0) & (idx < series_len)
    return np.bincount(idx[ok], weights=waves[ok], minlength=series_len)


def _event_times(rng, rates, E, col):
    """Start samples of Poisson events of one kind, uniform inside epochs."""
    counts = rng.poisson(rates[:, col])
    epochs = np.repeat(np.arange(rates.shape[0]), counts)
    return epochs * E + rng.integers(0, E, size=epochs.size)


def _add_spatial(x, series_l, series_r, weights):
    """Adds left/right source series with region weights to the channels."""
    w = np.asarray(weights)[_REGION_INDEX]
    for c in range(_N_CH):
        if w[c] == 0:
            continue
        x[c] += (w[c] * (series_l if _SIDE[c] <= 0 else series_r)).astype(np.float32)


def _events(rng, x, params, subject, fs, E):
    T = x.shape[1]
    rates = params["rates"]
    ev = {name: i for i, name in enumerate(_EVENT_NAMES)}

    def jitter(m):
        return np.exp(rng.normal(0, 0.3, size=m))

    def lr(amps):
        """Left/right amplitudes with a small random hemispheric asymmetry."""
        a = rng.normal(0, 0.1, size=amps.size)
        return amps * (1 + a), amps * (1 - a)

    # Spindles (plus those that follow K-complexes).
    kc = _event_times(rng, rates, E, ev["k_complex"])
    sp = np.concatenate([_event_times(rng, rates, E, ev["spindle"]),
                         kc[rng.random(kc.size) < 0.3] + int(0.6 * fs)])
    lw = int(2.0 * fs)
    t = np.arange(lw) / fs
    dur = rng.uniform(0.5, 2.0, size=sp.size)[:, None]
    freq = subject["spindle_hz"] + rng.normal(0, 0.5, size=sp.size)[:, None]
    env = np.where(t < dur, np.sin(np.pi * t / dur) ** 2, 0.0)
    waves = env * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, size=(sp.size, 1)))
    a = EVENT_PARAMS["spindle"]["amp"] * jitter(sp.size)
    al, ar = lr(a)
    _add_spatial(x, _place(T, sp, waves * al[:, None]), _place(T, sp, waves * ar[:, None]),
                 EVENT_PARAMS["spindle"]["weights"])

    # K-complexes: sharp negative wave then a slower positive one.
    lw = int(1.4 * fs)
    t = np.arange(lw) / fs
    s = rng.uniform(0.8, 1.2, size=kc.size)[:, None]
    waves = -np.exp(-0.5 * ((t - 0.25 * s) / (0.08 * s)) ** 2) + 0.6 * np.exp(-0.5 * ((t - 0.65 * s) / (0.18 * s)) ** 2)
    a = EVENT_PARAMS["k_complex"]["amp"] * jitter(kc.size)
    al, ar = lr(a)
    _add_spatial(x, _place(T, kc, waves * al[:, None]), _place(T, kc, waves * ar[:, None]),
                 EVENT_PARAMS["k_complex"]["weights"])

    # Vertex sharp waves.
    vx = _event_times(rng, rates, E, ev["vertex"])
    lw = int(0.5 * fs)
    t = np.arange(lw) / fs
    s = rng.uniform(0.7, 1.3, size=vx.size)[:, None]
    waves = -np.exp(-0.5 * ((t - 0.12 * s) / (0.035 * s)) ** 2) + 0.35 * np.exp(-0.5 * ((t - 0.26 * s) / (0.06 * s)) ** 2)
    a = EVENT_PARAMS["vertex"]["amp"] * jitter(vx.size)
    al, ar = lr(a)
    _add_spatial(x, _place(T, vx, waves * al[:, None]), _place(T, vx, waves * ar[:, None]),
                 EVENT_PARAMS["vertex"]["weights"])

    # Sawtooth wave trains.
    sw = _event_times(rng, rates, E, ev["sawtooth"])
    lw = int(5.0 * fs)
    t = np.arange(lw) / fs
    dur = rng.uniform(1.5, 5.0, size=sw.size)[:, None]
    freq = rng.uniform(2.0, 5.0, size=sw.size)[:, None]
    env = np.where(t < dur, np.sin(np.pi * t / dur), 0.0)
    waves = env * scipy.signal.sawtooth(2 * np.pi * freq * t + rng.uniform(0, 6.3, size=(sw.size, 1)), width=0.2)
    a = EVENT_PARAMS["sawtooth"]["amp"] * jitter(sw.size)
    al, ar = lr(a)
    _add_spatial(x, _place(T, sw, waves * al[:, None]), _place(T, sw, waves * ar[:, None]),
                 EVENT_PARAMS["sawtooth"]["weights"])

    # Eye movements: horizontal position h (LOC +h, ROC -h) and vertical v
    # (blinks; LOC below, ROC above the eye -> anti-phase as well).
    h = np.zeros(T)
    # Saccades (W eyes open) and REM bursts, as AC-coupled steps.
    sac = _event_times(rng, rates, E, ev["saccade"])
    bursts = _event_times(rng, rates, E, ev["rem_burst"])
    n_in = rng.integers(2, 9, size=bursts.size)
    offs = np.concatenate([np.cumsum(rng.uniform(0.3, 1.0, size=k)) for k in n_in]) if bursts.size else np.zeros(0)
    rem_sac = np.repeat(bursts, n_in) + (offs * fs).astype(np.int64)
    starts = np.concatenate([sac, rem_sac])
    amps = np.concatenate([EVENT_PARAMS["saccade"]["amp"] * jitter(sac.size),
                           EVENT_PARAMS["rem_burst"]["amp"] * jitter(rem_sac.size)])
    amps *= rng.choice([-1.0, 1.0], size=amps.size)
    lw = int(3.0 * fs)
    t = np.arange(lw) / fs
    waves = (1 - np.exp(-t / 0.03)) * np.exp(-t / 0.6)
    h += _place(T, starts, waves[None, :] * amps[:, None])
    # Slow eye movements.
    sem = _event_times(rng, rates, E, ev["sem"])
    lw = int(8.0 * fs)
    t = np.arange(lw) / fs
    dur = rng.uniform(3.0, 8.0, size=sem.size)[:, None]
    freq = rng.uniform(0.2, 0.5, size=sem.size)[:, None]
    env = np.where(t < dur, np.sin(np.pi * t / dur), 0.0)
    waves = env * np.sin(2 * np.pi * freq * t) * (EVENT_PARAMS["sem"]["amp"] * jitter(sem.size))[:, None]
    h += _place(T, sem, waves)
    # Blinks.
    bl = _event_times(rng, rates, E, ev["blink"])
    lw = int(0.6 * fs)
    t = np.arange(lw) / fs
    s = rng.uniform(0.06, 0.12, size=bl.size)[:, None]
    waves = np.exp(-0.5 * ((t - 0.25) / s) ** 2) * (EVENT_PARAMS["blink"]["amp"] * jitter(bl.size))[:, None]
    v = _place(T, bl, waves)
    x[_LOC] += (h - 0.6 * v).astype(np.float32)
    x[_ROC] += (-h + 0.8 * v).astype(np.float32)
    x[0] += (_EYE_TO_FRONTAL * h + _BLINK_TO_FRONTAL * v).astype(np.float32)
    x[3] += (-_EYE_TO_FRONTAL * h + _BLINK_TO_FRONTAL * v).astype(np.float32)

    # REM muscle twitches on the chin.
    tw = _event_times(rng, rates, E, ev["twitch"])
    lw = int(0.3 * fs)
    t = np.arange(lw) / fs
    dur = rng.uniform(0.1, 0.3, size=tw.size)[:, None]
    waves = np.where(t < dur, np.sin(np.pi * t / dur), 0.0) * _highpass_noise(rng, (tw.size, lw), fs, 20.0)
    waves *= (EVENT_PARAMS["twitch"]["amp"] * jitter(tw.size))[:, None]
    src = _place(T, tw, waves)
    _add_spatial(x, src, src, EVENT_PARAMS["twitch"]["weights"])

    # Arousals: alpha/beta burst on the EEG, EMG burst (independent per channel).
    ar_t = _event_times(rng, rates, E, ev["arousal"])
    lw = int(15.0 * fs)
    t = np.arange(lw) / fs
    dur = rng.uniform(3.0, 15.0, size=ar_t.size)[:, None]
    env = np.where(t < dur, np.sin(np.pi * np.minimum(t / dur, 1.0)) ** 0.5, 0.0)
    amp = EVENT_PARAMS["arousal"]["amp"] * jitter(ar_t.size)[:, None]
    cortical = _band_noise(rng, (ar_t.size, lw), fs, 8.0, 30.0) * env * amp
    w = np.asarray(EVENT_PARAMS["arousal"]["weights"])[_REGION_INDEX]
    src = _place(T, ar_t, cortical)
    for c in range(_N_CH):
        if c != _X1:
            x[c] += (w[c] * src).astype(np.float32)
    for c in (_LOC, _ROC, _X1, 0, 3):
        burst = _highpass_noise(rng, (ar_t.size, lw), fs, 20.0) * env * amp
        x[c] += ((1.0 if c == _X1 else 0.3) * w[c] * _place(T, ar_t, burst)).astype(np.float32)

    # Movement artefacts: large, independent per channel.
    mv = _event_times(rng, rates, E, ev["movement"])
    lw = int(8.0 * fs)
    t = np.arange(lw) / fs
    dur = rng.uniform(2.0, 8.0, size=mv.size)[:, None]
    env = np.where(t < dur, np.sin(np.pi * np.minimum(t / dur, 1.0)), 0.0)
    amp = EVENT_PARAMS["movement"]["amp"] * jitter(mv.size)[:, None]
    w = np.asarray(EVENT_PARAMS["movement"]["weights"])[_REGION_INDEX]
    for c in range(_N_CH):
        slow = _band_noise(rng, (mv.size, lw), fs, 0.3, 5.0)
        fast = _highpass_noise(rng, (mv.size, lw), fs, 15.0)
        x[c] += (w[c] * _place(T, mv, (slow + 0.4 * fast) * env * amp)).astype(np.float32)

    # ECG through the mastoid references and on the chin.
    bpm = subject["heart_bpm"]
    n_beats = int(T / fs * bpm / 60.0 * 1.3) + 2
    rr = 60.0 / bpm * np.exp(rng.normal(0, 0.05, size=n_beats))
    beats = (np.cumsum(rr) * fs).astype(np.int64)
    beats = beats[beats < T]
    lw = int(0.5 * fs)
    t = np.arange(lw) / fs
    qrs = (np.exp(-0.5 * ((t - 0.1) / 0.012) ** 2) - 0.25 * np.exp(-0.5 * ((t - 0.125) / 0.015) ** 2)
           + 0.2 * np.exp(-0.5 * ((t - 0.35) / 0.04) ** 2))
    ecg = _place(T, beats, np.broadcast_to(qrs, (beats.size, lw)))
    for c in range(_N_CH):
        k = _ECG_UV["X1"] if c == _X1 else (-_ECG_UV["A2"] if _SIDE[c] == 0 else -_ECG_UV["A1"])
        x[c] += (k * ecg).astype(np.float32)


def _band_noise(rng, shape, fs, lo, hi):
    """Unit-RMS noise band-limited to [lo, hi] Hz along the last axis."""
    z = rng.standard_normal(shape)
    Z = np.fft.rfft(z, axis=-1)
    f = np.fft.rfftfreq(shape[-1], 1.0 / fs)
    Z *= (f >= lo) & (f <= hi)
    y = np.fft.irfft(Z, n=shape[-1], axis=-1)
    return y / max(np.sqrt((hi - lo) / (fs / 2)), 1e-3)


def _highpass_noise(rng, shape, fs, lo):
    return _band_noise(rng, shape, fs, lo, min(fs / 2, 150.0))


# --------------------------------------------------------------------------
# One night
# --------------------------------------------------------------------------
def _night_signals(rng, labels, fs, d):
    E = int(round(EPOCH_SEC * fs))
    subject = _subject_params(rng, d)
    params = _epoch_params(rng, labels, d, subject)
    x = _stationary(rng, params, subject, fs, E, d)
    _events(rng, x, params, subject, fs, E)
    x *= subject["gain"][:, None].astype(np.float32)
    return x
