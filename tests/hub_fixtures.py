"""Pytest fixture ``local_hub``: a :class:`~tests.hub_server.LocalHub` wired into huggingface_hub.

Why this is more than setting ``HF_ENDPOINT``: huggingface_hub reads its environment variables ONCE, at
import time (``constants.ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``,
``HF_HUB_DISABLE_XET``, ``HF_TOKEN_PATH``...), and the module-level ``huggingface_hub.hf_api.api`` (behind
``huggingface_hub.upload_file``, ``create_repo``...) and transformers' shared ``HfApi`` keep the endpoint
they were created with. In a test session huggingface_hub is usually imported long before a fixture runs,
so :func:`configure_hf_env` sets the env vars (for subprocesses and late imports) AND monkeypatches those
already-imported constants/instances; everything is restored at teardown.

Use it from a conftest with ``from tests.hub_fixtures import local_hub  # noqa: F401``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.hub_server import LocalHub

__all__ = ["LocalHubHandle", "configure_hf_env", "local_hub"]

#: Write token accepted by the fixture's hub (also exported as ``HF_TOKEN``).
TOKEN = "hf_local_write_token"
#: Token that may read but gets 403 on writes (to test "no permission" paths).
READ_TOKEN = "hf_local_read_token"
#: The user owning the token; repos are created under this namespace by default.
USER = "hf-mtl-tester"
#: An extra organisation the user may write to.
ORG = "hf-mtl-org"


@dataclass
class LocalHubHandle:
    """What ``local_hub`` yields: the running server plus the values a test needs."""

    server: LocalHub
    url: str
    token: str
    read_token: str
    user: str
    org: str
    hf_home: Path
    cache_dir: Path  # == HF_HUB_CACHE

    def api(self, token: str | None = None) -> Any:
        """An ``HfApi`` bound explicitly to this hub (independent of any global state)."""
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.url, token=token or self.token)

    def repo_id(self, name: str) -> str:
        """``"<user>/<name>"``, a repo id the fixture's token may write to."""
        return f"{self.user}/{name}"


def _setattr_if_loaded(monkeypatch: pytest.MonkeyPatch, module: str, name: str, value: Any) -> None:
    """Patch ``module.name`` only if that module is already imported (never import heavy libraries here)."""
    mod = sys.modules.get(module)
    if mod is not None and hasattr(mod, name):
        monkeypatch.setattr(mod, name, value)


def configure_hf_env(monkeypatch: pytest.MonkeyPatch, url: str, hf_home: Path, token: str | None) -> None:
    """Point huggingface_hub (and transformers/datasets if imported) at ``url`` with a private cache.

    Sets env vars for subprocesses/late imports and patches values already read at import time.
    """
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    hub_cache = hf_home / "hub"
    hub_cache.mkdir(parents=True, exist_ok=True)
    host = urlsplit(url).hostname or "127.0.0.1"

    # --- environment (read by subprocesses and by anything imported later)
    env = {
        "HF_ENDPOINT": url,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_DATASETS_CACHE": str(hf_home / "datasets"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_SYMLINKS_WARNING": "1",
        "HF_HUB_DISABLE_EXPERIMENTAL_WARNING": "1",
        "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), host, "localhost"])),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("no_proxy", env["NO_PROXY"])
    for name in (
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_OIDC_RESOURCE",
        "HF_OIDC_ID_TOKEN",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN",
        "HUGGINGFACE_CO_STAGING",
        "HUGGINGFACE_HUB_CACHE",
        "HUGGINGFACE_ASSETS_CACHE",
    ):
        monkeypatch.delenv(name, raising=False)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)

    # --- huggingface_hub values computed at import time
    patched = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(constants.HF_URL_HOSTS | {host}),
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hub_cache),
        "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": env["HF_ASSETS_CACHE"],
        "HUGGINGFACE_ASSETS_CACHE": env["HF_ASSETS_CACHE"],
        "HF_XET_CACHE": env["HF_XET_CACHE"],
        "HF_TOKEN_PATH": env["HF_TOKEN_PATH"],
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
        "CHECK_FOR_UPDATE_DONE_PATH": str(hf_home / ".check_for_update_done"),
    }
    for name, value in patched.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    # The module-level HfApi behind `huggingface_hub.upload_file`, `create_repo`, `model_info`...
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", url)
    # Origins to which the client forwards auth when following redirects.
    if hasattr(_http, "_HUB_ORIGINS"):
        monkeypatch.setattr(_http, "_HUB_ORIGINS", frozenset(_http._HUB_ORIGINS | {_http._url_origin(url)}))
    # Names copied with `from ..constants import X` at import time.
    _setattr_if_loaded(monkeypatch, "huggingface_hub.utils._cache_manager", "HF_HUB_CACHE", str(hub_cache))
    _setattr_if_loaded(monkeypatch, "huggingface_hub.utils._cache_assets", "HF_ASSETS_CACHE", env["HF_ASSETS_CACHE"])
    _setattr_if_loaded(monkeypatch, "huggingface_hub.utils._git_credential", "ENDPOINT", url)
    # fsspec caches HfFileSystem instances (with the endpoint they were created with).
    hffs = sys.modules.get("huggingface_hub.hf_file_system")
    if hffs is not None:
        hffs.HfFileSystem.clear_instance_cache()

    # --- transformers: lazily-created shared HfApi (transformers.utils.hub.hf_api()).
    _setattr_if_loaded(monkeypatch, "transformers.utils.hub", "_hf_api", None)
    # --- datasets copies the endpoint/offline flag into its own config at import time.
    _setattr_if_loaded(monkeypatch, "datasets.config", "HF_ENDPOINT", url)
    _setattr_if_loaded(
        monkeypatch, "datasets.config", "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}"
    )
    _setattr_if_loaded(monkeypatch, "datasets.config", "HF_HUB_OFFLINE", False)
    _setattr_if_loaded(monkeypatch, "datasets.config", "HF_DATASETS_OFFLINE", False)
    _setattr_if_loaded(monkeypatch, "datasets.config", "HF_DATASETS_CACHE", Path(env["HF_DATASETS_CACHE"]))

    # New httpx client: re-reads NO_PROXY and drops pooled connections to earlier test servers.
    _http.close_session()


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHubHandle]:
    """A fresh fake Hub per test, with huggingface_hub pointed at it and an empty private cache.

    The hub accepts ``handle.token`` (write; also exported as ``HF_TOKEN`` so the client sends it
    implicitly) and ``handle.read_token`` (read-only); any other bearer token gets 401.
    """
    from huggingface_hub.utils import _http

    hub = LocalHub(
        tmp_path / "hub-repos",
        user=USER,
        tokens=[TOKEN],
        read_tokens=[READ_TOKEN],
        namespaces=[USER, ORG],
    )
    hub.start()
    hf_home = tmp_path / "hf-home"
    try:
        configure_hf_env(monkeypatch, hub.url, hf_home, TOKEN)
        yield LocalHubHandle(
            server=hub,
            url=hub.url,
            token=TOKEN,
            read_token=READ_TOKEN,
            user=USER,
            org=ORG,
            hf_home=hf_home,
            cache_dir=hf_home / "hub",
        )
    finally:
        hub.stop()
        _http.close_session()
