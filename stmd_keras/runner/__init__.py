"""The shared experiment runner behind every `experiments/tableN.py`."""

from stmd_keras.runner.settings import CHANNEL_SETS, DataSettings, TrainSettings
from stmd_keras.runner.table import Row, TableSpec, run_table

__all__ = ["CHANNEL_SETS", "DataSettings", "Row", "TableSpec", "TrainSettings", "run_table"]
