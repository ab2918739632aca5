import pytest
from forkkit import Server


@pytest.fixture(scope="module")
def server():
    """The pre-imported server that runs command lines in forks, with faults injected (forkkit.py)."""
    with Server() as s:
        yield s
