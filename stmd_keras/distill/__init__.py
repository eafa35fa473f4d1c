"""Training engines: supervised pre-training and (mutual) distillation."""

from stmd_keras.distill.checkpoint import ResumableCheckpoint
from stmd_keras.distill.methods import METHODS, DistillationMethod, get_method
from stmd_keras.distill.mutual import MutualDistiller
from stmd_keras.distill.sleepkd import SLEEPKD_METHODS
from stmd_keras.distill.objectives import classification_loss, kd_loss
from stmd_keras.distill.supervised import SupervisedTrainer

METHODS.update(SLEEPKD_METHODS)  # SleepKD (IJCAI 2023) and DGKD, same interface

__all__ = [
    "METHODS",
    "DistillationMethod",
    "get_method",
    "MutualDistiller",
    "ResumableCheckpoint",
    "SupervisedTrainer",
    "classification_loss",
    "kd_loss",
]
