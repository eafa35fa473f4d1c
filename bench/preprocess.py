"""Preprocessing time of one ISRUC-III night: from the EDF file vs from the cache.

    python bench/preprocess.py [--repeats 3] [--dir DIR]

Writes one 8-hour, 10-channel, 200 Hz night in the raw ISRUC-III layout
(`1/1.rec` EDF with the ISRUC channel labels + `1/1_1.txt`, 960 labels) into a
temporary folder, from `stmd_keras.data.synthetic` signals (X2, which the
generator lacks, is a second chin-EMG-like noise channel), then times, best of
`--repeats`:

(a) read + filter + resample + epoch: `get_dataset("isruc").load_recording`,
    `prepare(rec, PreprocessConfig(fs=100, bandpass=(0.3, 35), notch=50))`
    and `.epochs()`; target <= 2 s (issue 3).
(b) cached reload: `read_cached(path)` with the CRC32 check and `.epochs()`
    of the `prepare_dataset` file; target <= 0.2 s. The file was just
    written, so it is read from the page cache (a cold read from disk adds
    its ~115 MB at the disk's speed).

`.epochs()` copies the memmapped night into one `(960, 10, 3000)` array; it
is timed because it is what "epoch" costs, though training itself only
slices the batches it needs out of the memmap.
"""

import argparse
import dataclasses
import os
import tempfile
import time

import numpy as np
import pyedflib

from stmd_keras.data import cache, synthetic
from stmd_keras.data.cache import prepare_dataset, read_cached
from stmd_keras.data.datasets import get_dataset
from stmd_keras.data.preprocess import PreprocessConfig, prepare

CHANNELS = ("F3-A2", "C3-A2", "O1-A2", "F4-A1", "C4-A1", "O2-A1", "LOC-A2", "ROC-A1", "X1", "X2")
FS = 200
N_EPOCHS = 960  # 8 hours
CONFIG = PreprocessConfig(fs=100, channels=CHANNELS, bandpass=(0.3, 35), notch=50)
TARGETS = {"a": 2.0, "b": 0.2}


def write_night(root) -> str:
    """Writes `root/1/1.rec` and `root/1/1_1.txt`; returns `root`."""
    (night,) = synthetic.generate(1, seed=0, fs=FS, n_epochs=N_EPOCHS, channels=CHANNELS[:9])
    rng = np.random.default_rng(0)
    x2 = 0.8 * night.signals[8] + 3.0 * rng.standard_normal(night.signals.shape[1]).astype(np.float32)
    signals = [np.asarray(x, dtype=np.float64) for x in (*night.signals, x2)]
    folder = os.path.join(root, "1")
    os.makedirs(folder, exist_ok=True)
    w = pyedflib.EdfWriter(os.path.join(folder, "1.rec"), len(CHANNELS), file_type=pyedflib.FILETYPE_EDF)
    try:
        w.setSignalHeaders([
            dict(label=c, dimension="uV", sample_frequency=FS, physical_min=-bound, physical_max=bound,
                 digital_min=-32768, digital_max=32767, transducer="AgAgCl electrode", prefilter="")
            for c, bound in zip(CHANNELS, (float(np.ceil(np.abs(x).max() * 1.05)) for x in signals))
        ])
        w.writeSamples(signals)
    finally:
        w.close()
    codes = np.where(night.labels == 4, 5, night.labels)  # ISRUC writes REM as 5
    with open(os.path.join(folder, "1_1.txt"), "w") as f:
        f.write("\n".join(map(str, codes)) + "\n\n")
    return root


def best(fn, repeats):
    """`(best seconds, last result)` of `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def time_raw(raw, repeats) -> dict:
    """Part (a), whole and by step."""
    dataset = get_dataset("isruc")
    load = lambda: dataset.load_recording(raw, "1", CHANNELS)  # noqa: E731
    total, _ = best(lambda: prepare(load(), CONFIG).epochs(), repeats)
    t_read, rec = best(load, repeats)
    t_filter, filtered = best(lambda: prepare(rec, dataclasses.replace(CONFIG, standardize=False)), repeats)
    t_std, prepared = best(lambda: prepare(filtered, PreprocessConfig(fs=CONFIG.fs)), repeats)
    t_epoch, _ = best(prepared.epochs, repeats)
    return {"total": total, "EDF read (load_recording)": t_read,
            "filter + resample (notch, FIR low-pass, high-pass)": t_filter,
            "standardise (z-score per channel)": t_std, "epoch (.epochs() copy)": t_epoch}


def time_cached(path, repeats) -> dict:
    """Part (b), whole and by step."""
    total, _ = best(lambda: read_cached(path).epochs(), repeats)
    t_open, rec = best(lambda: read_cached(path, verify=False), repeats)
    t_crc, _ = best(lambda: cache._crc32(rec.signals), repeats)
    t_epoch, _ = best(rec.epochs, repeats)
    return {"total": total, "open: HDF5 header, memmap, Recording NaN scan": t_open,
            "CRC32 verify over the memmap": t_crc, "epoch (.epochs() copy)": t_epoch}


def table(name, target, figures):
    verdict = "PASS" if figures["total"] <= target else "FAIL"
    print(f"| {name} | {figures['total']:.3f} | <= {target:g} | {verdict} |")
    for step, seconds in figures.items():
        if step != "total":
            print(f"|   {step} | {seconds:.3f} | | |")
    return verdict == "PASS"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="runs per figure; the best is reported")
    p.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stmd-bench-") as tmp:
        work = args.dir or tmp
        t0 = time.perf_counter()
        raw = write_night(os.path.join(work, "raw"))
        print(f"wrote an {N_EPOCHS * 30 / 3600:g}-h {len(CHANNELS)}-channel {FS} Hz ISRUC-layout night "
              f"in {time.perf_counter() - t0:.1f} s ({os.path.getsize(os.path.join(raw, '1', '1.rec')) / 2**20:.0f} MiB EDF)")
        t0 = time.perf_counter()
        (rec,) = prepare_dataset("isruc", raw, os.path.join(work, "cache"), CONFIG, progress=False)
        t_build = time.perf_counter() - t0
        path = os.path.join(cache.cache_folder(os.path.join(work, "cache"), "isruc", CONFIG), "1.h5")
        print(f"first prepare_dataset (load + prepare + write {os.path.getsize(path) / 2**20:.0f} MiB .h5): "
              f"{t_build:.2f} s\n")
        raw_figures = time_raw(raw, args.repeats)
        cached_figures = time_cached(path, args.repeats)
    print(f"best of {args.repeats}; {N_EPOCHS} epochs x {len(CHANNELS)} channels, 200 Hz -> {CONFIG.fs:g} Hz")
    print("| step | seconds | target | verdict |\n|---|---|---|---|")
    ok = table("(a) read + filter + resample + epoch", TARGETS["a"], raw_figures)
    ok &= table("(b) cached reload (read_cached, verify) + epoch", TARGETS["b"], cached_figures)
    print(f"speed-up (a)/(b): {raw_figures['total'] / cached_figures['total']:.0f}x")
    return ok


if __name__ == "__main__":
    main()
