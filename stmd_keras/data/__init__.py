"""Data: files and generators -> `Recording` -> preprocessed epochs -> sequences."""

from stmd_keras.data.recording import EPOCH_SEC, STAGES, DataError, Recording
from stmd_keras.data.preprocess import PreprocessConfig, prepare, prepare_all
from stmd_keras.data.sequences import SequenceSet
from stmd_keras.data.splits import Split, kfold_splits, paper_split, select

__all__ = [
    "EPOCH_SEC",
    "STAGES",
    "DataError",
    "Recording",
    "PreprocessConfig",
    "prepare",
    "prepare_all",
    "SequenceSet",
    "Split",
    "kfold_splits",
    "paper_split",
    "select",
]
