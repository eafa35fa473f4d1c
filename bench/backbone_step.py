"""Training-step time of the SleepKD backbones, fused vs Keras BatchNorm (issue 6).

    python bench/backbone_step.py [--arch deepsleepnet,salientsleepnet]
                                  [--roles teacher,student] [--steps 5]
                                  [--batch 8] [--seq-len 20]

One channel at 100 Hz, as in the SleepKD table. For each model, the median
graph-mode `SupervisedTrainer.train_on_batch` time (after warm-up steps that
absorb tracing) with `FusedBatchNormalization`'s fused training kernel, and
with it switched off (Keras' own BatchNormalization code path, same weights
and layers). No target: the figures size the SleepKD table's budget.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from train_step import time_steps  # noqa: E402  (bench/ is on sys.path when run as a script)
from stmd_keras.distill import SupervisedTrainer  # noqa: E402
from stmd_keras.models import build_model  # noqa: E402
from stmd_keras.models.normalization import FusedBatchNormalization  # noqa: E402


def step_time(arch, role, x, y, steps, fused):
    original = FusedBatchNormalization._fused
    if not fused:
        FusedBatchNormalization._fused = lambda self, *args: False
    try:
        keras.utils.set_random_seed(0)
        trainer = SupervisedTrainer(build_model(arch, role, n_channels=1, seq_len=x.shape[1], fs=100))
        trainer.compile(keras.optimizers.Adam(1e-4))
        return time_steps(trainer, x, y, steps, warmup=2)
    finally:
        FusedBatchNormalization._fused = original


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="deepsleepnet,salientsleepnet")
    p.add_argument("--roles", default="teacher,student")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=20)
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.seq_len, 1, 3000)).astype("float32")
    y = rng.integers(0, 5, (args.batch, args.seq_len)).astype("int32")
    print(f"batch {args.batch}, L {args.seq_len}, 1 channel x 3000 samples, median of {args.steps} steps")
    print("| model | fused BN (s) | Keras BN (s) | speed-up |\n|---|---|---|---|")
    results = {}
    for arch in args.arch.split(","):
        for role in args.roles.split(","):
            fused = step_time(arch, role, x, y, args.steps, fused=True)
            plain = step_time(arch, role, x, y, args.steps, fused=False)
            results[arch, role] = (fused, plain)
            print(f"| {arch} {role} | {fused:.3f} | {plain:.3f} | {plain / fused:.2f}x |", flush=True)
    return results


if __name__ == "__main__":
    main()
