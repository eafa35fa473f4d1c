"""stmd_keras: spatial-temporal mutual distillation for sleep staging (Keras 3)."""

__version__ = "0.1.0"
