"""Downloading the public datasets: Sleep-EDF Expanded (sleep cassette) and ISRUC-III.

Every file is fetched the same way (`fetch`):

* streamed to `NAME.part` beside its final name, with a progress bar (tqdm;
  off when stderr is not a terminal, or with `progress=False`);
* resumed: a `NAME.part` left by an interrupted run is continued with an
  HTTP `Range: bytes=<size>-` request. A server that ignores the range
  (answers 200 instead of 206) is read again from the first byte; a 416
  (the part already holds the whole file) goes straight to verification;
* verified: the SHA-256 of the whole file is compared with the expected one;
  on a mismatch the part is deleted and a `DataError` names the file, the
  URL and both hashes;
* published atomically: only then is `NAME.part` renamed (`os.replace`) to
  `NAME`, so a final name always holds a complete, verified file.

HTTP and connection failures are `DataError`s naming the URL and the
problem; a part file kept after a dropped connection makes the next run
resume. Only the standard library talks HTTP (`urllib.request`), with a
timeout and a User-Agent.

Sources (the base URLs are arguments; these are the defaults):

* Sleep-EDF Expanded, sleep-cassette study, from PhysioNet (`SLEEP_EDF_URL`).
  PhysioNet publishes `SHA256SUMS.txt` at the base (`<sha256>  <path>` per
  line); it is downloaded first and kept in `dest`, and its
  `sleep-cassette/SC4ssNE?-PSG.edf` and `SC4ssNE?-Hypnogram.edf` entries are
  fetched into `dest` without folders, the layout `load_sleep_edf(dest)` reads.
* ISRUC-Sleep subgroup III from the ISRUC server: the raw form `N.rar`
  (`ISRUC_RAW_URL`), extracted with `isruc.extract_rar` to `N/`, or the
  extracted form `subjectN.mat` (`ISRUC_EXTRACTED_URL`). The .mat files hold
  no stage labels, which come only in the archives (`N/N_1.txt`): for
  `load_isruc(dest, form="extracted")` download both forms into one folder.
  The two ISRUC URLs could not be checked from here (no network); they are
  the ones that public download scripts for ISRUC-III use. ISRUC publishes
  no checksums, so the SHA-256 of each file is recorded on first download
  in `dest/SHA256SUMS.recorded.txt` (same format) and every later download
  or existing file is checked against it; `accept_new=True` records a
  changed file's hash instead of refusing it.

Example:

>>> paths = download_dataset("sleep-edf", "data/sleep-edf", subset="sleep-edf-20")
>>> paths = download_dataset("isruc", "data/isruc3", subjects=[1, 2])
"""

from __future__ import annotations

import hashlib
import http.client
import numbers
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

from tqdm import tqdm

from stmd_keras import __version__
from stmd_keras.data import isruc
from stmd_keras.data.recording import DataError
from stmd_keras.data.sleep_edf import SUBSETS
from stmd_keras.io import write_text

DATASETS = ("isruc", "sleep-edf")
"""Names accepted by `download_dataset`."""

SLEEP_EDF_URL = "https://physionet.org/files/sleep-edfx/1.0.0/"
ISRUC_RAW_URL = "http://dataset.isr.uc.pt/ISRUC_Sleep/subgroupIII/"
ISRUC_EXTRACTED_URL = "http://dataset.isr.uc.pt/ISRUC_Sleep/ExtractedChannels/subgroupIII-Extractedchannels/"

SLEEP_EDF_SUBJECTS = range(0, 83)
"""Subject numbers of the sleep-cassette naming (`SC4ssN`, ss = 00-82; a few
numbers are unused)."""

ISRUC_SUBJECTS = range(1, 11)

SUMS_FILE = "SHA256SUMS.txt"
RECORDED_SUMS_FILE = "SHA256SUMS.recorded.txt"

TIMEOUT = 60.0
"""Seconds a connection or a read may stall before it counts as failed."""

USER_AGENT = f"stmd_keras/{__version__} (Python urllib; sleep staging research)"

CHUNK = 1 << 16

_CASSETTE = re.compile(r"^sleep-cassette/(SC4(\d\d)[12]E.-(?:PSG|Hypnogram)\.edf)$")
_HASH = re.compile(r"^[0-9a-fA-F]{64}$")


def _say(verbose, message):
    if verbose:
        print(message, flush=True)


