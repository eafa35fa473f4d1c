"""Tests of `stmd_keras.data.download` against a real local HTTP server (no mocks of urllib)."""

import argparse
import hashlib
import http.server
import os
import random
import re
import shutil
import socket
import threading
import urllib.parse

import pytest

from stmd_keras.data import download, isruc
from stmd_keras.data.recording import DataError


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `server.root`, with `Range: bytes=N-` support and failure switches.

    server.log: (path, Range header or None) per request.
    server.ignore_range: answer 200 with the whole file even to a range request.
    server.drop_after: url path -> n; the next response for it sends only n
        bytes of its body (with the full Content-Length) and closes.
    """

    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        self.close_connection = True
        path = os.path.join(srv.root, urllib.parse.unquote(self.path.lstrip("/")))
        if not os.path.isfile(path):
            self.send_error(404, "Not Found")
            return
        with open(path, "rb") as f:
            data = f.read()
        start, status = 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m and not srv.ignore_range:
            start, status = int(m.group(1)), 206
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        cut = srv.drop_after.pop(self.path, None)
        self.wfile.write(body if cut is None else body[:cut])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    httpd.daemon_threads = True
    httpd.root, httpd.log, httpd.ignore_range, httpd.drop_after = str(root), [], False, {}
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _serve(server, relative, data):
    path = os.path.join(server.root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _sleep_edf_site(server, subjects=(0, 1, 2), psg_size=3000):
    """A fake PhysioNet layout under sleep-edfx/1.0.0/; returns (base_url, relative path -> bytes)."""
    rng = random.Random(0)
    files = {}
    for s in subjects:
        for night in (1, 2):
            files[f"sleep-cassette/SC4{s:02d}{night}E0-PSG.edf"] = rng.randbytes(psg_size)
            files[f"sleep-cassette/SC4{s:02d}{night}EC-Hypnogram.edf"] = rng.randbytes(300)
    files["sleep-telemetry/ST7011J0-PSG.edf"] = rng.randbytes(500)
    files["sleep-telemetry/ST7011JP-Hypnogram.edf"] = rng.randbytes(100)
    files["sleep-cassette/index.html"] = b"<html></html>"
    prefix = "sleep-edfx/1.0.0/"
    for relative, data in files.items():
        _serve(server, prefix + relative, data)
    sums = "".join(f"{_sha(d)}  {r}\n" for r, d in sorted(files.items()))
    _serve(server, prefix + "SHA256SUMS.txt", sums.encode())
    return server.url + prefix, files


def _requests_for(server, name):
    return [(p, r) for p, r in server.log if p.endswith("/" + name)]


def test_sleep_edf_download_filters_and_skips(server, tmp_path, capsys):
    base, files = _sleep_edf_site(server)
    dest = tmp_path / "sleep-edf"
    paths = download.download_sleep_edf(dest, subjects=[0, 2], base_url=base, progress=False)
    names = sorted(os.path.basename(p) for p in paths)
    assert names == ["SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf", "SC4002E0-PSG.edf", "SC4002EC-Hypnogram.edf",
                     "SC4021E0-PSG.edf", "SC4021EC-Hypnogram.edf", "SC4022E0-PSG.edf", "SC4022EC-Hypnogram.edf"]
    assert sorted(os.listdir(dest)) == sorted(names + ["SHA256SUMS.txt"])  # flat, no .part, no telemetry
    for p in paths:
        assert open(p, "rb").read() == files["sleep-cassette/" + os.path.basename(p)]
    assert len(server.log) == 1 + 8
    assert server.log[0] == ("/sleep-edfx/1.0.0/SHA256SUMS.txt", None)
    assert not any("ST7011" in p or "SC401" in p for p, _ in server.log)

    capsys.readouterr()
    again = download.download_sleep_edf(dest, subjects=[0, 2], base_url=base, progress=False)
    assert again == paths
    assert len(server.log) == 9  # no new request at all
    assert capsys.readouterr().out.count("already present") == 8


def test_sleep_edf_subset_and_layout_read_by_find_pairs(server, tmp_path):
    from stmd_keras.data.sleep_edf import find_pairs

    base, _ = _sleep_edf_site(server, subjects=range(21), psg_size=100)
    dest = tmp_path / "d"
    paths = download.download_dataset("sleep-edf", dest, base_url=base, subset="sleep-edf-20", progress=False)
    assert len(paths) == 80
    assert [(s, n) for _, _, s, n in find_pairs(dest)] == [(s, n) for s in range(20) for n in (1, 2)]
    with pytest.raises(DataError, match=r"no sleep-cassette files for subject\(s\) \[30\]"):
        download.download_dataset("sleep-edf", dest, base_url=base, subjects=[1, 30], progress=False)


def test_sleep_edf_resumes_interrupted_download(server, tmp_path):
    base, files = _sleep_edf_site(server, subjects=(0,), psg_size=50_000)
    server.drop_after["/sleep-edfx/1.0.0/sleep-cassette/SC4001E0-PSG.edf"] = 20_000
    dest = tmp_path / "d"
    with pytest.raises(DataError, match=r"SC4001E0-PSG\.edf.*20000 of 50000 bytes.*resume"):
        download.download_sleep_edf(dest, base_url=base, progress=False)
    assert sorted(os.listdir(dest)) == ["SC4001E0-PSG.edf.part", "SHA256SUMS.txt"]
    assert os.path.getsize(dest / "SC4001E0-PSG.edf.part") == 20_000

    paths = download.download_sleep_edf(dest, base_url=base, progress=False)
    assert _requests_for(server, "SC4001E0-PSG.edf") == [
        ("/sleep-edfx/1.0.0/sleep-cassette/SC4001E0-PSG.edf", None),
        ("/sleep-edfx/1.0.0/sleep-cassette/SC4001E0-PSG.edf", "bytes=20000-"),
    ]
    assert open(dest / "SC4001E0-PSG.edf", "rb").read() == files["sleep-cassette/SC4001E0-PSG.edf"]
    assert len(paths) == 4 and not [n for n in os.listdir(dest) if n.endswith(".part")]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    base, files = _sleep_edf_site(server, subjects=(0,), psg_size=50_000)
    dest = tmp_path / "d"
    os.makedirs(dest)
    with open(dest / "SC4001E0-PSG.edf.part", "wb") as f:
        f.write(b"\0" * 12_345)  # wrong bytes: appending to them would fail the hash
    server.ignore_range = True
    download.download_sleep_edf(dest, base_url=base, progress=True)  # with the bar drawn
    assert _requests_for(server, "SC4001E0-PSG.edf")[0][1] == "bytes=12345-"
    assert open(dest / "SC4001E0-PSG.edf", "rb").read() == files["sleep-cassette/SC4001E0-PSG.edf"]
    assert not os.path.exists(dest / "SC4001E0-PSG.edf.part")


def test_complete_part_answered_416_is_verified_and_kept(server, tmp_path):
    base, files = _sleep_edf_site(server, subjects=(0,))
    dest = tmp_path / "d"
    os.makedirs(dest)
    data = files["sleep-cassette/SC4001E0-PSG.edf"]
    with open(dest / "SC4001E0-PSG.edf.part", "wb") as f:
        f.write(data)
    download.download_sleep_edf(dest, base_url=base, progress=False)
    assert _requests_for(server, "SC4001E0-PSG.edf") == [
        ("/sleep-edfx/1.0.0/sleep-cassette/SC4001E0-PSG.edf", f"bytes={len(data)}-")
    ]
    assert open(dest / "SC4001E0-PSG.edf", "rb").read() == data


def test_hash_mismatch_leaves_no_file(server, tmp_path):
    base, files = _sleep_edf_site(server, subjects=(0,))
    good = files["sleep-cassette/SC4001EC-Hypnogram.edf"]
    bad = bytes([good[0] ^ 1]) + good[1:]
    _serve(server, "sleep-edfx/1.0.0/sleep-cassette/SC4001EC-Hypnogram.edf", bad)
    dest = tmp_path / "d"
    with pytest.raises(DataError) as info:
        download.download_sleep_edf(dest, base_url=base, progress=False)
    message = str(info.value)
    assert "SC4001EC-Hypnogram.edf" in message
    assert base + "sleep-cassette/SC4001EC-Hypnogram.edf" in message
    assert _sha(good) in message and _sha(bad) in message
    assert not os.path.exists(dest / "SC4001EC-Hypnogram.edf")
    assert not os.path.exists(dest / "SC4001EC-Hypnogram.edf.part")
    assert os.path.exists(dest / "SC4001E0-PSG.edf")  # the file before it is complete


def _isruc_site(server, subjects=(1, 2)):
    rng = random.Random(1)
    files = {f"{s}.rar": rng.randbytes(2000) for s in subjects}
    for name, data in files.items():
        _serve(server, "ISRUC_Sleep/subgroupIII/" + name, data)
    return server.url + "ISRUC_Sleep/subgroupIII/", files


def test_isruc_records_and_checks_hashes(server, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(isruc, "extract_rar", lambda path: calls.append(path))
    base, files = _isruc_site(server)
    first = tmp_path / "first"
    paths = download.download_isruc(first, subjects=[1, 2], base_url=base, extract=False, progress=False)
    assert paths == [str(first / "1.rar"), str(first / "2.rar")]
    assert calls == []  # extract=False
    recorded = (first / "SHA256SUMS.recorded.txt").read_text()
    assert recorded == f"{_sha(files['1.rar'])}  1.rar\n{_sha(files['2.rar'])}  2.rar\n"
    assert download.read_sums(first / "SHA256SUMS.recorded.txt") == {n: _sha(d) for n, d in files.items()}

    changed = files["1.rar"][::-1]
    _serve(server, "ISRUC_Sleep/subgroupIII/1.rar", changed)
    second = tmp_path / "second"
    second.mkdir()
    shutil.copy(first / "SHA256SUMS.recorded.txt", second)
    with pytest.raises(DataError) as info:
        download.download_isruc(second, subjects=[1], base_url=base, extract=False, progress=False)
    assert "1.rar" in str(info.value) and base + "1.rar" in str(info.value)
    assert _sha(files["1.rar"]) in str(info.value) and _sha(changed) in str(info.value)
    assert "--rehash" in str(info.value)
    assert os.listdir(second) == ["SHA256SUMS.recorded.txt"]

    download.download_isruc(second, subjects=[1], base_url=base, extract=False, accept_new=True, progress=False)
    assert open(second / "1.rar", "rb").read() == changed
    assert download.read_sums(second / "SHA256SUMS.recorded.txt") == {"1.rar": _sha(changed),
                                                                       "2.rar": _sha(files["2.rar"])}

    # An existing file that no longer matches its record is refused without a request.
    (first / "2.rar").write_bytes(b"tampered")
    n = len(server.log)
    with pytest.raises(DataError, match=r"2\.rar.*differs from the one recorded.*--rehash"):
        download.download_isruc(first, subjects=[2], base_url=base, progress=False)
    assert len(server.log) == n


def test_isruc_extraction(server, tmp_path, monkeypatch):
    base, _ = _isruc_site(server)
    calls = []
    monkeypatch.setattr(isruc, "extract_rar", lambda path: calls.append(path) or path[:-4])
    paths = download.download_isruc(tmp_path / "a", subjects=[1, 2], base_url=base, progress=False)
    assert calls == paths

    monkeypatch.undo()
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no RAR tool installed
    dest = tmp_path / "b"
    with pytest.raises(DataError) as info:
        download.download_dataset("isruc", dest, subjects=[1, 2], base_url=base, progress=False)
    message = str(info.value)
    assert "2 archives were downloaded and verified" in message and "RAR tools" in message
    assert sorted(os.listdir(dest)) == ["1.rar", "2.rar", "SHA256SUMS.recorded.txt"]


def test_http_404_and_connection_errors_name_the_url(server, tmp_path):
    base, _ = _isruc_site(server, subjects=(1,))
    with pytest.raises(DataError, match=re.escape(base + "3.rar") + r": HTTP error 404"):
        download.download_isruc(tmp_path / "a", subjects=[1, 3], base_url=base, extract=False, progress=False)
    assert os.path.exists(tmp_path / "a" / "1.rar")
    with pytest.raises(DataError, match=re.escape(server.url + "nothing/SHA256SUMS.txt") + ".*404"):
        download.download_sleep_edf(tmp_path / "b", base_url=server.url + "nothing", progress=False)

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x/"
    with pytest.raises(DataError, match=re.escape(url + "1.rar") + ": cannot connect"):
        download.download_isruc(tmp_path / "c", subjects=[1], base_url=url, timeout=5, progress=False)


def test_bad_names_and_subjects(tmp_path):
    with pytest.raises(ValueError, match=r"'mass'.*\['isruc', 'sleep-edf'\]"):
        download.download_dataset("mass", tmp_path)
    with pytest.raises(ValueError, match=r"\[0, 11\].*1-10"):
        download.download_dataset("isruc", tmp_path, subjects=[0, 5, 11])
    with pytest.raises(ValueError, match=r"\[83\].*0-82"):
        download.download_dataset("sleep-edf", tmp_path, subjects=[83])
    with pytest.raises(ValueError, match="form"):
        download.download_isruc(tmp_path, form="edf")
    assert os.listdir(tmp_path) == []  # nothing requested, nothing written


def test_cli_arguments(server, tmp_path, capsys):
    rng = random.Random(2)
    mats = {f"subject{s}.mat": rng.randbytes(700) for s in (1, 2)}
    for name, data in mats.items():
        _serve(server, "extracted/" + name, data)
    parser = download.add_arguments(argparse.ArgumentParser())
    dest = tmp_path / "isruc"
    args = parser.parse_args(["isruc", "--dest", str(dest), "--subjects", "1", "2", "--form", "extracted",
                              "--base-url", server.url + "extracted", "--no-progress"])
    assert (args.extract, args.accept_new, args.progress) == (True, False, False)
    paths = download.run_from_args(args)
    assert [open(p, "rb").read() for p in paths] == list(mats.values())
    assert "2 files in" in capsys.readouterr().out

    args = parser.parse_args(["sleep-edf", "--dest", str(dest), "--form", "raw"])
    with pytest.raises(SystemExit, match="isruc only"):
        download.run_from_args(args)
    args = parser.parse_args(["isruc", "--dest", str(dest), "--subjects", "12"])
    with pytest.raises(SystemExit, match="1-10"):
        download.run_from_args(args)
