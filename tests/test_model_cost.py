"""Parameters, size on disk and FLOPs (analytic vs TF profiler) for Table 2."""

import json
import pathlib
import runpy

import keras
import pytest
from keras import layers

from stmd_keras.models import GraphConvolution, build_cnn_gcn, build_cnn_rnn
from stmd_keras.models.cost import (
    Cost, analytic_cost, analytic_flops, count_flops, count_params, graph_convolution_cost,
    lstm_step_cost, profiler_flops, size_on_disk,
)

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def functional(input_shape, *stack):
    x = inputs = keras.Input(input_shape)
    for layer in stack:
        x = layer(x)
    return keras.Model(inputs, x)


def test_conv1d_flops_are_two_per_multiply_add_plus_the_bias():
    # 10 steps x 3 channels, 4 filters of width 3, 'valid': 8 outputs per filter.
    model = functional((10, 3), layers.Conv1D(4, 3, activation="relu"))
    macs = 8 * 4 * 3 * 3
    assert analytic_cost(model)[model.layers[1].name] == Cost(2 * macs + 8 * 4, macs)
    # Stride 3, 'same': ceil(10 / 3) = 4 positions, each a full 4 x 2 kernel per filter.
    model = functional((10, 2), layers.Conv1D(5, 4, strides=3, padding="same"))
    assert analytic_flops(model) == 2 * (4 * 5 * 4 * 2) + 4 * 5


def test_dense_flops_scale_with_the_batch():
    model = functional((7,), layers.Dense(3))
    assert analytic_flops(model) == 2 * 7 * 3 + 3
    assert analytic_flops(model, batch_size=2) == 2 * (2 * 7 * 3 + 3)


def test_one_lstm_step_by_hand():
    # in = 3, u = 2: x W (2*3*8) + h U (2*2*8) + add (8) + bias (8) + c = f*c + i*g (3*2) + h = o*tanh(c) (2).
    hand = 48 + 32 + 8 + 8 + 6 + 2
    assert lstm_step_cost(3, 2) == Cost(hand, 4 * 2 * (3 + 2))
    model = functional((1, 3), layers.LSTM(2))
    assert analytic_flops(model) == hand
    assert profiler_flops(model, unroll_rnn=True) == hand  # the profiler agrees once unrolled
    assert analytic_flops(functional((5, 3), layers.LSTM(2))) == 5 * hand


def test_graph_convolution_by_hand():
    # 1 graph, 2 nodes x 3 features -> 4 units, fixed A: A X (2*2*2*3) + (A X) W (2*2*3*4) + bias (2*4).
    assert graph_convolution_cost("fixed", 1, 2, 3, 4) == Cost(24 + 48 + 8, 12 + 24)
    model = functional((5, 2, 3), GraphConvolution(4, adjacency="fixed", adjacency_matrix=[[0, 1], [1, 0]]))
    assert analytic_flops(model) == 5 * 80 == profiler_flops(model)


def test_profiler_equals_the_analytic_count_on_a_conv_dense_model():
    model = functional((10, 3), layers.Conv1D(4, 3, activation="relu"), layers.MaxPooling1D(2),
                       layers.Flatten(), layers.Dropout(0.5), layers.Dense(5))
    hand = (2 * 8 * 4 * 3 * 3 + 8 * 4) + (4 * 4 * 2) + (2 * 16 * 5 + 5)  # conv, pool, dense
    assert analytic_flops(model) == hand
    assert profiler_flops(model) == hand


def test_cnn_rnn_profiler_misses_the_lstm_loop_but_agrees_elsewhere():
    model = build_cnn_rnn(4, 3, n_channels=2, seq_len=3, fs=20)
    analytic = {name: c.flops for name, c in analytic_cost(model).items() if c.flops}
    total, profiled = profiler_flops(model, by_layer=True)
    assert sum(profiled.values()) == total
    assert profiled["encoder"] == analytic["encoder"] and profiled["logits"] == analytic["logits"]
    assert 0 < profiled["bilstm"] < analytic["bilstm"]  # loop body counted once, partly
    assert total < analytic_flops(model)
    assert profiler_flops(model, unroll_rnn=True, by_layer=True) == (analytic_flops(model), analytic)


@pytest.mark.parametrize("adjacency", ["adaptive", "cosine"])
def test_cnn_gcn_profiler_equals_the_analytic_count(adjacency):
    model = build_cnn_gcn(4, 3, n_channels=2, seq_len=3, fs=20, adjacency=adjacency)
    counted = count_flops(model)
    assert counted.profiler == counted.profiler_unrolled == counted.analytic
    assert counted.macs * 2 < counted.analytic
    assert counted.per_epoch() == counted.analytic / 3


def test_count_flops_reports_both_methods_per_sequence_and_per_epoch():
    model = build_cnn_rnn(4, 3, n_channels=2, seq_len=3, fs=20)
    counted = count_flops(model)
    assert counted.profiler < counted.profiler_unrolled == counted.analytic
    assert counted.seq_len == 3 and counted.to_dict()["analytic_per_epoch"] == counted.analytic / 3
    assert count_flops(model, batch_size=2).analytic == 2 * counted.analytic


def test_size_on_disk_of_a_keras_file_exceeds_the_raw_weights():
    model = build_cnn_rnn(4, 3, n_channels=2, seq_len=2, fs=20)
    sizes = size_on_disk(model)
    assert sizes["weights_bytes"] == 4 * count_params(model) == 4 * model.count_params()
    assert sizes["keras_bytes"] > sizes["weights_bytes"]


def test_unknown_layers_are_refused_not_guessed():
    model = functional((8, 8, 1), layers.Conv2D(2, 3))
    with pytest.raises(NotImplementedError, match="Conv2D"):
        analytic_flops(model)


def test_table2_runs_end_to_end(tmp_path):
    # A Table 3 result with the two rows Table 2 reads; no Table 4 result.
    table3 = tmp_path / "table3" / "synthetic" / "table3.json"
    table3.parent.mkdir(parents=True)
    table3.write_text(json.dumps({"rows": [
        {"row": "Teacher", "accuracy": 81.5, "macro_f1": 77.25, "seeds": 1},
        {"row": "Ours (STMD)", "accuracy": 79.0, "macro_f1": 74.5, "seeds": 1},
    ]}))
    main = runpy.run_path(str(EXPERIMENTS / "table2.py"), run_name="not_main")["main"]
    rows = main(["--out", str(tmp_path), "--channels", "2", "--seq-len", "2", "--fs", "20"])
    assert [r["model"] for r in rows] == ["CNN-RNN Teacher", "CNN-RNN Student", "CNN-GCN Teacher",
                                          "CNN-GCN Student"]
    for r in rows:
        assert r["flops_analytic"] == r["flops_profiler_unrolled"] >= r["flops_profiler"] > 0
        assert r["keras_bytes"] > r["weights_bytes"] == 4 * r["params"]
    out = tmp_path / "table2" / "synthetic"
    assert {p.name for p in out.iterdir()} == {"table2.md", "table2.csv", "table2.json"}
    md = (out / "table2.md").read_text()
    assert "| CNN-RNN Teacher | 83.47 | 80.50 | 81.50 | 77.25 |" in md
    assert "python experiments/table4.py --dataset synthetic" in md  # how to fill the CNN-GCN rows
    saved = json.loads((out / "table2.json").read_text())
    assert saved["input"] == {"channels": 2, "seq_len": 2, "fs": 20, "epoch_sec": 30}
    assert saved["rows"][2]["accuracy"] is None and len(saved["compression"]) == 2
    assert (out / "table2.csv").read_text().count("\n") == 5
