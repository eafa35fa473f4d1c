import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """`../shared/data` beside the repository; skips (saying why) when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data fragments not found at {SHARED_DATA} (only in the project workspace/CI)")
    return SHARED_DATA


