"""Per-recording HDF5 cache of preprocessed data (`stmd data prepare`).

Reading and filtering a whole EDF night takes seconds; training reads the
same nights again for every row and seed. `prepare_dataset` does that work
once per recording and setting, and afterwards only opens files:

>>> config = PreprocessConfig(fs=100, channels=CHANNEL_SETS["eeg6"], bandpass=(0.3, 35), notch=50)
>>> recs = prepare_dataset("isruc", "ISRUC_S3/", "cache/", config, trim_last=30)

Layout. `cache_dir/<dataset>/<settings hash>/<key>.h5`, one file per
recording key of the dataset (`Dataset.select`), plus a `settings.json`
beside them that says in words what the hash stands for. The hash
(`settings_hash`) covers everything that changes the prepared data: the
dataset, every `PreprocessConfig` field, the loader options (with the
loader's defaults filled in, so `scorer=1` and no `scorer` are one setting)
and `CACHE_VERSION`. Another setting is therefore another folder: nothing is
ever overwritten by a different setting, and switching back is free.
Bump `CACHE_VERSION` whenever `prepare` or a loader changes its output.

One file holds `signals`, float32 `(C, T)`, stored contiguous (no chunks,
no compression) so that it can be memory-mapped at its byte offset, and
`labels`, int64 `(n_epochs,)`. Attributes: subject, channels (JSON), fs,
source, key, dataset, settings_hash, cache_version, n_epochs, the CRC32 of
the signal bytes and of the label bytes and, when the source is a file, its
real path, size and mtime.

Reading. `read_cached` returns a `Recording` whose `signals` is a read-only
`np.memmap` into the file: a night is paged in as batches touch it, never
copied whole into memory. Any problem with a file is a `CacheError`
(a `DataError`) naming the file and the problem; with `verify=True` this
includes a CRC32 of the signals, computed in chunks over the memmap.
(`Recording` itself scans the signals once for NaNs when it is built.)

Validity. `prepare_dataset` uses a file only if `read_cached` accepts it and
it is not stale: its source must still lie inside `raw_dir` and, if the
source file exists, have the recorded size and mtime (a re-downloaded or
moved data folder is rebuilt; a deleted source is not, the cache then
stands in for it). Label files are not tracked. A bad or stale file is
deleted and rebuilt with a warning.

Writing. Files are written to a temporary file in the same folder, fsynced
and renamed into place (`stmd_keras.io.atomic_path`), and only after the
loader and `prepare` succeeded; so a crash or a loader error (a `DataError`
naming the raw file, which propagates) leaves either a complete file or
none. A process killed hard can leave a `.tmp-*.h5` file, which is ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import re
import warnings
import zlib

import h5py
import numpy as np
from tqdm import tqdm

from stmd_keras.data.datasets import get_dataset
from stmd_keras.data.preprocess import PreprocessConfig, prepare
from stmd_keras.data.recording import EPOCH_SEC, DataError, Recording
from stmd_keras.io import atomic_path, write_json

CACHE_VERSION = 1
"""Format and content version of the cache files; part of every hash."""

_VERIFY_CHUNK = 1 << 21  # samples per CRC32 step (8 MiB of float32)
_ALIGN = 4096  # page-align the signals in the file (large objects only)
_ATTRS = ("subject", "channels", "fs", "source", "settings_hash", "cache_version",
          "n_epochs", "signals_crc32", "labels_crc32")


class CacheError(DataError):
    """A cache file that cannot be used; `prepare_dataset` rebuilds it.

    Args:
        path: the cache file.
        problem: what is wrong with it.
    """

    def __init__(self, path, problem):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _plain(value):
    """JSON-ready form of `value`; integral numbers as ints (50.0 and 50 agree)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, str):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, (int, float, np.integer, np.floating)):
        value = float(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _load_options(dataset, options) -> dict:
    """`options` with the defaults of `dataset.load_recording` filled in."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(dataset.load_recording).parameters.values()
    full = {p.name: p.default for p in params if p.kind in kinds and p.default is not p.empty}
    full.update(options)
    return full


def cache_settings(dataset_name, config: PreprocessConfig, options=None) -> dict:
    """The settings a cache folder stands for, as plain JSON data."""
    if not isinstance(config, PreprocessConfig):
        raise TypeError(f"`config` must be a PreprocessConfig. Received: {type(config).__name__}")
    dataset = get_dataset(dataset_name)
    return {
        "cache_version": CACHE_VERSION,
        "dataset": dataset_name,
        "preprocess": _plain(dataclasses.asdict(config)),
        "load_options": _plain(_load_options(dataset, options or {})),
    }


def settings_hash(dataset_name, config: PreprocessConfig, options=None) -> str:
    """A short stable hash (16 hex digits) of everything that shapes the prepared data."""
    text = json.dumps(cache_settings(dataset_name, config, options), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_folder(cache_dir, dataset_name, config: PreprocessConfig, options=None) -> str:
    """`cache_dir/<dataset>/<settings hash>`: where `prepare_dataset` puts the files."""
    return os.path.join(os.fspath(cache_dir), dataset_name, settings_hash(dataset_name, config, options))


def _file_name(key) -> str:
    return re.sub(r"[^\w.-]", "_", str(key)).lstrip(".") + ".h5"


def _crc32(array) -> int:
    """CRC32 of the bytes of a C-contiguous array, streamed in chunks."""
    flat = array.reshape(-1)
    crc = 0
    for start in range(0, flat.size, _VERIFY_CHUNK):
        crc = zlib.crc32(flat[start: start + _VERIFY_CHUNK], crc)
    return crc


def _source_attrs(source) -> dict:
    if not os.path.isfile(source):
        return {}
    stat = os.stat(source)
    return {"source_path": os.path.realpath(source), "source_size": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns}


def _fill(f, signals, labels, attrs):
    f.create_dataset("signals", data=signals)  # no chunks/filters: contiguous
    f.create_dataset("labels", data=labels)
    f.attrs.update(attrs)


def write_cached(path, recording: Recording, settings_hash="", key=None, dataset=None):
    """Writes a prepared `recording` to the HDF5 file `path`, atomically."""
    signals = np.ascontiguousarray(recording.signals, dtype="<f4")
    labels = np.ascontiguousarray(recording.labels, dtype="<i8")
    attrs = {
        "subject": recording.subject, "channels": json.dumps(list(recording.channels)),
        "fs": float(recording.fs), "source": str(recording.source),
        "key": "" if key is None else str(key), "dataset": dataset or "",
        "settings_hash": settings_hash, "cache_version": CACHE_VERSION,
        "n_epochs": recording.n_epochs, "signals_crc32": _crc32(signals),
        "labels_crc32": zlib.crc32(labels), **_source_attrs(str(recording.source)),
    }
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", alignment_threshold=1 << 16, alignment_interval=_ALIGN) as f:
            _fill(f, signals, labels, attrs)


def _header(path) -> tuple:
    """Reads `(attrs, signals shape, dtype, byte offset, labels)`; CacheError on failure."""
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs}
            missing = [k for k in ("signals", "labels") if not isinstance(f.get(k), h5py.Dataset)]
            if missing:
                raise CacheError(path, f"no dataset {missing}")
            signals = f["signals"]
            if signals.id.get_create_plist().get_layout() != h5py.h5d.CONTIGUOUS:
                raise CacheError(path, "'signals' is not stored contiguously")
            return attrs, signals.shape, signals.dtype, signals.id.get_offset(), f["labels"][()]
    except CacheError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as error:
        raise CacheError(path, f"not a readable HDF5 cache file ({error})") from error


def _check(path, attrs, shape, dtype, offset, labels, settings_hash):
    """Raises CacheError for attributes inconsistent with the data or the settings."""
    missing = [a for a in _ATTRS if a not in attrs]
    if missing:
        raise CacheError(path, f"missing attribute(s) {missing}")
    if int(attrs["cache_version"]) != CACHE_VERSION:
        raise CacheError(path, f"cache version {attrs['cache_version']}, expected {CACHE_VERSION}")
    if settings_hash is not None and str(attrs["settings_hash"]) != settings_hash:
        raise CacheError(path, f"settings hash {attrs['settings_hash']}, expected {settings_hash}")
    if dtype != np.dtype("<f4") or len(shape) != 2 or offset is None:
        raise CacheError(path, f"'signals' must be stored float32 (C, T); found {dtype} {shape}")
    n, channels = int(attrs["n_epochs"]), json.loads(attrs["channels"])
    samples = n * int(round(EPOCH_SEC * float(attrs["fs"])))
    if shape != (len(channels), samples) or labels.shape != (n,):
        raise CacheError(path, f"signals {shape} and labels {labels.shape} do not fit {n} epochs "
                               f"of {len(channels)} channels at {float(attrs['fs']):g} Hz")
    end, size = offset + int(np.prod(shape)) * 4, os.path.getsize(path)
    if end > size:
        raise CacheError(path, f"truncated: the signals end at byte {end}, the file has {size}")
    if zlib.crc32(np.ascontiguousarray(labels, dtype="<i8")) != int(attrs["labels_crc32"]):
        raise CacheError(path, "CRC32 mismatch in 'labels'")


def _open(path, verify, settings_hash) -> tuple:
    """`(Recording, attrs)` of a cache file; see `read_cached`."""
    path = os.fspath(path)
    attrs, shape, dtype, offset, labels = _header(path)
    try:
        _check(path, attrs, shape, dtype, offset, labels, settings_hash)
    except CacheError:
        raise
    except (ValueError, TypeError, KeyError) as error:  # unparsable attributes
        raise CacheError(path, f"invalid attributes ({error!r})") from error
    signals = np.memmap(path, dtype="<f4", mode="r", offset=offset, shape=shape)
    if verify and _crc32(signals) != int(attrs["signals_crc32"]):
        raise CacheError(path, "CRC32 mismatch in 'signals' (the file is damaged)")
    try:
        rec = Recording(subject=str(attrs["subject"]), signals=signals, fs=float(attrs["fs"]),
                        channels=json.loads(attrs["channels"]), labels=labels, source=str(attrs["source"]))
    except DataError as error:
        raise CacheError(path, f"invalid recording ({error})") from error
    return rec, attrs


def read_cached(path, verify=True, settings_hash=None) -> Recording:
    """Opens a cache file as a `Recording` backed by a read-only memmap.

    Args:
        path: a `.h5` file written by `prepare_dataset` (or `write_cached`).
        verify: check the CRC32 of the signals (one pass over the file).
        settings_hash: if given, the hash the file must have been built with.

    Returns:
        A `Recording`; `signals` is a read-only view of an `np.memmap`.

    Raises:
        CacheError: the file is unreadable, truncated, inconsistent, of
            another version or settings, or fails its CRC32.
    """
    return _open(path, verify, settings_hash)[0]


def _stale(attrs, raw_dir):
    """Why a valid cache file no longer matches its raw source (None if it does)."""
    if "source_path" not in attrs:
        return None
    source, root = str(attrs["source_path"]), os.path.realpath(raw_dir)
    if os.path.commonpath([source, root]) != root:
        return f"built from {source}, which is not in {root}"
    if not os.path.isfile(source):
        return None  # raw file removed: the cache stands in for it
    stat = os.stat(source)
    if (stat.st_size, stat.st_mtime_ns) != (int(attrs["source_size"]), int(attrs["source_mtime_ns"])):
        return f"source {source} changed since the cache was built"
    return None


def _reuse(path, raw_dir, digest, verify):
    """The cached `Recording` at `path`, or None after deleting a bad or stale file."""
    if not os.path.exists(path):
        return None
    try:
        rec, attrs = _open(path, verify, digest)
    except CacheError as error:
        warnings.warn(f"rebuilding corrupt cache file {path}: {error.problem}", stacklevel=3)
    else:
        reason = _stale(attrs, raw_dir)
        if reason is None:
            return rec
        del rec
        warnings.warn(f"rebuilding stale cache file {path}: {reason}", stacklevel=3)
    os.remove(path)
    return None


def _build(dataset, raw_dir, key, config, options, path, digest) -> Recording:
    rec = prepare(dataset.load_recording(raw_dir, key, config.channels, **options), config)
    write_cached(path, rec, digest, key=key, dataset=dataset.name)
    return read_cached(path, verify=False, settings_hash=digest)


def _write_settings(folder, settings, dataset):
    path = os.path.join(folder, "settings.json")
    about = {"settings_hash": os.path.basename(folder), "title": dataset.title, **settings,
             "files": "one <key>.h5 per recording; see stmd_keras/data/cache.py"}
    try:
        with open(path, encoding="utf-8") as f:
            if json.load(f) == about:
                return
    except (OSError, ValueError):
        pass
    write_json(path, about)


def prepare_dataset(dataset_name, raw_dir, cache_dir, config: PreprocessConfig, subjects=None,
                    progress=True, verify=True, **options) -> list:
    """Returns the prepared recordings of a dataset, built once and then cached.

    Args:
        dataset_name: a name of the dataset registry (`get_dataset`).
        raw_dir: the folder of the downloaded dataset.
        cache_dir: the cache root; files go to `cache_folder(...)`.
        config: the `PreprocessConfig`; `config.channels` (None: all) are
            loaded and kept.
        subjects: subject ids, recording keys or a count (`Dataset.select`).
        progress: show a progress bar and a line per recording.
        verify: check the CRC32 of every cached file (see `read_cached`).
        **options: loader options (e.g. ISRUC `scorer`, `trim_last`).

    Returns:
        A list of `Recording`, in key order, backed by read-only memmaps.

    Raises:
        DataError: from the loader, naming the raw file (nothing is written
            for that recording).
    """
    dataset = get_dataset(dataset_name)
    settings = cache_settings(dataset_name, config, options)
    folder = cache_folder(cache_dir, dataset_name, config, options)
    digest = os.path.basename(folder)
    keys = dataset.select(raw_dir, subjects)
    os.makedirs(folder, exist_ok=True)
    _write_settings(folder, settings, dataset)
    recordings = []
    bar = tqdm(keys, desc=f"prepare {dataset_name}", unit="rec", disable=not progress)
    for key in bar:
        path = os.path.join(folder, _file_name(key))
        rec = _reuse(path, raw_dir, digest, verify)
        status = "cached"
        if rec is None:
            rec, status = _build(dataset, raw_dir, key, config, options, path, digest), "built"
        if progress:
            bar.write(f"{dataset_name} {key}: {status} {path}")
        recordings.append(rec)
    return recordings
