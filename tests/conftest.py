import os
from pathlib import Path

import pytest


@pytest.fixture
def corpus() -> Path:
    root = os.environ.get("MOCKBENCH_CORPUS")
    if not root:
        pytest.skip("MOCKBENCH_CORPUS is not set: the ANS corpus is not available here")
    return Path(root)
