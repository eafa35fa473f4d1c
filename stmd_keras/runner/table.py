"""One runner for every table script: rows x seeds, cached, printed beside the paper."""

import argparse
import csv
import dataclasses
import io
import json
import os
import sys
import time

import numpy as np

from stmd_keras.data.recording import STAGES
from stmd_keras.io import write_json, write_text
from stmd_keras.runner.datasets import load_experiment_data
from stmd_keras.runner.settings import (
    CHANNEL_SETS, QUICK_DATA, QUICK_TRAIN, SYNTHETIC_STEPS_PER_EPOCH, DataSettings, TrainSettings,
    settings_key,
)
from stmd_keras.reproducibility import set_seed
from stmd_keras.runner.training import RunContext, run_method


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of a table: a training method and its parameters.

    Args:
        name: the method's name as printed in the paper.
        method: "teacher", "student", "distill", or a teacher-assistant
            recipe "assistant", "chain", "guided" (see `training.METHODS`
            and `runner.chains`).
        params: keyword arguments of the method (for "distill": those of
            `MutualDistiller.compile`).
        paper: the paper's `{dataset: (accuracy %, macro-F1 %)}` for this row.
    """

    name: str
    method: str
    params: dict = dataclasses.field(default_factory=dict)
    paper: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """What a table script declares: its rows, architecture and channel set.

    Args:
        name: output name (`OUT/name/TAG/name.md`) and, unless `command`
            says otherwise, the script `experiments/name.py`.
        paper_datasets: the datasets the paper reports; others have no paper
            column (the synthetic default is compared with "isruc").
        command: how the table is run, as printed under it (default
            `experiments/{name}.py`), for scripts that run several tables.
        notes: markdown printed under the table (e.g. model sizes).
    """

    name: str
    title: str
    rows: tuple
    architecture: str = "cnn_rnn"
    channel_set: str = "eeg_eog6"
    paper_datasets: tuple = ("isruc", "mass")
    command: str = None
    notes: str = ""


# Which paper column a dataset is compared with. The synthetic default mimics
# ISRUC-III (10 subjects, its channels, 8/1/1 split); a real dataset is
# compared with its own column if the table's paper reports it
# (`TableSpec.paper_datasets`: the STMD paper has no Sleep-EDF results).
PAPER_COLUMN = {"synthetic": "isruc"}
PAPER_NAMES = {"isruc": "ISRUC-III", "mass": "MASS-SS3", "sleep-edf": "Sleep-EDF",
               None: "none (the paper does not report this dataset)"}


def paper_column(spec, dataset):
    """The key of `Row.paper` that `dataset`'s results are printed beside (or None)."""
    column = PAPER_COLUMN.get(dataset, dataset)
    return column if column in spec.paper_datasets else None


def _script(spec):
    return spec.command or f"experiments/{spec.name}.py"


