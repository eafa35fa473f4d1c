"""Data: files and generators -> `Recording` -> preprocessed epochs -> sequences."""

from stmd_keras.data.recording import EPOCH_SEC, STAGES, DataError, Recording
from stmd_keras.data.preprocess import PreprocessConfig, prepare, prepare_all
from stmd_keras.data.splits import Split, kfold_splits, paper_split, select



def __getattr__(name):
    # SequenceSet needs TensorFlow; import it on first use so that reading,
    # downloading and preparing data (and `stmd --help`) stay fast.
    if name == "SequenceSet":
        from stmd_keras.data.sequences import SequenceSet

        return SequenceSet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
