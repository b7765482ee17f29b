"""Shared pytest fixtures. Keep this small: fixtures live in their own modules and are re-exported here."""

import os
import sys
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


_PROCESS_GROUP_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(autouse=True)
def _no_process_group_left_behind():
    """A test that leaves a torch.distributed group or its env vars behind would make later tests (and the processes
    they launch) join a stale group: fail that test, and clean up so the ones after it run as usual."""
    before = {name: os.environ.get(name) for name in _PROCESS_GROUP_VARS}
    yield
    leaked = [name for name in _PROCESS_GROUP_VARS if os.environ.get(name) != before[name]]
    for name in leaked:
        if before[name] is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before[name]
    dist = sys.modules.get("torch.distributed")
    group_left = dist is not None and dist.is_available() and dist.is_initialized()
    if group_left:
        dist.destroy_process_group()
    assert not leaked and not group_left, f"test left behind: env {leaked}, process group {group_left}"
