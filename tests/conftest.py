"""Shared pytest fixtures. Keep this small: fixtures live in their own modules and are re-exported here."""

import tempfile

import pytest

from tests.hub_fixtures import local_hub  # noqa: F401 - the loopback Hub server fixture (see tests/hub_fixtures.py)


@pytest.fixture(autouse=True, scope="session")
def _tempfiles_in_pytest_tree(tmp_path_factory: pytest.TempPathFactory):
    """A failed push keeps its staged files on purpose (hf_mtl.hub.PushToHubError): the tests that make pushes fail
    leave those folders in pytest's own temp tree, which pytest prunes, instead of in /tmp."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("tempfile"))
    yield
    tempfile.tempdir = previous
