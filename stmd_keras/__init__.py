"""stmd_keras: spatial-temporal mutual distillation for sleep staging (Keras 3)."""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) buries the
# training log; users can still ask for it by setting the variable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