def build_parser(spec):
    p = argparse.ArgumentParser(
        prog=_script(spec),
        description=f"{spec.title} Results are cached: an interrupted run resumes.",
    )
    p.add_argument("--dataset", default="synthetic", choices=["synthetic", "isruc", "mass", "sleep-edf"])
    p.add_argument("--data-dir", default=None, help="folder with the real dataset's files")
    p.add_argument("--quick", action="store_true", help="8 short nights, 5 epochs at lr 1e-3: a smoke run of a few minutes")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1); mean +- std")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of each phase")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per step (paper: 8)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (paper: 1e-4)")
    p.add_argument("--seq-len", type=int, default=None, help="epochs per sequence L (default 20)")
    p.add_argument("--stride", type=int, default=None, help="epochs between training sequences (default L)")
    p.add_argument("--synthetic-fs", type=int, default=None, help="generate synthetic nights at this rate (resampled to 100 Hz)")
    p.add_argument("--patience", type=int, default=None, help="early stopping on val macro-F1")
    p.add_argument("--last-epoch", action="store_true",
                   help="keep the last epoch's weights instead of the best validation epoch's")
    p.add_argument("--subjects", type=int, default=None,
                   help="synthetic: number of subjects (10); real: use only the first N subjects")
    p.add_argument("--loader-option", action="append", default=[], metavar="NAME=VALUE",
                   help="real data: option of the dataset's loader, e.g. scorer=2 or trim_last=30 (repeatable)")
    p.add_argument("--bandpass", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="band-pass in Hz (real data default 0.3 35; synthetic: none)")
    p.add_argument("--notch", type=float, default=None, help="mains notch in Hz (default none)")
    p.add_argument("--cache-dir", default=None,
                   help="real data: where prepared recordings are cached (default WORK_DIR/cache)")
    p.add_argument("--night-epochs", type=int, default=None,
                   help="synthetic epochs per night (default: whole ~900-epoch nights)")
    p.add_argument("--val-subjects", type=int, default=None,
                   help="subjects held out for validation (synthetic 1; real: 10 %%)")
    p.add_argument("--test-subjects", type=int, default=None,
                   help="subjects held out for testing (synthetic 2; real: 10 %%)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help=f"batches per training epoch (synthetic default {SYNTHETIC_STEPS_PER_EPOCH}; "
                        "real data and 0: full passes)")
    p.add_argument("--rows", default=None, help="comma-separated row names to run (default: all)")
    p.add_argument("--out", default="results", help="where tables are written")
    p.add_argument("--work-dir", default="runs", help="checkpoints and the per-row cache")
    p.add_argument("--resume-from", action="append", default=[], metavar="TABLE.json",
                   help="take the runs recorded in a table .json written earlier (e.g. a committed "
                        "partial table) as done where their settings match (repeatable)")
    p.add_argument("--cached-only", action="store_true",
                   help="train nothing: write the table from the runs already done (others pending)")
    p.add_argument("--only-seeds", default=None, metavar="S,S",
                   help="train only these seeds (others: cached or pending), e.g. to run the seeds "
                        "of one table in parallel processes sharing --work-dir")
    p.add_argument("--verbose", type=int, default=None, choices=[0, 1, 2])
    return p


# Command-line option -> settings field it overrides.
_DATA_OPTIONS = {"subjects": "n_subjects", "night_epochs": "night_epochs", "seq_len": "seq_len",
                 "val_subjects": "n_val", "test_subjects": "n_test",
                 "stride": "stride", "synthetic_fs": "synthetic_fs"}
_TRAIN_OPTIONS = {"epochs": "epochs", "patience": "patience", "batch_size": "batch_size",
                  "lr": "learning_rate", "steps_per_epoch": "steps_per_epoch"}


def settings_from_args(spec, args):
    data_kw = dict(QUICK_DATA) if args.quick else {}
    train_kw = dict(QUICK_TRAIN) if args.quick else {}
    for options, kw in ((_DATA_OPTIONS, data_kw), (_TRAIN_OPTIONS, train_kw)):
        for option, field in options.items():
            if getattr(args, option) is not None:
                kw[field] = getattr(args, option)
    if args.dataset == "synthetic" and not args.quick:
        train_kw.setdefault("steps_per_epoch", SYNTHETIC_STEPS_PER_EPOCH)
    if train_kw.get("steps_per_epoch") == 0:
        train_kw["steps_per_epoch"] = None  # full passes
    if args.last_epoch:
        train_kw["restore_best"] = False
    if spec.channel_set not in CHANNEL_SETS:
        raise ValueError(f"{spec.name}: unknown channel set {spec.channel_set!r}")
    if args.dataset != "synthetic":
        data_kw.setdefault("n_subjects", None)  # all subjects unless --subjects
        data_kw.setdefault("n_val", None)  # 10 % each, as 8/1/1 on ISRUC-III
        data_kw.setdefault("n_test", None)
        data_kw["loader_options"] = _loader_options(args.loader_option)
        data_kw["data_dir"] = os.path.abspath(args.data_dir) if args.data_dir else None
    elif args.loader_option:
        raise ValueError("--loader-option applies to real datasets only.")
    if args.bandpass is not None:
        data_kw["bandpass"] = tuple(args.bandpass)
    if args.notch is not None:
        data_kw["notch"] = args.notch
    data = DataSettings(dataset=args.dataset, channel_set=spec.channel_set, **data_kw)
    return data, TrainSettings(**train_kw)


def _loader_options(pairs) -> tuple:
    """`["scorer=2", "form=raw"]` -> `(("form", "raw"), ("scorer", 2))` (numbers parsed)."""
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--loader-option expects NAME=VALUE. Received: {pair!r}")
        try:
            options[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[name.strip()] = value
    return tuple(sorted(options.items()))


def run_table(spec, argv=None):
    """Parses `argv`, runs every (row, seed) not cached yet, writes the table.

    The table is rewritten after every trained run, so an interrupted run
    leaves a partial table (rows not run yet are "pending"). Runs recorded in
    `--resume-from` table files count as cached where their settings key
    matches; `--cached-only` trains nothing.

    Returns the aggregated rows (list of dicts).
    """
    args = build_parser(spec).parse_args(argv)
    data_settings, train_settings = settings_from_args(spec, args)
    rows = _selected_rows(spec, args.rows)
    tag = f"{args.dataset}{'-quick' if args.quick else ''}"
    cache_dir = os.path.join(args.work_dir, "results")
    out_dir = os.path.join(args.out, spec.name, tag)
    print(f"{spec.title}\n  data: {data_settings}\n  training: {train_settings}", flush=True)
    channels, set_used = data_settings.resolve_channels()
    if set_used != spec.channel_set:
        print(f"  note: {args.dataset} has no {spec.channel_set!r} channels; using {set_used!r} "
              f"{list(channels)} instead.", flush=True)

    recorded = load_recorded_runs(args.resume_from)
    trained_seeds = _seeds_to_train(args)
    passed = argv if argv is not None else sys.argv[1:]
    command = f"python {_script(spec)} " + " ".join(_without_resume_options(passed))
    keys = {
        (row.name, seed): settings_key(spec.architecture, row.method, row.params, data_settings,
                                       train_settings, seed)
        for seed in range(args.seeds) for row in rows
    }

    def cache_path(name_seed):
        return os.path.join(cache_dir, f"{keys[name_seed]}.json")

    def cached(name_seed):
        """The cached result of `(row name, seed)`, or None if it has not run."""
        path = cache_path(name_seed)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def write(results):
        # Runs that other processes sharing the work dir finished meanwhile count too.
        for name_seed in keys:
            if name_seed not in results and (result := cached(name_seed)) is not None:
                results[name_seed] = result
        summary = summarize(spec, rows, results, args.seeds, paper_column(spec, args.dataset))
        mismatches = teacher_mismatches(results)
        for seed, fingerprints in mismatches.items():
            print(f"WARNING: seed {seed}: rows come from {len(fingerprints)} different teachers "
                  f"{fingerprints} (see the table's warning)", flush=True)
        markdown = format_markdown(spec, summary, args, data_settings, train_settings, command.strip(),
                                   mismatches)
        write_table(out_dir, spec, args, data_settings, train_settings, summary, markdown, results)
        return summary, markdown

    data = None
    results = {}
    for seed in range(args.seeds):
        for row in rows:
            key, path = keys[row.name, seed], cache_path((row.name, seed))
            if not os.path.exists(path) and key in recorded:
                source, result = recorded[key]
                write_json(path, result)  # into the cache, so later runs find it too
                print(f"[{row.name} | seed {seed}] recorded in {source}", flush=True)
            if (result := cached((row.name, seed))) is not None:
                results[row.name, seed] = result
                print(f"[{row.name} | seed {seed}] cached ({path})", flush=True)
                continue
            if seed not in trained_seeds:
                print(f"[{row.name} | seed {seed}] pending (not run yet)", flush=True)
                continue
            if data is None:
                started = time.time()
                data = load_experiment_data(
                    data_settings, cache_dir=args.cache_dir or os.path.join(args.work_dir, "cache")
                )
                print(
                    f"  data ready in {time.time() - started:.1f} s: train {len(data.train)}, "
                    f"val {len(data.val)}, test {len(data.test)} sequences; split {data.split.to_dict()}",
                    flush=True,
                )
            print(f"[{row.name} | seed {seed}] training ...", flush=True)
            ctx = RunContext(
                data=data, data_settings=data_settings, train_settings=train_settings,
                architecture=spec.architecture, seed=seed,
                work_dir=args.work_dir, verbose=args.verbose,
            )
            set_seed(seed)
            result = run_method(ctx, row.method, row.params, os.path.join(args.work_dir, "rows", key))
            result.update(row=row.name, seed=seed, key=key)
            write_json(path, result)
            results[row.name, seed] = result
            m = result["metrics"]
            print(
                f"[{row.name} | seed {seed}] accuracy {100 * m['accuracy']:.2f} %, "
                f"macro-F1 {100 * m['macro_f1']:.2f} %, kappa {m['kappa']:.3f} "
                f"({result['seconds']:.0f} s)",
                flush=True,
            )
            write(results)  # the table so far: a long run shows progress and loses nothing

    summary, markdown = write(results)
    print("\n" + markdown)
    print(f"Written to {out_dir}/", flush=True)
    return summary


def write_table(out_dir, spec, args, data_settings, train_settings, summary, markdown, results):
    """Writes `NAME.md`, `.csv` and `.json` (with every run's result) atomically."""
    write_text(os.path.join(out_dir, f"{spec.name}.md"), markdown)
    write_text(os.path.join(out_dir, f"{spec.name}.csv"), format_csv(summary))
    write_json(os.path.join(out_dir, f"{spec.name}.json"), {
        "table": spec.name, "title": spec.title, "dataset": args.dataset, "seeds": args.seeds,
        "complete": all(e["seeds"] == args.seeds for e in summary),
        "data_settings": dataclasses.asdict(data_settings),
        "train_settings": dataclasses.asdict(train_settings),
        "rows": summary,
        "runs": [dict(r, history=None) for r in results.values()],
    })


def _seeds_to_train(args):
    """The seeds this run may train: none with `--cached-only`, else `--only-seeds` or all."""
    if args.cached_only:
        return set()
    if args.only_seeds is None:
        return set(range(args.seeds))
    try:
        seeds = {int(s) for s in args.only_seeds.split(",") if s.strip()}
    except ValueError:
        raise ValueError(f"--only-seeds expects comma-separated integers. Received: {args.only_seeds!r}") from None
    outside = sorted(seeds - set(range(args.seeds)))
    if not seeds or outside:
        raise ValueError(f"--only-seeds {args.only_seeds!r}: each seed must be in 0..{args.seeds - 1} "
                         f"(--seeds {args.seeds}).")
    return seeds


def load_recorded_runs(paths):
    """`{settings key: (file, run result)}` from table `.json` files written by `run_table`.

    Raises `ValueError` naming the file if it is missing, not JSON, or not a
    table written by the runner.
    """
    recorded = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                table = json.load(f)
        except FileNotFoundError:
            raise ValueError(f"--resume-from {path}: no such file.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"--resume-from {path}: not a JSON file ({e}).") from None
        runs = table.get("runs") if isinstance(table, dict) else None
        if not isinstance(runs, list) or not all(
            isinstance(r, dict) and isinstance(r.get("key"), str) and "metrics" in r for r in runs
        ):
            raise ValueError(
                f"--resume-from {path}: not a table written by the runner "
                "(expected a 'runs' list whose entries have 'key' and 'metrics')."
            )
        for run in runs:
            recorded[run["key"]] = (os.fspath(path), run)
    return recorded


def _without_resume_options(argv):
    """`argv` less `--resume-from X`, `--only-seeds S` and `--cached-only`: they change
    where or when results are computed, not what they are."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--resume-from", "--only-seeds"):
            skip = True
        elif not (arg.startswith(("--resume-from=", "--only-seeds=")) or arg == "--cached-only"):
            kept.append(arg)
    return kept


def _selected_rows(spec, names):
    if not names:
        return spec.rows
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {r.name: r for r in spec.rows}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"Unknown row(s) {unknown}; rows of {spec.name}: {list(known)}")
    return tuple(known[n] for n in wanted)


_METRIC_FIELDS = ("accuracy", "accuracy_std", "macro_f1", "macro_f1_std", "kappa", "kappa_std",
                  "per_class_f1", "params", "seconds")


def summarize(spec, rows, results, n_seeds, paper_column):
    """Mean and std over seeds of each row's test metrics, with the paper's values.

    A row with no result yet has `seeds` 0 and `None` metrics.
    """
    summary = []
    for row in rows:
        runs = [results[row.name, s] for s in range(n_seeds) if (row.name, s) in results]
        entry = {"row": row.name, "seeds": len(runs)}
        paper = row.paper.get(paper_column)
        entry["paper_accuracy"], entry["paper_macro_f1"] = paper if paper else (None, None)
        if not runs:  # not run yet (a partial table)
            summary.append({**entry, **dict.fromkeys(_METRIC_FIELDS)})
            continue
        for metric in ("accuracy", "macro_f1", "kappa"):
            values = np.array([100 * r["metrics"][metric] if metric != "kappa" else r["metrics"][metric]
                               for r in runs], dtype=float)
            entry[metric] = float(values.mean())
            entry[metric + "_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        entry["per_class_f1"] = {
            k: float(np.mean([100 * r["metrics"]["per_class_f1"][k] for r in runs]))
            for k in STAGES  # cached results come back from JSON with sorted keys
        }
        entry["params"] = runs[0].get("params")
        entry["seconds"] = float(np.mean([r["seconds"] for r in runs]))
        if any("teacher_metrics" in r for r in runs):
            entry["teacher_accuracy_after"] = float(
                np.mean([100 * r["teacher_metrics"]["accuracy"] for r in runs if "teacher_metrics" in r])
            )
        summary.append(entry)
    return summary


FINGERPRINT_FIELDS = ("teacher_fingerprint", "assistant_teacher_fingerprint")
"""Result fields naming the pre-trained teacher a row used (directly or behind its TA)."""


def teacher_mismatches(results):
    """`{seed: fingerprints}` for each seed whose rows used more than one pre-trained teacher.

    All rows of a seed should share one teacher; two fingerprints mean a
    cached or recorded teacher was retrained to different weights (e.g. a
    table finished on another machine with `--resume-from`). Results that
    record no fingerprint are not checked.
    """
    by_seed = {}
    for (_, seed), result in results.items():
        for field in FINGERPRINT_FIELDS:
            if result.get(field):
                by_seed.setdefault(seed, set()).add(result[field])
    return {seed: sorted(found) for seed, found in sorted(by_seed.items()) if len(found) > 1}


def _pm(mean, std, n, n_seeds=None):
    text = f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"
    return text if n_seeds is None or n == n_seeds else f"{text} ({n} of {n_seeds} seeds)"


def _delta(ours, paper):
    return "—" if paper is None else f"{ours - paper:+.2f}"


def format_markdown(spec, summary, args, data_settings, train_settings, command, mismatches=None):
    column = PAPER_NAMES[paper_column(spec, args.dataset)]
    done = sum(e["seeds"] for e in summary)
    total = args.seeds * len(summary)
    lines = [
        f"### {spec.title}",
        "",
        f"Dataset: **{args.dataset}**{' (quick)' if args.quick else ''}, {args.seeds} seed(s); "
        f"paper values: {column}. Accuracy and macro-F1 in %, test subjects pooled.",
        "",
    ]
    if done < total:
        lines += [f"**Partial table: {done} of {total} (row, seed) runs done**; the rest are pending.", ""]
    for seed, fingerprints in (mismatches or {}).items():
        lines += [f"**Warning: seed {seed}'s rows come from {len(fingerprints)} different pre-trained "
                  f"teachers** (weight fingerprints {', '.join(fingerprints)}): a cached teacher was "
                  "retrained to other weights, so these rows are not comparable.", ""]
    lines += [
        "| Method | Paper acc. | Paper MF1 | Ours acc. | Ours MF1 | Δ acc. | Δ MF1 | κ | F1 W / N1 / N2 / N3 / REM |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in summary:
        pa, pf = e["paper_accuracy"], e["paper_macro_f1"]
        paper_cells = f"| {e['row']} | {'—' if pa is None else f'{pa:.2f}'} | {'—' if pf is None else f'{pf:.2f}'} "
        if not e["seeds"]:
            lines.append(paper_cells + "| pending | pending | — | — | — | — |")
            continue
        f1 = " / ".join(f"{v:.0f}" for v in e["per_class_f1"].values())
        lines.append(
            paper_cells
            + f"| {_pm(e['accuracy'], e['accuracy_std'], e['seeds'], args.seeds)} "
            f"| {_pm(e['macro_f1'], e['macro_f1_std'], e['seeds'], args.seeds)} "
            f"| {_delta(e['accuracy'], pa)} | {_delta(e['macro_f1'], pf)} "
            f"| {e['kappa']:.3f} | {f1} |"
        )
    if spec.notes:
        lines += ["", spec.notes.strip()]
    lines += [
        "",
        f"Data: {data_settings}",
        f"Training: {train_settings}",
        "",
        f"Command: `{command}`",
        "",
    ]
    return "\n".join(lines)


def format_csv(summary):
    buf = io.StringIO()
    fields = ["row", "seeds", "accuracy", "accuracy_std", "macro_f1", "macro_f1_std", "kappa",
              "kappa_std", "paper_accuracy", "paper_macro_f1", "params", "seconds"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for e in summary:
        writer.writerow(e)
    return buf.getvalue()
