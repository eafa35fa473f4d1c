"""The `stmd` command line."""

import argparse
import os
import pathlib
import runpy
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def _table(args, rest):
    script = REPO / "experiments" / f"table{args.number}.py"
    if not script.exists():
        available = sorted(p.stem for p in (REPO / "experiments").glob("table*.py"))
        raise SystemExit(f"stmd: no {script} (available: {available}); run from a source checkout.")
    sys.argv = [str(script)] + rest
    runpy.run_path(str(script), run_name="__main__")


def _models(args, rest):
    from stmd_keras.models import ARCHITECTURES, build_model

    print(f"| model | parameters | input (L, C, samples) |\n|---|---|---|")
    for arch in ARCHITECTURES:
        for role in ("teacher", "student"):
            m = build_model(arch, role, n_channels=args.channels, seq_len=args.seq_len, fs=args.fs)
            print(f"| {arch} {role} | {m.count_params():,} | {tuple(m.input.shape[1:])} |")


def _synth(args, rest):
    import numpy as np

    from stmd_keras.data import synthetic
    from stmd_keras.io import atomic_path

    recordings = synthetic.generate(args.subjects, seed=args.seed, fs=args.fs)
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


def _add_data_commands(sub):
    from stmd_keras.data import download

    data = sub.add_parser("data", help="download and prepare the real datasets")
    commands = data.add_subparsers(dest="data_command", required=True)
    d = commands.add_parser("download", help="download a public dataset (resumable, SHA-256 verified)")
    download.add_arguments(d)
    d.set_defaults(func=_data_download)
    return commands


def build_parser():
    p = argparse.ArgumentParser(prog="stmd", description="Spatial-temporal mutual distillation for sleep staging.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("table", help="run experiments/tableN.py (other arguments are passed on)")
    t.add_argument("number", help="table number, e.g. 3")
    t.set_defaults(func=_table)
    m = sub.add_parser("models", help="print the parameter counts of the teacher/student models")
    m.add_argument("--channels", type=int, default=6)
    m.add_argument("--seq-len", type=int, default=20)
    m.add_argument("--fs", type=int, default=100)
    m.set_defaults(func=_models)
    s = sub.add_parser("synth", help="write synthetic PSG nights as .npz files")
    s.add_argument("--subjects", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--fs", type=int, default=100)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_synth)
    _add_data_commands(sub)
    return p


def main(argv=None):
    args, rest = build_parser().parse_known_args(argv)
    if rest and args.command != "table":
        raise SystemExit(f"stmd {args.command}: unrecognised arguments {rest}")
    args.func(args, rest)


if __name__ == "__main__":
    main()
