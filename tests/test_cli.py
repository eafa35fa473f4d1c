"""The `stmd` command line."""

import numpy as np
import pytest

from stmd_keras.cli import main


def test_models_prints_parameter_counts(capsys):
    main(["models"])
    out = capsys.readouterr().out
    assert "| cnn_rnn teacher | 4,893,445 |" in out
    assert "| cnn_rnn student | 314,053 |" in out


def test_synth_writes_loadable_nights(tmp_path, capsys):
    main(["synth", "--subjects", "2", "--out", str(tmp_path)])
    files = sorted(tmp_path.glob("*.npz"))
    assert [f.name for f in files] == ["synth00.npz", "synth01.npz"]
    with np.load(files[0], allow_pickle=False) as z:
        assert z["signals"].shape[0] == len(z["channels"]) == 9
        assert z["signals"].shape[1] == 30 * 100 * z["labels"].size
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically, nothing left behind


def test_unknown_table_and_row_fail_clearly(capsys):
    with pytest.raises(SystemExit, match="table99"):
        main(["table", "99"])
    with pytest.raises(SystemExit, match="Unknown row"):
        main(["table", "3", "--rows", "Nope"])


def test_data_download_is_wired_to_the_downloader():
    from stmd_keras.cli import _data_download, build_parser

    args = build_parser().parse_args(["data", "download", "sleep-edf", "--dest", "d", "--subset", "sleep-edf-20"])
    assert args.func is _data_download
    assert (args.dataset, args.dest, args.subset) == ("sleep-edf", "d", "sleep-edf-20")


def test_synth_layout_then_data_prepare_builds_the_cache(tmp_path, capsys):
    import warnings

    from stmd_keras.cli import main

    raw, cache = tmp_path / "mass", tmp_path / "cache"
    main(["synth", "--layout", "mass", "--subjects", "2", "--night-epochs", "30", "--out", str(raw)])
    assert sorted(p.name for p in raw.iterdir()) == [
        "01-03-0001 Base.edf", "01-03-0001 PSG.edf", "01-03-0002 Base.edf", "01-03-0002 PSG.edf"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(["data", "prepare", "mass", "--raw", str(raw), "--out", str(cache), "--channel-set", "eeg6"])
    out = capsys.readouterr().out
    assert "2 recordings, 60 epochs, channels ['F3', 'C3', 'O1', 'F4', 'C4', 'O2'] (eeg6)" in out
    assert len(list((cache / "mass").glob("*/*.h5"))) == 2
    with pytest.raises(SystemExit, match="stmd data prepare mass: .*no MASS-SS3 recording"):
        main(["data", "prepare", "mass", "--raw", str(raw), "--out", str(cache), "--subjects", "MASS3-0009"])


def test_table_all_runs_run_all(tmp_path):
    from stmd_keras.cli import main

    main(["table", "all", "--index-only", "--out", str(tmp_path)])
    assert "Not run yet" in (tmp_path / "README.md").read_text()


def test_export_and_stage_are_wired():
    from stmd_keras.cli import _export, _stage, build_parser

    args = build_parser().parse_args(["export", "m.keras", "--out", "d", "--formats", "tflite-fp32"])
    assert args.func is _export and args.out == "d"
    args = build_parser().parse_args(["stage", "night.edf", "--model", "m.tflite", "--out", "night"])
    assert args.func is _stage and args.recording == "night.edf" and args.model == "m.tflite"
