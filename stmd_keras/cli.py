"""The `stmd` command line."""

import argparse
import os
import pathlib
import runpy
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _table(args, rest):
    name = "run_all.py" if args.number == "all" else f"table{args.number}.py"
    script = REPO / "experiments" / name
    if not script.exists():
        available = sorted(p.stem for p in (REPO / "experiments").glob("table*.py"))
        raise SystemExit(f"stmd: no {script} (available: {available}); run from a source checkout.")
    sys.argv = [str(script)] + rest
    runpy.run_path(str(script), run_name="__main__")


def _models(args, rest):
    from stmd_keras.models import ARCHITECTURES, build_model

    print(f"| model | parameters | input (L, C, samples) |\n|---|---|---|")
    single_channel = {"deepsleepnet", "salientsleepnet"}  # SleepKD's backbones
    for arch, roles in ARCHITECTURES.items():
        channels = args.channels or (1 if arch in single_channel else 6)
        for role in roles:
            m = build_model(arch, role, n_channels=channels, seq_len=args.seq_len, fs=args.fs)
            print(f"| {arch} {role} | {m.count_params():,} | {tuple(m.input.shape[1:])} |")


def _synth(args, rest):
    import numpy as np

    from stmd_keras.data import synthetic
    from stmd_keras.io import atomic_path

    if args.layout is not None:
        from stmd_keras.data.layouts import write_layout

        fs = args.fs or {"isruc": 200, "sleep-edf": 100, "mass": 256}[args.layout]
        recordings = synthetic.generate(args.subjects, seed=args.seed, fs=fs, n_epochs=args.night_epochs)
        for path in write_layout(args.layout, recordings, args.out):
            print(path)
        return
    recordings = synthetic.generate(args.subjects, seed=args.seed, fs=args.fs or 100, n_epochs=args.night_epochs)
    os.makedirs(args.out, exist_ok=True)
    for rec in recordings:
        path = os.path.join(args.out, f"{rec.subject}.npz")
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, signals=rec.signals, labels=rec.labels, fs=rec.fs,
                                channels=np.array(rec.channels))
        print(f"{path}: {len(rec.channels)} channels, {rec.n_epochs} epochs at {rec.fs:g} Hz")


def _data_download(args, rest):
    from stmd_keras.data import download

    download.run_from_args(args, rest)


def _data_prepare(args, rest):
    from stmd_keras.data.cache import prepare_dataset
    from stmd_keras.data.datasets import get_dataset
    from stmd_keras.data.preprocess import PreprocessConfig
    from stmd_keras.data.recording import DataError
    from stmd_keras.runner.settings import REAL_BANDPASS
    from stmd_keras.runner.table import _loader_options

    try:
        channels, used = get_dataset(args.dataset).channels_for(args.channel_set)
        config = PreprocessConfig(
            fs=args.fs, channels=channels, notch=args.notch,
            bandpass=None if args.no_bandpass else tuple(args.bandpass or REAL_BANDPASS),
        )
        recordings = prepare_dataset(args.dataset, args.raw, args.out, config, subjects=args.subjects,
                                     **dict(_loader_options(args.loader_option)))
    except (ValueError, TypeError) as e:  # DataError included
        raise SystemExit(f"stmd data prepare {args.dataset}: {e}") from None
    epochs = sum(r.n_epochs for r in recordings)
    print(f"{len(recordings)} recordings, {epochs} epochs, channels {list(channels)} ({used}) "
          f"at {args.fs:g} Hz, cached in {args.out}")


def _add_data_commands(sub):
    from stmd_keras.data import download

    data = sub.add_parser("data", help="download and prepare the real datasets")
    commands = data.add_subparsers(dest="data_command", required=True)
    d = commands.add_parser("download", help="download a public dataset (resumable, SHA-256 verified)")
    download.add_arguments(d)
    d.set_defaults(func=_data_download)
    p = commands.add_parser(
        "prepare", help="preprocess a real dataset into the per-recording HDF5 cache the runner reads"
    )
    p.add_argument("dataset", choices=["isruc", "sleep-edf", "mass"])
    p.add_argument("--raw", required=True, help="folder with the dataset's files as distributed")
    p.add_argument("--out", required=True, help="cache folder (the runner's --cache-dir)")
    p.add_argument("--channel-set", default="eeg_eog6", help="eeg_eog6 (default), eeg6, eeg_eog8, ...")
    p.add_argument("--subjects", nargs="+", default=None, help="subject ids or recording keys (default all)")
    p.add_argument("--fs", type=float, default=100.0, help="target sampling rate in Hz (default 100)")
    p.add_argument("--bandpass", type=float, nargs=2, metavar=("LOW", "HIGH"), help="Hz (default 0.3 35)")
    p.add_argument("--no-bandpass", action="store_true", help="no band-pass filter")
    p.add_argument("--notch", type=float, default=None, help="mains notch in Hz (default none)")
    p.add_argument("--loader-option", action="append", default=[], metavar="NAME=VALUE",
                   help="option of the dataset's loader, e.g. scorer=2 (repeatable)")
    p.set_defaults(func=_data_prepare)
    return commands


def _export(args, rest):
    from stmd_keras.deploy import export

    export.run_from_args(args, rest)


def _stage(args, rest):
    from stmd_keras.deploy import stage

    stage.run_from_args(args, rest)


def _add_deploy_commands(sub):
    from stmd_keras.deploy import export, stage

    e = sub.add_parser("export", help="export a trained model to SavedModel / TFLite, with parity checks")
    export.add_arguments(e)
    e.set_defaults(func=_export)
    s = sub.add_parser("stage", help="stage an EDF recording with a trained or exported model")
    stage.add_arguments(s)
    s.set_defaults(func=_stage)


def _add_plot_commands(sub):
    from stmd_keras.viz import cli as plot_cli

    plot_cli.add_arguments(sub)


def build_parser():
    p = argparse.ArgumentParser(prog="stmd", description="Spatial-temporal mutual distillation for sleep staging.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("table", help="run experiments/tableN.py (other arguments are passed on)")
    t.add_argument("number", help="table number, e.g. 3, or 'all' (experiments/run_all.py)")
    t.set_defaults(func=_table)
    m = sub.add_parser("models", help="print the parameter counts of the teacher/student models")
    m.add_argument("--channels", type=int, default=None,
                   help="input channels (default 6; 1 for the single-channel SleepKD backbones)")
    m.add_argument("--seq-len", type=int, default=20)
    m.add_argument("--fs", type=int, default=100)
    m.set_defaults(func=_models)
    s = sub.add_parser("synth", help="write synthetic PSG nights as .npz files")
    s.add_argument("--subjects", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--fs", type=int, default=None, help="Hz (default 100; with --layout the dataset's rate)")
    s.add_argument("--night-epochs", type=int, default=None, help="epochs per night (default ~900)")
    s.add_argument("--layout", choices=["isruc", "sleep-edf", "mass"], default=None,
                   help="write the nights as that dataset's files (EDF + labels) instead of .npz")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_synth)
    _add_data_commands(sub)
    _add_deploy_commands(sub)
    _add_plot_commands(sub)
    return p


def main(argv=None):
    args, rest = build_parser().parse_known_args(argv)
    if rest and args.command != "table":
        raise SystemExit(f"stmd {args.command}: unrecognised arguments {rest}")
    args.func(args, rest)


if __name__ == "__main__":
    main()
