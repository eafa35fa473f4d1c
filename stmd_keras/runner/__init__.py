"""The shared experiment runner behind every `experiments/tableN.py`."""

from stmd_keras.runner.settings import CHANNEL_SETS, DataSettings, TrainSettings
from stmd_keras.runner.table import Row, TableSpec, run_table
from stmd_keras.runner.chains import CHAIN_METHODS
from stmd_keras.runner.training import METHODS

METHODS.update(CHAIN_METHODS)  # teacher-assistant rows (SleepKD, TAKD, DGKD), same runner

__all__ = ["CHANNEL_SETS", "DataSettings", "Row", "TableSpec", "TrainSettings", "run_table"]
