"""`stmd plot {graphs,relations,confusion,hypnogram,curves}`: the figures from saved files.

    stmd plot confusion results/table3/synthetic/table3.json --rows "Student (no KD),Ours (STMD)" --out cm.png
    stmd plot curves runs/results/KEY.json --out curves.pdf
    stmd plot graphs teacher.keras student.keras --names Teacher Student --out graphs.png
    stmd plot relations teacher.keras student.keras --names Teacher Student --out relations.png
    stmd plot hypnogram out/night.hypnogram.tsv --truth night.npz --out night.png

`graphs` and `relations` run the models (`.keras` files with their model
card `stmd_model.json` beside them) over synthetic nights generated for the
card's channels, or over a folder of nights (`--data`: `*.npz` from `stmd
synth`, or `*.h5` from `stmd data prepare`), prepared as the card says.
"""

from __future__ import annotations

import os

from stmd_keras.viz._common import FORMATS

GRAPH_DATA_SEED = 1
"""Seed of the synthetic nights `graphs`/`relations` use by default: not the
seed-0 nights the table runner trains on."""


def _csv(text):
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _common(p):
    p.add_argument("--out", required=True, help=f"figure file; the format follows the extension ({', '.join(FORMATS)})")
    p.add_argument("--title", default=None, help="figure title")
    p.add_argument("--dpi", type=int, default=100, help="PNG resolution (default 100)")


def _model_data(p):
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help=".keras model(s) with stmd_model.json beside them, e.g. the teacher then the student")
    p.add_argument("--names", nargs="+", default=None, help="row names, one per model (default the card's role)")
    p.add_argument("--data", default="synthetic",
                   help="'synthetic' (default) or a folder of nights (*.npz from stmd synth, *.h5 from stmd data prepare)")
    p.add_argument("--nights", type=int, default=2, help="synthetic nights (default 2)")
    p.add_argument("--night-epochs", type=int, default=300, help="epochs per synthetic night (default 300)")
    p.add_argument("--seed", type=int, default=GRAPH_DATA_SEED,
                   help=f"seed of the synthetic nights (default {GRAPH_DATA_SEED}: nights not used in training)")
    p.add_argument("--max-sequences", type=int, default=64, help="sequences run through the models (default 64)")
    p.add_argument("--batch-size", type=int, default=8)


def add_arguments(sub):
    """Adds `stmd plot` and its five figures to the argparse subparsers `sub`."""
    plot = sub.add_parser("plot", help="draw the paper's figures (sleep graphs, relations, confusion, "
                                       "hypnogram, curves) from saved files")
    kinds = plot.add_subparsers(dest="figure", required=True)

    g = kinds.add_parser("graphs", help="mean sleep graph per stage of each model (paper Figure 3)")
    _model_data(g)
    _common(g)
    g.set_defaults(draw=_graphs)

    r = kinds.add_parser("relations", help="mean temporal relation per stage of each model (paper Figure 4)")
    _model_data(r)
    r.add_argument("--normalize", action="store_true",
                   help="divide each relation by its mean off-diagonal distance (models at one scale)")
    _common(r)
    r.set_defaults(draw=_relations)

    c = kinds.add_parser("confusion", help="confusion matrices of saved results (paper Figures 5-7)")
    c.add_argument("result", help="a row result (runs/results/KEY.json) or a table (results/tableN/DATASET/tableN.json)")
    c.add_argument("--rows", default=None, help="table: comma-separated rows to draw (default all)")
    c.add_argument("--seed", type=int, default=None, help="table: one seed (default: all seeds pooled)")
    c.add_argument("--normalize", choices=["true", "none", "both"], default="true",
                   help="true: row %% (default); none: counts; both: counts and row %%")
    c.add_argument("--ncols", type=int, default=4, help="panels per row (default 4)")
    _common(c)
    c.set_defaults(draw=_confusion)

    h = kinds.add_parser("hypnogram", help="hypnogram (true vs predicted) and hypnodensity of a night")
    h.add_argument("staged", help="PREFIX.hypnogram.tsv written by `stmd stage` (or PREFIX), or any stage file")
    h.add_argument("--probabilities", default=None,
                   help="PREFIX.probabilities.csv (default: found beside a PREFIX.hypnogram.tsv)")
    h.add_argument("--truth", default=None,
                   help="the scored stages: a .npz night (stmd synth), a TSV/CSV with a `stage` column, "
                        "or one stage per line (W N1 N2 N3 REM or 0-4)")
    _common(h)
    h.set_defaults(draw=_hypnogram)

    k = kinds.add_parser("curves", help="each loss term per epoch from a saved training history")
    k.add_argument("result", help="a row result (runs/results/KEY.json) or a table JSON with --row")
    k.add_argument("--row", default=None, help="table: the row")
    k.add_argument("--seed", type=int, default=0, help="table: the seed (default 0)")
    k.add_argument("--terms", default=None,
                   help="comma-separated history columns (default: every non-zero loss term)")
    k.add_argument("--work-dir", default="runs",
                   help="table: the runner's work folder holding the histories (default runs)")
    _common(k)
    k.set_defaults(draw=_curves)
    plot.set_defaults(func=run_from_args)
    return plot


def _say(path):
    print(path, flush=True)


