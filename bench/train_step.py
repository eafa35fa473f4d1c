"""Mutual train-step time vs teacher step + student step, measured in one run.

    python bench/train_step.py [--steps 20] [--batch 8] [--seq-len 20] [--channels 6]

Every step runs through Keras' compiled (graph-mode) train function via
`train_on_batch`, after warm-up steps that absorb tracing. Target (issue 2):
mutual / (teacher + student) <= 1.15.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from stmd_keras.distill import MutualDistiller, SupervisedTrainer  # noqa: E402
from stmd_keras.models import cnn_rnn_student, cnn_rnn_teacher  # noqa: E402

TARGET_RATIO = 1.15


def time_steps(trainer, x, y, steps, warmup=3):
    for _ in range(warmup):
        trainer.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        trainer.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=20)
    p.add_argument("--channels", type=int, default=6)
    p.add_argument("--fs", type=int, default=100)
    args = p.parse_args(argv)

    keras.utils.set_random_seed(0)
    shape = dict(n_channels=args.channels, seq_len=args.seq_len, fs=args.fs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.seq_len, args.channels, 30 * args.fs)).astype("float32")
    y = rng.integers(0, 5, (args.batch, args.seq_len)).astype("int32")

    teacher = SupervisedTrainer(cnn_rnn_teacher(**shape))
    teacher.compile(keras.optimizers.Adam(1e-4))
    student = SupervisedTrainer(cnn_rnn_student(**shape))
    student.compile(keras.optimizers.Adam(1e-4))
    mutual = MutualDistiller(cnn_rnn_teacher(**shape), cnn_rnn_student(**shape))
    mutual.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4))

    t_teacher = time_steps(teacher, x, y, args.steps)
    t_student = time_steps(student, x, y, args.steps)
    t_mutual = time_steps(mutual, x, y, args.steps)
    ratio = t_mutual / (t_teacher + t_student)
    print(f"batch {args.batch}, L {args.seq_len}, {args.channels} channels x {30 * args.fs} samples, "
          f"median of {args.steps} graph-mode steps")
    print(f"| step | seconds |\n|---|---|")
    print(f"| teacher alone (CE) | {t_teacher:.3f} |")
    print(f"| student alone (CE) | {t_student:.3f} |")
    print(f"| teacher + student | {t_teacher + t_student:.3f} |")
    print(f"| mutual STMD step | {t_mutual:.3f} |")
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"ratio mutual / (teacher + student) = {ratio:.3f} (target <= {TARGET_RATIO}) {verdict}")
    return ratio


if __name__ == "__main__":
    main()
