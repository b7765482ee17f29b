"""Shared pytest fixtures. Keep this small: fixtures live in their own modules and are re-exported here."""

from tests.hub_fixtures import local_hub  # noqa: F401 - the loopback Hub server fixture (see tests/hub_fixtures.py)