def _sequences(card, args):
    """Prepared sequences `(x, y)` for a model with `card` (see the module docstring)."""
    import numpy as np

    from stmd_keras.data import synthetic
    from stmd_keras.data.preprocess import prepare_all
    from stmd_keras.data.sequences import SequenceSet
    from stmd_keras.deploy.export import _folder_recordings, _preprocess_config

    if args.data == "synthetic":
        channels = tuple(card["channels"])
        if not set(channels) <= set(synthetic.ISRUC_CHANNELS):
            raise ValueError(f"the synthetic generator has no channels {list(channels)}; pass --data FOLDER.")
        recordings = synthetic.generate(args.nights, seed=args.seed, n_epochs=args.night_epochs, channels=channels)
        recordings = prepare_all(recordings, _preprocess_config(card, channels))
    else:
        recordings, _ = _folder_recordings(card, args.data)
    sequences = SequenceSet(recordings, seq_len=int(card["seq_len"]), cover_all=False)
    n = min(len(sequences), args.max_sequences)
    # Evenly spread over the nights: every part of the night, every stage.
    indices = np.unique(np.linspace(0, len(sequences) - 1, n).round().astype(int))
    return sequences.get(indices)


def _knowledge(args, normalize=False):
    from stmd_keras.deploy.export import load_checkpoint
    from stmd_keras.viz.knowledge import extract_knowledge

    if args.names and len(args.names) != len(args.models):
        raise ValueError(f"--names gives {len(args.names)} names for {len(args.models)} models.")
    loaded = [load_checkpoint(path) for path in args.models]
    cards = [card for _, card in loaded]
    for path, card in zip(args.models[1:], cards[1:]):
        for key in ("channels", "fs", "seq_len"):
            if card[key] != cards[0][key]:
                raise ValueError(f"{path} takes {key}={card[key]!r} but {args.models[0]} takes "
                                 f"{cards[0][key]!r}; compare models of the same input.")
    x, y = _sequences(cards[0], args)
    names = args.names or [str(card.get("role") or os.path.basename(p)).capitalize()
                           for p, card in zip(args.models, cards)]
    knowledge = {name: extract_knowledge(model, x, args.batch_size, normalize=normalize)
                 for name, (model, _) in zip(names, loaded)}
    return knowledge, y, cards[0]


def _graphs(args):
    from stmd_keras.viz.knowledge import plot_sleep_graphs

    knowledge, y, card = _knowledge(args)
    plot_sleep_graphs({k: v["graphs"] for k, v in knowledge.items()}, y, card["channels"], title=args.title,
                      path=args.out, dpi=args.dpi)


def _relations(args):
    from stmd_keras.viz.knowledge import plot_temporal_relations

    knowledge, y, _ = _knowledge(args, normalize=args.normalize)
    plot_temporal_relations({k: v["relations"] for k, v in knowledge.items()}, y, title=args.title,
                            path=args.out, dpi=args.dpi)


def _confusion(args):
    from stmd_keras.viz.results import load_runs, plot_confusion

    runs = load_runs(args.result, rows=_csv(args.rows), seed=args.seed)
    plot_confusion(dict(runs), normalize=args.normalize, title=args.title, ncols=args.ncols, path=args.out,
                   dpi=args.dpi)


def _curves(args):
    import json

    from stmd_keras.viz.results import load_runs, plot_training_curves

    with open(args.result, encoding="utf-8") as f:
        is_table = "runs" in json.load(f)
    if is_table and not args.row:
        raise ValueError(f"{args.result} is a table: name the run with --row (and --seed).")
    if is_table:
        ((label, result),) = load_runs(args.result, rows=[args.row], seed=args.seed, work_dir=args.work_dir)
    else:
        ((label, result),) = load_runs(args.result)
    plot_training_curves(result, terms=_csv(args.terms), title=args.title or label, path=args.out, dpi=args.dpi)


def _hypnogram(args):
    from stmd_keras.viz.hypnogram import plot_hypnogram, read_hypnogram, read_probabilities

    staged = args.staged
    if not os.path.exists(staged) and os.path.exists(staged + ".hypnogram.tsv"):
        staged += ".hypnogram.tsv"  # a PREFIX of `stmd stage --out PREFIX`
    probabilities = args.probabilities
    if probabilities is None and staged.endswith(".hypnogram.tsv"):
        beside = staged[: -len(".hypnogram.tsv")] + ".probabilities.csv"
        probabilities = beside if os.path.exists(beside) else None
    predicted, onsets = read_hypnogram(staged)
    probs, stages = None, None
    if probabilities is not None:
        prob_onsets, probs, stages = read_probabilities(probabilities)
        onsets = prob_onsets if onsets is None else onsets
    truth = read_hypnogram(args.truth)[0] if args.truth else None
    if truth is not None and len(truth) != len(predicted):
        raise ValueError(f"{args.truth} scores {len(truth)} epochs but {staged} stages {len(predicted)}.")
    kwargs = {"stages": stages} if stages else {}
    plot_hypnogram(predicted, y_true=truth, probabilities=probs, onsets=onsets,
                   title=args.title or os.path.basename(staged), path=args.out, dpi=args.dpi, **kwargs)


def run_from_args(args, rest=None):
    """Draws the figure `args.figure` and writes it to `args.out`; errors exit with a message."""
    try:
        args.draw(args)
    except (ValueError, OSError, KeyError) as e:  # DataError, ModelCardError included
        raise SystemExit(f"stmd plot {args.figure}: {e}") from None
    _say(args.out)

