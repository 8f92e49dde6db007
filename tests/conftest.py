import pytest

from satori_env import Verifier


@pytest.fixture(scope="session")
def verifier():
    """One warm worker pool shared by the tests that do not need a pool of their own."""
    with Verifier(timeout=1.0, workers=2) as shared:
        yield shared
