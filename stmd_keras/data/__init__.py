"""Data: files and generators -> `Recording` -> preprocessed epochs -> sequences."""

from stmd_keras.data.recording import EPOCH_SEC, STAGES, DataError, Recording

__all__ = ["EPOCH_SEC", "STAGES", "DataError", "Recording"]