def sha256_file(path) -> str:
    """Returns the SHA-256 of the file `path` as lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_sums(path) -> dict:
    """Reads a checksum list (`<sha256>  <path>` per line, as `sha256sum` writes).

    Returns
    -------
    dict
        path -> lowercase hex hash. A leading `*` (binary mode) or `./` on
        the path is dropped; blank lines are skipped.

    Raises
    ------
    DataError
        A line that is not a hash followed by a path; the message names the
        file and the line.
    """
    path = os.fspath(path)
    sums = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.strip().split(None, 1)
            if len(fields) != 2 or not _HASH.match(fields[0]):
                raise DataError(f"{path}, line {number}: expected '<sha256>  <path>', got {line.strip()!r}.")
            name = fields[1].strip().lstrip("*")
            sums[name[2:] if name.startswith("./") else name] = fields[0].lower()
    return sums


def write_sums(path, sums):
    """Writes `sums` (name -> hash) as `<sha256>  <name>` lines, sorted, atomically."""
    write_text(path, "".join(f"{h}  {name}\n" for name, h in sorted(sums.items())))


def _content_range(value):
    """`bytes START-END/TOTAL` or `bytes */TOTAL` -> (START or None, TOTAL or None)."""
    m = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _request(url, offset, timeout):
    """Opens `url` from byte `offset`.

    Returns `(response, start)`: `start` is the byte of the file at which the
    body begins (0 for a 200, the range start for a 206, None for a 206
    without a usable Content-Range). For a 416 the response is None and
    `start` is the file size the server gives (None if it gives none).
    """
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            total = _content_range(e.headers.get("Content-Range"))[1]
            e.close()
            return None, total
        e.close()
        raise DataError(f"{url}: HTTP error {e.code} ({e.reason}).") from None
    except urllib.error.URLError as e:
        raise DataError(f"{url}: cannot connect ({e.reason}).") from None
    except (OSError, http.client.HTTPException) as e:
        raise DataError(f"{url}: request failed ({type(e).__name__}: {e}).") from None
    if response.status == 206:
        return response, _content_range(response.headers.get("Content-Range"))[0]
    return response, 0


def _stream(response, url, part, start, progress):
    """Writes the body of `response` into `part` from byte `start` on."""
    length = response.headers.get("Content-Length", "")
    total = start + int(length) if length.strip().isdigit() else None
    received = start
    bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
               desc=os.path.basename(part)[: -len(".part")], disable=not progress)
    with bar, open(part, "r+b" if os.path.exists(part) else "wb") as f:
        f.truncate(start)
        f.seek(start)
        try:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            raise DataError(
                f"{url}: connection lost after {received} bytes ({type(e).__name__}: {e}); "
                f"the partial download {part} is kept: run again to resume."
            ) from None
        finally:
            f.flush()
            os.fsync(f.fileno())
    if total is not None and received < total:
        raise DataError(
            f"{url}: connection closed after {received} of {total} bytes; "
            f"the partial download {part} is kept: run again to resume."
        )


def fetch(url, path, sha256=None, progress=None, timeout=TIMEOUT) -> str:
    """Downloads `url` to `path`, resuming `path.part`, verifying, renaming atomically.

    Parameters
    ----------
    url : str
    path : str or path-like
        The final file; it appears only once complete (and verified).
    sha256 : str or None
        Expected SHA-256 (hex); None accepts any content (the hash is
        still returned, e.g. to be recorded).
    progress : bool or None
        Show a progress bar; None shows one when stderr is a terminal.
    timeout : float
        Seconds a connection or a read may stall.

    Returns
    -------
    str
        The SHA-256 of the file, lowercase hex.

    Raises
    ------
    DataError
        An HTTP error or connection failure (the message names the URL; a
        part file is kept for the next run to resume), or a hash mismatch
        (the part file is deleted; the message names the file, the URL and
        both hashes).
    """
    return _fetch(url, path, sha256, progress, timeout)


def _fetch(url, path, sha256, progress, timeout, hint="") -> str:
    """`fetch`, with `hint` appended to the message of a hash mismatch."""
    path = os.fspath(path)
    part = path + ".part"
    if progress is None:
        progress = sys.stderr.isatty()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    response, start = _request(url, offset, timeout)
    if response is None and start != offset:
        # 416 but the part is not the whole file (or the size is unknown).
        os.remove(part)
        response, start = _request(url, 0, timeout)
    elif response is not None and (start is None or start > offset):
        # A range we did not ask for: read the file again from the start.
        response.close()
        response, start = _request(url, 0, timeout)
    if response is not None:
        with response:
            _stream(response, url, part, start, progress)
    actual = sha256_file(part)
    if sha256 is not None and actual != sha256.lower():
        os.remove(part)
        raise DataError(
            f"{os.path.basename(path)}: SHA-256 mismatch for {url}: expected {sha256.lower()}, "
            f"got {actual}; the download was deleted.{hint}"
        )
    os.replace(part, path)
    return actual


def _check_subjects(subjects, valid, dataset) -> list:
    """Returns the sorted distinct subject numbers; ValueError outside `valid`."""
    subjects = [subjects] if isinstance(subjects, numbers.Integral) else list(subjects)
    bad = [s for s in subjects if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s not in valid]
    if bad:
        raise ValueError(
            f"Unknown {dataset} subject number(s) {bad}; valid are the integers "
            f"{valid.start}-{valid.stop - 1}."
        )
    return sorted({int(s) for s in subjects})


def _base(url) -> str:
    return url if url.endswith("/") else url + "/"


def _join(base, relative) -> str:
    return _base(base) + urllib.parse.quote(relative)


def download_sleep_edf(dest, subjects=None, subset=None, base_url=SLEEP_EDF_URL, progress=None,
                       timeout=TIMEOUT, verbose=True) -> list:
    """Downloads the sleep-cassette PSG and hypnogram files of Sleep-EDF Expanded.

    `SHA256SUMS.txt` is fetched from `base_url` into `dest` first (an existing
    copy is reused: the versioned PhysioNet release does not change), then
    every selected `sleep-cassette/SC4ssNE?-PSG.edf` / `-Hypnogram.edf` is
    fetched into `dest` itself and verified against it. A file already in
    `dest` with the listed hash is skipped; one with another hash is
    downloaded again (it is replaced only once the new copy is verified).

    Parameters
    ----------
    dest : str or path-like
    subjects : iterable of int or None
        Subject numbers `ss` (0-82) of `SC4ssN`; both nights of each are
        fetched. None: every subject (or those of `subset`).
    subset : str or None
        A name from `sleep_edf.SUBSETS`: "sleep-edf-20" (subjects 0-19) or
        "sleep-edf-78" (all). Not together with `subjects`.
    base_url : str
        Where `SHA256SUMS.txt` and `sleep-cassette/` are.
    progress : bool or None
        Progress bars; None shows them when stderr is a terminal.
    timeout : float
    verbose : bool
        Print a line per file (skipped or downloaded).

    Returns
    -------
    list of str
        The paths of the PSG and hypnogram files in `dest`, sorted.

    Raises
    ------
    ValueError
        A subject number outside 0-82, an unknown `subset`, or both
        `subjects` and `subset`.
    DataError
        A download failed or did not match its hash, or a requested subject
        has no files in the listing.
    """
    if subjects is not None and subset is not None:
        raise ValueError("Pass `subjects` or `subset`, not both.")
    if subset is not None:
        if subset not in SUBSETS:
            raise ValueError(f"Unknown Sleep-EDF subset {subset!r}; expected one of {sorted(SUBSETS)}.")
        subjects = SUBSETS[subset]
    wanted = None if subjects is None else _check_subjects(subjects, SLEEP_EDF_SUBJECTS, "Sleep-EDF")
    dest = os.fspath(dest)
    os.makedirs(dest, exist_ok=True)
    sums_path = os.path.join(dest, SUMS_FILE)
    sums_url = _join(base_url, SUMS_FILE)
    if not os.path.exists(sums_path):
        fetch(sums_url, sums_path, progress=False, timeout=timeout)
    files = []
    for relative, digest in sorted(read_sums(sums_path).items()):
        m = _CASSETTE.match(relative)
        if m and (wanted is None or int(m.group(2)) in wanted):
            files.append((relative, m.group(1), int(m.group(2)), digest))
    if not files:
        raise DataError(f"{sums_url}: lists no sleep-cassette SC4*-PSG.edf / -Hypnogram.edf files"
                        + (f" for subjects {wanted}." if wanted is not None else "."))
    missing = sorted(set(wanted or ()) - {s for _, _, s, _ in files})
    if missing:
        raise DataError(f"{sums_url}: no sleep-cassette files for subject(s) {missing} "
                        "(some numbers in 0-82 are unused).")
    paths = []
    for relative, name, _, digest in files:
        path = os.path.join(dest, name)
        if os.path.exists(path):
            if sha256_file(path) == digest:
                _say(verbose, f"{path}: already present, SHA-256 verified; skipped.")
                paths.append(path)
                continue
            _say(verbose, f"{path}: SHA-256 differs from {SUMS_FILE}; downloading it again.")
        fetch(_join(base_url, relative), path, sha256=digest, progress=progress, timeout=timeout)
        _say(verbose, f"{path}: downloaded, SHA-256 verified.")
        paths.append(path)
    return paths


def _isruc_file(dest, name, url, recorded, accept_new, progress, timeout, verbose) -> str:
    """Fetches or checks one ISRUC file against `recorded`; updates `recorded`."""
    path = os.path.join(dest, name)
    expected = recorded.get(name)
    if os.path.exists(path):
        actual = sha256_file(path)
        if expected is None or actual == expected:
            _say(verbose, f"{path}: already present, SHA-256 " + ("verified" if expected else "recorded")
                 + "; skipped.")
        elif not accept_new:
            raise DataError(
                f"{path}: SHA-256 {actual} differs from the one recorded in {RECORDED_SUMS_FILE} "
                f"({expected}) for {url}. Delete the file to download it again, or pass "
                "accept_new=True (--rehash) to record the new hash."
            )
        else:
            _say(verbose, f"{path}: SHA-256 changed from {expected} to {actual}; recorded.")
    else:
        hint = (f" The expected hash is the one recorded in {RECORDED_SUMS_FILE}; pass accept_new=True "
                "(--rehash) to accept the new file.")
        actual = _fetch(url, path, None if accept_new else expected, progress, timeout, hint)
        if expected is not None and actual != expected:
            _say(verbose, f"{path}: SHA-256 changed from {expected} to {actual}; recorded.")
        else:
            _say(verbose, f"{path}: downloaded, SHA-256 " + ("verified." if expected else "recorded."))
    recorded[name] = actual
    return path


def download_isruc(dest, subjects=None, form="raw", base_url=None, extract=True, accept_new=False,
                   progress=None, timeout=TIMEOUT, verbose=True) -> list:
    """Downloads ISRUC-Sleep subgroup III subjects, raw (`N.rar`) or extracted (`subjectN.mat`).

    ISRUC publishes no checksums: the SHA-256 of each file is recorded in
    `dest/SHA256SUMS.recorded.txt` on its first download (rewritten
    atomically after each file), and a file already in `dest`, or downloaded
    again, must match the recorded hash.

    Parameters
    ----------
    dest : str or path-like
    subjects : iterable of int or None
        Subject numbers 1-10; None: all ten.
    form : {"raw", "extracted"}
        "raw": the archives `N.rar` (PSG as `N/N.rec` and the stage files
        `N/N_1.txt`, `N/N_2.txt`). "extracted": `subjectN.mat` (signals
        only; the labels come with the raw form).
    base_url : str or None
        Folder holding the files; None: `ISRUC_RAW_URL` or
        `ISRUC_EXTRACTED_URL` by `form`.
    extract : bool
        Raw form only: after all downloads, unpack each `N.rar` to `N/` with
        `isruc.extract_rar` (a RAR tool must be installed).
    accept_new : bool
        Record the hash of a file that differs from the recorded one
        instead of raising.
    progress : bool or None
        Progress bars; None shows them when stderr is a terminal.
    timeout : float
    verbose : bool
        Print a line per file (skipped, downloaded, extracted).

    Returns
    -------
    list of str
        The paths of the downloaded files (`N.rar` or `subjectN.mat`) in
        `dest`, by subject.

    Raises
    ------
    ValueError
        A subject number outside 1-10 or an unknown `form`.
    DataError
        A download failed, a file differs from its recorded hash, or
        extraction failed (the message says the archives themselves were
        downloaded and verified).
    """
    if form not in ("raw", "extracted"):
        raise ValueError(f"`form` must be 'raw' or 'extracted'. Received: form={form!r}")
    subjects = _check_subjects(ISRUC_SUBJECTS if subjects is None else subjects, ISRUC_SUBJECTS, "ISRUC-III")
    if base_url is None:
        base_url = ISRUC_RAW_URL if form == "raw" else ISRUC_EXTRACTED_URL
    dest = os.fspath(dest)
    os.makedirs(dest, exist_ok=True)
    sums_path = os.path.join(dest, RECORDED_SUMS_FILE)
    recorded = read_sums(sums_path) if os.path.exists(sums_path) else {}
    paths = []
    for s in subjects:
        name = f"{s}.rar" if form == "raw" else f"subject{s}.mat"
        before = dict(recorded)
        try:
            paths.append(_isruc_file(dest, name, _join(base_url, name), recorded, accept_new, progress,
                                     timeout, verbose))
        finally:
            if recorded != before:
                write_sums(sums_path, recorded)
    if form == "raw" and extract:
        for path in paths:
            try:
                folder = isruc.extract_rar(path)
            except DataError as e:
                raise DataError(
                    f"All {len(paths)} archives were downloaded and verified ({', '.join(paths)}), "
                    f"but extracting them failed: {e}"
                ) from e
            _say(verbose, f"{path}: extracted to {folder}.")
    return paths


def download_dataset(name, dest, subjects=None, base_url=None, **options) -> list:
    """Downloads a public dataset into `dest`; returns the paths of its files.

    Parameters
    ----------
    name : {"isruc", "sleep-edf"}
        ISRUC-Sleep subgroup III (`download_isruc`) or Sleep-EDF Expanded,
        sleep-cassette study (`download_sleep_edf`).
    dest : str or path-like
    subjects : iterable of int or None
        Subject numbers (ISRUC 1-10, Sleep-EDF 0-82); None: all.
    base_url : str or None
        None: the dataset's default (`ISRUC_RAW_URL`, `ISRUC_EXTRACTED_URL`,
        `SLEEP_EDF_URL`).
    **options
        Passed on: `form`, `extract`, `accept_new` (ISRUC), `subset`
        (Sleep-EDF), `progress`, `timeout`, `verbose` (both).

    Returns
    -------
    list of str
    """
    if name == "isruc":
        return download_isruc(dest, subjects=subjects, base_url=base_url, **options)
    if name == "sleep-edf":
        return download_sleep_edf(dest, subjects=subjects, base_url=base_url or SLEEP_EDF_URL, **options)
    raise ValueError(f"Unknown dataset {name!r}; expected one of {list(DATASETS)}.")


def add_arguments(parser):
    """Adds the options of `stmd data download` to the argparse `parser`."""
    parser.add_argument("dataset", choices=DATASETS, help="which dataset to download")
    parser.add_argument("--dest", required=True, help="folder to download into (created if missing)")
    parser.add_argument("--subjects", type=int, nargs="+", metavar="N",
                        help="subject numbers (isruc 1-10, sleep-edf 0-82); default all")
    parser.add_argument("--subset", choices=sorted(SUBSETS), help="sleep-edf only: a usual subset")
    parser.add_argument("--base-url", help="override the default download URL of the dataset/form")
    parser.add_argument("--form", choices=("raw", "extracted"),
                        help="isruc only: N.rar archives (raw, default) or subjectN.mat (extracted)")
    parser.add_argument("--no-extract", dest="extract", action="store_false",
                        help="isruc raw only: do not unpack the archives")
    parser.add_argument("--rehash", dest="accept_new", action="store_true",
                        help="isruc only: record a changed file's hash instead of failing")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="no progress bars (they are off anyway when stderr is not a terminal)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds before a stalled connection fails")
    return parser


def run_from_args(args, rest=None) -> list:
    """Runs `download_dataset` with the options of `add_arguments`; errors exit with a message."""
    options = {"progress": args.progress, "timeout": args.timeout}
    try:
        if args.dataset == "isruc":
            if args.subset is not None:
                raise ValueError("--subset applies to sleep-edf only.")
            options.update(form=args.form or "raw", extract=args.extract, accept_new=args.accept_new)
        else:
            if args.form is not None or not args.extract or args.accept_new:
                raise ValueError("--form, --no-extract and --rehash apply to isruc only.")
            options.update(subset=args.subset)
        paths = download_dataset(args.dataset, args.dest, subjects=args.subjects, base_url=args.base_url,
                                 **options)
    except ValueError as e:  # DataError included
        raise SystemExit(f"stmd data download {args.dataset}: {e}") from None
    print(f"{len(paths)} files in {args.dest}", flush=True)
    return paths
