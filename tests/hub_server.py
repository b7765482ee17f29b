"""A small, standard-library-only fake of the Hugging Face Hub HTTP API, for tests.

Why: push/load code must be tested against the *real* ``huggingface_hub`` client (URL building, headers,
error mapping, cache layout, retries) without internet access and without mocking the client. This
server implements just enough of the Hub API for ``create_repo``, ``upload_file``/``upload_folder``/
``create_commit``, ``repo_info``/``model_info``, ``list_repo_files``/``list_repo_tree``,
``list_repo_refs``/``list_repo_commits``, ``create_branch``/``create_tag``, ``delete_repo``,
``whoami`` and ``hf_hub_download``/``snapshot_download``.

Design notes:

* Every file is committed inline ("regular" upload mode: base64 in the NDJSON commit payload). LFS and
  Xet are never offered, so set ``HF_HUB_DISABLE_XET=1`` (the ``local_hub`` fixture does).
* Repos live on disk under ``repos_dir`` (content-addressed blobs + one ``repo.json`` per repo), so the
  state survives ``stop()``/``start()`` and can be re-opened by a new :class:`LocalHub` on the same folder.
* Full history is kept: every commit has a fresh 40-hex sha and any older sha is a valid revision.
* Requests are never logged to stderr, and the ``Authorization`` header value is never stored anywhere.
* :meth:`LocalHub.fail_next` injects failures (HTTP status, dropped connection, delay) for reliability tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Fault", "HubError", "LocalHub", "RequestRecord"]

# URL segment ("models") <-> repo type ("model"), as used by huggingface_hub.
_API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
# Prefix of a repo in web/resolve URLs ("" for models).
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HEX_RE = re.compile(r"^[0-9a-f]{7,40}$")
# Same content as the `.gitattributes` the Hub puts in the initial commit of a new repo (abridged),
# so that listings look like real Hub listings.
_GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.pt filter=lfs diff=lfs merge=lfs -text\n"
    b"*.pth filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    b"*.h5 filter=lfs diff=lfs merge=lfs -text\n"
    b"*.onnx filter=lfs diff=lfs merge=lfs -text\n"
    b"*.zip filter=lfs diff=lfs merge=lfs -text\n"
)


class HubError(Exception):
    """An HTTP error answered by the fake Hub, shaped like the real Hub's (X-Error-Code / X-Error-Message)."""

    def __init__(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers or {}
        self.body = body or {}  # extra JSON fields next to "error"


@dataclass
class Fault:
    """One fault-injection rule; returned by :meth:`LocalHub.fail_next` so tests can inspect ``hits``."""

    path_substring: str
    status: int | None = 500
    remaining: int | None = 1  # None = unlimited (until `clear_faults`)
    method: str | None = None
    disconnect: bool = False
    delay: float = 0.0
    error_code: str | None = None
    message: str = "Injected failure (LocalHub.fail_next)"
    hits: int = 0

    def matches(self, method: str, raw_path: str) -> bool:
        """Whether this rule applies to the request (substring of the raw or the decoded path)."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_substring in raw_path or self.path_substring in unquote(raw_path)


@dataclass(frozen=True)
class RequestRecord:
    """What the server saw of one request: never headers, so never a token."""

    method: str
    path: str
    status: int | None  # None when the connection was dropped on purpose
    authenticated: bool


@dataclass
class _Identity:
    user: str
    can_write: bool


@dataclass
class _Repo:
    """State of one repo; persisted as ``repo.json`` next to a ``blobs/`` folder."""

    repo_type: str
    repo_id: str
    root: Path
    private: bool = False
    created_at: str = ""
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # Insertion-ordered (oldest first). Each commit: parents, tree {path: blob oid}, title, message, date, author.
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def url_path(self) -> str:
        return _URL_PREFIX[self.repo_type] + self.repo_id

    def save(self) -> None:
        """Write ``repo.json`` atomically so a crash never leaves a half-written state."""
        data = {
            "repo_type": self.repo_type,
            "repo_id": self.repo_id,
            "private": self.private,
            "created_at": self.created_at,
            "branches": self.branches,
            "tags": self.tags,
            "commits": self.commits,
        }
        tmp = self.root / "repo.json.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.root / "repo.json")

    @classmethod
    def load(cls, root: Path) -> _Repo:
        data = json.loads((root / "repo.json").read_text())
        return cls(root=root, **data)

    def write_blob(self, content: bytes) -> str:
        """Store content under its git blob oid (what the Hub reports as ``oid``/``ETag`` for regular files)."""
        oid = _git_blob_oid(content)
        path = self.root / "blobs" / oid
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(content)
            os.replace(tmp, path)
        return oid

    def read_blob(self, oid: str) -> bytes:
        return (self.root / "blobs" / oid).read_bytes()

    def blob_size(self, oid: str) -> int:
        return (self.root / "blobs" / oid).stat().st_size

    def resolve(self, revision: str) -> str | None:
        """Branch, tag, full ref or (unique, >= 7 chars) commit sha -> commit sha."""
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        if revision.startswith("refs/heads/") and revision[len("refs/heads/") :] in self.branches:
            return self.branches[revision[len("refs/heads/") :]]
        if revision.startswith("refs/tags/") and revision[len("refs/tags/") :] in self.tags:
            return self.tags[revision[len("refs/tags/") :]]
        if revision in self.commits:
            return revision
        if _HEX_RE.match(revision):
            found = [sha for sha in self.commits if sha.startswith(revision)]
            if len(found) == 1:
                return found[0]
        return None

    def tree(self, sha: str) -> dict[str, str]:
        return self.commits[sha]["tree"]

    def history(self, sha: str) -> list[str]:
        """First-parent chain, newest first."""
        out = []
        current: str | None = sha
        while current is not None:
            out.append(current)
            parents = self.commits[current]["parents"]
            current = parents[0] if parents else None
        return out


def _git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _folders_of(paths: Iterable[str]) -> set[str]:
    folders: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folders.add("/".join(parts[:i]))
    return folders


def _tree_oid(tree: dict[str, str], folder: str) -> str:
    """Deterministic pseudo git tree oid of a folder (changes iff a file below it changes)."""
    prefix = folder + "/"
    items = sorted((p, o) for p, o in tree.items() if p.startswith(prefix))
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()


def _validate_path_in_repo(path: str) -> str:
    if not path or path.startswith("/") or "\\" in path or any(part in ("", ".", "..") for part in path.split("/")):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


class LocalHub:
    """Fake Hugging Face Hub on ``http://127.0.0.1:<random port>``; see the module docstring for why.

    Args:
        repos_dir: where repos are stored; a fresh temp folder (removed by :meth:`close`) if None.
        user: the name returned by ``whoami`` and the namespace of repos created without one.
        tokens: accepted write tokens. ``None`` (default) accepts ANY ``Authorization: Bearer <token>``
            as a write token. When given, any other bearer token is answered 401
            (``Invalid credentials in Authorization header``).
        read_tokens: tokens that may read (also private repos) but get 403 on any write.
        namespaces: namespaces the user may create/write repos in (403 otherwise); ``None`` = any.
        gitattributes: put a ``.gitattributes`` file in the initial commit of a new repo, like the Hub.
        host, port: where to listen; port 0 picks a free port (kept across :meth:`stop`/:meth:`start`).

    Usage::

        with LocalHub() as hub:
            api = HfApi(endpoint=hub.url, token="anything")
            api.create_repo("me/model")
            hub.fail_next("/commit/", status=500)  # the next commit request answers 500
    """

    def __init__(
        self,
        repos_dir: str | os.PathLike[str] | None = None,
        *,
        user: str = "hf-mtl-tester",
        tokens: Iterable[str] | None = None,
        read_tokens: Iterable[str] = (),
        namespaces: Iterable[str] | None = None,
        gitattributes: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._owns_dir = repos_dir is None
        self.repos_dir = Path(tempfile.mkdtemp(prefix="local-hub-")) if repos_dir is None else Path(repos_dir)
        self.repos_dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.tokens: set[str] | None = set(tokens) if tokens is not None else None
        self.read_tokens: set[str] = set(read_tokens)
        self.namespaces: set[str] | None = set(namespaces) | {user} if namespaces is not None else None
        self.gitattributes = gitattributes
        self.host = host
        self.port = port
        self.requests: list[RequestRecord] = []
        self.errors: list[BaseException] = []  # unexpected server-side exceptions (for debugging tests)
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL to use as ``HF_ENDPOINT`` (no trailing slash). Only valid once started."""
        if self.port == 0:
            raise RuntimeError("LocalHub is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LocalHub:
        """Start serving (again) on the same port, so a restarted hub keeps its URL."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.hub = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"LocalHub:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: new connections are refused (like a Hub outage). State is kept; ``start()`` resumes."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the temp folder if this hub created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.repos_dir, ignore_errors=True)

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        path_substring: str,
        status: int | None = 500,
        count: int | None = 1,
        *,
        method: str | None = None,
        disconnect: bool = False,
        delay: float = 0.0,
        error_code: str | None = None,
        message: str = "Injected failure (LocalHub.fail_next)",
    ) -> Fault:
        """Make the next ``count`` requests whose path contains ``path_substring`` fail.

        Args:
            path_substring: matched against the raw and the percent-decoded request path, e.g. ``"/commit/"``,
                ``"/preupload/"``, ``"/resolve/"``, ``"/api/repos/create"``, ``"config.json"``.
            status: HTTP status to answer (body ``{"error": message}``); ``None`` = answer normally
                (useful with ``delay``).
            count: how many matching requests fail; ``None`` = all until :meth:`clear_faults`.
            method: only match this HTTP method (``"GET"``, ``"HEAD"``, ``"POST"``...).
            disconnect: close the connection without any response (client sees a protocol/network error).
            delay: seconds to sleep before answering (to exercise client timeouts).
            error_code: optional ``X-Error-Code`` header (e.g. ``"RepoNotFound"``).

        Returns the :class:`Fault`; its ``hits`` counts how many requests it affected.
        """
        fault = Fault(
            path_substring=path_substring,
            status=status,
            remaining=count,
            method=method,
            disconnect=disconnect,
            delay=delay,
            error_code=error_code,
            message=message,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, raw_path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, raw_path):
                    fault.hits += 1
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    # ------------------------------------------------------------------ direct inspection helpers (no HTTP)

    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return self._get_repo(repo_type, repo_id) is not None

    def commits(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[str]:
        """Commit shas reachable from ``revision`` (first parent), newest first."""
        with self._lock:
            repo = self._require_repo(repo_type, repo_id)
            return repo.history(self._require_revision(repo, revision))

    def read_file(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        """Content of a file at a revision, straight from storage (to check what a push really wrote)."""
        with self._lock:
            repo = self._require_repo(repo_type, repo_id)
            tree = repo.tree(self._require_revision(repo, revision))
            if path not in tree:
                raise KeyError(path)
            return repo.read_blob(tree[path])

    def list_files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[str]:
        with self._lock:
            repo = self._require_repo(repo_type, repo_id)
            return sorted(repo.tree(self._require_revision(repo, revision)))

    # ------------------------------------------------------------------ storage

    def _repo_root(self, repo_type: str, repo_id: str) -> Path:
        return self.repos_dir / f"{repo_type}s" / repo_id

    def _get_repo(self, repo_type: str, repo_id: str) -> _Repo | None:
        key = (repo_type, repo_id)
        repo = self._repos.get(key)
        if repo is None:
            root = self._repo_root(repo_type, repo_id)
            if (root / "repo.json").is_file():
                repo = _Repo.load(root)
                self._repos[key] = repo
        return repo

    def _require_repo(self, repo_type: str, repo_id: str, identity: _Identity | None = None) -> _Repo:
        repo = self._get_repo(repo_type, repo_id)
        if repo is None or (repo.private and identity is None):
            # Like the Hub: a private repo is indistinguishable from a missing one for anonymous users.
            status = 401 if identity is None else 404
            raise HubError(status, "Repository not found", "RepoNotFound")
        return repo

    @staticmethod
    def _require_revision(repo: _Repo, revision: str) -> str:
        sha = repo.resolve(revision)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha

    def _new_commit(
        self,
        repo: _Repo,
        branch: str,
        tree: dict[str, str],
        title: str,
        message: str = "",
    ) -> str:
        parent = repo.branches.get(branch)
        date = _now_iso()
        seed = json.dumps([parent, sorted(tree.items()), title, message, date, uuid.uuid4().hex])
        sha = hashlib.sha1(seed.encode()).hexdigest()
        repo.commits[sha] = {
            "parents": [parent] if parent else [],
            "tree": tree,
            "title": title,
            "message": message,
            "date": date,
            "author": self.user,
        }
        repo.branches[branch] = sha
        repo.save()
        return sha

    def _last_commit(self, repo: _Repo, sha: str, path: str, is_folder: bool) -> dict[str, str]:
        """Newest commit in ``sha``'s history that changed ``path`` (for ``expand=True`` tree listings)."""

        def _state(commit: str) -> Any:
            tree = repo.tree(commit)
            return _tree_oid(tree, path) if is_folder else tree.get(path)

        history = repo.history(sha)
        found = history[-1]
        for current, parent in zip(history, history[1:]):
            if _state(current) != _state(parent):
                found = current
                break
        commit = repo.commits[found]
        return {"id": found, "title": commit["title"], "date": commit["date"]}

    # ------------------------------------------------------------------ auth

    def _identify(self, authorization: str | None) -> _Identity | None:
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HubError(401, "Invalid credentials in Authorization header")
        if self.tokens is None or token in self.tokens:
            return _Identity(self.user, can_write=True)
        if token in self.read_tokens:
            return _Identity(self.user, can_write=False)
        raise HubError(401, "Invalid credentials in Authorization header")

    def _check_write(self, identity: _Identity | None, namespace: str) -> None:
        if identity is None:
            raise HubError(401, "You must be authenticated to access this resource")
        if not identity.can_write:
            raise HubError(403, "You don't have the rights to write to this repository (read-only token)")
        if self.namespaces is not None and namespace not in self.namespaces:
            raise HubError(403, f"You don't have the rights to create or write to a repo under namespace {namespace}")

    # ------------------------------------------------------------------ request handling

    def handle(self, request: _Request) -> _Response:
        """Route one parsed request. Raises :class:`HubError` for error answers."""
        identity = self._identify(request.headers.get("Authorization"))
        request.identity = identity
        segments = request.raw_path.split("/")[1:]
        method = request.method
        if segments and segments[0] == "api":
            return self._handle_api(request, [unquote(s) for s in segments[1:]], segments[1:])
        # /{prefix}{namespace}/{name}/resolve/{revision}/{path...}
        repo_type = "model"
        if segments and segments[0] in ("datasets", "spaces"):
            repo_type = _API_TYPES[segments[0]]
            segments = segments[1:]
        if len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = f"{unquote(segments[0])}/{unquote(segments[1])}"
            revision = unquote(segments[3])
            filename = unquote("/".join(segments[4:]))
            return self._resolve(request, repo_type, repo_id, revision, filename)
        raise HubError(404, f"Not found: {method} {request.raw_path}")

    def _handle_api(self, request: _Request, seg: list[str], raw_seg: list[str]) -> _Response:
        method = request.method
        if seg == ["whoami-v2"] and method == "GET":
            return self._whoami(request)
        if seg == ["repos", "create"] and method == "POST":
            return self._create_repo(request)
        if seg == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo(request)
        if seg == ["validate-yaml"] and method == "POST":
            # No YAML parser in the standard library: accept any model card metadata.
            return _Response.json({"errors": [], "warnings": []})
        if len(seg) >= 3 and seg[0] in _API_TYPES:
            repo_type = _API_TYPES[seg[0]]
            repo_id = f"{seg[1]}/{seg[2]}"
            action = seg[3] if len(seg) > 3 else None
            rest = seg[4:]
            with self._lock:
                if action is None and method == "GET":
                    return self._repo_info(request, repo_type, repo_id, "main")
                if action == "revision" and len(rest) == 1 and method == "GET":
                    return self._repo_info(request, repo_type, repo_id, rest[0])
                if action == "preupload" and len(rest) == 1 and method == "POST":
                    return self._preupload(request, repo_type, repo_id, rest[0])
                if action == "commit" and len(rest) == 1 and method == "POST":
                    return self._commit(request, repo_type, repo_id, rest[0])
                if action == "tree" and len(rest) >= 1 and method == "GET":
                    # The client quotes the path with safe="" (one segment), but accept raw slashes too.
                    path = unquote("/".join(raw_seg[5:])).strip("/")
                    return self._tree(request, repo_type, repo_id, rest[0], path)
                if action == "paths-info" and len(rest) == 1 and method == "POST":
                    return self._paths_info(request, repo_type, repo_id, rest[0])
                if action == "refs" and not rest and method == "GET":
                    return self._refs(request, repo_type, repo_id)
                if action == "commits" and len(rest) == 1 and method == "GET":
                    return self._list_commits(request, repo_type, repo_id, rest[0])
                if action == "branch" and len(rest) == 1 and method in ("POST", "DELETE"):
                    return self._branch(request, repo_type, repo_id, rest[0])
                if action == "tag" and len(rest) == 1 and method in ("POST", "DELETE"):
                    return self._tag(request, repo_type, repo_id, rest[0])
        raise HubError(404, f"Not found: {method} {request.raw_path}")

    def _whoami(self, request: _Request) -> _Response:
        identity = request.identity
        if identity is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        role = "write" if identity.can_write else "read"
        orgs = sorted((self.namespaces or set()) - {identity.user})
        return _Response.json(
            {
                "type": "user",
                "id": hashlib.sha1(identity.user.encode()).hexdigest()[:24],
                "name": identity.user,
                "fullname": identity.user,
                "email": None,
                "emailVerified": False,
                "isPro": False,
                "orgs": [{"type": "org", "name": org, "fullname": org} for org in orgs],
                "auth": {"type": "access_token", "accessToken": {"displayName": "local-hub", "role": role}},
            }
        )

    def _create_repo(self, request: _Request) -> _Response:
        payload = request.json()
        name = payload.get("name") or ""
        namespace = payload.get("organization") or (request.identity.user if request.identity else self.user)
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        if not _NAME_RE.match(name) or not _NAME_RE.match(namespace) or "--" in name or name.endswith(".git"):
            raise HubError(400, f"Invalid repo name: {namespace}/{name}")
        self._check_write(request.identity, namespace)
        repo_id = f"{namespace}/{name}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        with self._lock:
            existing = self._get_repo(repo_type, repo_id)
            url = f"{self.url}/{_URL_PREFIX[repo_type]}{repo_id}"
            if existing is not None:
                # The Hub's 409 body carries the repo url: `create_repo(exist_ok=True)` reads it.
                raise HubError(409, f"You already created this {repo_type} repo", body={"url": url})
            root = self._repo_root(repo_type, repo_id)
            root.mkdir(parents=True, exist_ok=True)
            repo = _Repo(repo_type=repo_type, repo_id=repo_id, root=root, private=private, created_at=_now_iso())
            tree = {".gitattributes": repo.write_blob(_GITATTRIBUTES)} if self.gitattributes else {}
            self._repos[(repo_type, repo_id)] = repo
            self._new_commit(repo, "main", tree, "initial commit")
        return _Response.json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, request: _Request) -> _Response:
        payload = request.json()
        namespace = payload.get("organization") or (request.identity.user if request.identity else self.user)
        repo_id = f"{namespace}/{payload.get('name')}"
        repo_type = payload.get("type") or "model"
        with self._lock:
            repo = self._require_repo(repo_type, repo_id, request.identity)
            self._check_write(request.identity, namespace)
            self._repos.pop((repo_type, repo_id), None)
            shutil.rmtree(repo.root, ignore_errors=True)
        return _Response.json({})

    def _repo_info(self, request: _Request, repo_type: str, repo_id: str, revision: str) -> _Response:
        repo = self._require_repo(repo_type, repo_id, request.identity)
        sha = self._require_revision(repo, revision)
        tree = repo.tree(sha)
        with_blobs = request.query.get("blobs", ["false"])[-1].lower() in ("1", "true")
        siblings = []
        for path in sorted(tree):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=repo.blob_size(tree[path]), blobId=tree[path])
            siblings.append(sibling)
        namespace = repo_id.split("/")[0]
        return _Response.json(
            {
                "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
                "id": repo_id,
                "author": namespace,
                "sha": sha,
                "lastModified": repo.commits[sha]["date"],
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(repo.blob_size(oid) for oid in set(tree.values())),
            }
        )

    def _writable_branch(self, request: _Request, repo_type: str, repo_id: str, revision: str) -> tuple[_Repo, str]:
        repo = self._require_repo(repo_type, repo_id, request.identity)
        self._check_write(request.identity, repo_id.split("/")[0])
        if request.query.get("create_pr"):
            raise HubError(400, "create_pr is not supported by LocalHub")
        branch = revision[len("refs/heads/") :] if revision.startswith("refs/heads/") else revision
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision} (commits must target an existing branch)", "RevisionNotFound")
        return repo, branch

    def _preupload(self, request: _Request, repo_type: str, repo_id: str, revision: str) -> _Response:
        repo, branch = self._writable_branch(request, repo_type, repo_id, revision)
        head = repo.branches[branch]
        tree = repo.tree(head)
        files = request.json().get("files", [])
        return _Response.json(
            {
                "files": [
                    # Always "regular": contents come inline (base64) in the commit, no LFS/Xet round trip.
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": tree.get(f["path"])}
                    for f in files
                ],
                "commitOid": head,
            }
        )

    def _commit(self, request: _Request, repo_type: str, repo_id: str, revision: str) -> _Response:
        repo, branch = self._writable_branch(request, repo_type, repo_id, revision)
        head = repo.branches[branch]
        tree = dict(repo.tree(head))
        summary, description = "", ""
        for line in request.body.splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError) as err:
                raise HubError(400, f"Malformed commit payload line: {err}") from err
            if key == "header":
                summary = value.get("summary") or ""
                description = value.get("description") or ""
                parent = value.get("parentCommit")
                if parent is not None and repo.resolve(parent) != head:
                    raise HubError(412, "A commit has happened since. Please refresh and try again.")
            elif key == "file":
                path = _validate_path_in_repo(value["path"])
                encoding = value.get("encoding", "base64")
                content = base64.b64decode(value["content"]) if encoding == "base64" else value["content"].encode()
                tree[path] = repo.write_blob(content)
            elif key == "deletedFile":
                path = value["path"]
                if path not in tree:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del tree[path]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                doomed = [p for p in tree if p.startswith(prefix)]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {value['path']}", "EntryNotFound")
                for p in doomed:
                    del tree[p]
            elif key == "lfsFile":
                raise HubError(400, "LFS uploads are not supported by LocalHub (all files are 'regular')")
            else:
                raise HubError(400, f"Unknown commit operation: {key}")
        if not summary:
            raise HubError(400, "Commit summary (message) is required")
        sha = self._new_commit(repo, branch, tree, summary, description)
        return _Response.json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.url}/{repo.url_path}/commit/{sha}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def _entry(self, repo: _Repo, sha: str, path: str, expand: bool) -> dict[str, Any]:
        tree = repo.tree(sha)
        if path in tree:
            entry: dict[str, Any] = {"type": "file", "oid": tree[path], "size": repo.blob_size(tree[path]), "path": path}
        else:
            entry = {"type": "directory", "oid": _tree_oid(tree, path), "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = self._last_commit(repo, sha, path, is_folder=entry["type"] == "directory")
        return entry

    def _tree(self, request: _Request, repo_type: str, repo_id: str, revision: str, path: str) -> _Response:
        repo = self._require_repo(repo_type, repo_id, request.identity)
        sha = self._require_revision(repo, revision)
        tree = repo.tree(sha)
        recursive = request.query.get("recursive", ["false"])[-1].lower() in ("1", "true")
        expand = request.query.get("expand", ["false"])[-1].lower() in ("1", "true")
        folders = _folders_of(tree)
        if path and path not in folders:
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound")
        prefix = f"{path}/" if path else ""
        entries = []
        for candidate in sorted(folders | set(tree)):
            if not candidate.startswith(prefix):
                continue
            if not recursive and "/" in candidate[len(prefix) :]:
                continue
            entries.append(self._entry(repo, sha, candidate, expand))
        # Hub order: folders first, then files.
        entries.sort(key=lambda e: (e["type"] != "directory", e["path"]))
        return _Response.json(entries)

    def _paths_info(self, request: _Request, repo_type: str, repo_id: str, revision: str) -> _Response:
        repo = self._require_repo(repo_type, repo_id, request.identity)
        sha = self._require_revision(repo, revision)
        tree = repo.tree(sha)
        form = request.form()
        paths = form.get("paths", [])
        expand = form.get("expand", ["False"])[-1].lower() in ("1", "true")
        folders = _folders_of(tree)
        entries = [self._entry(repo, sha, p, expand) for p in paths if p in tree or p in folders]
        return _Response.json(entries)

    def _refs(self, request: _Request, repo_type: str, repo_id: str) -> _Response:
        repo = self._require_repo(repo_type, repo_id, request.identity)

        def _ref(kind: str, name: str, sha: str) -> dict[str, str]:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}

        return _Response.json(
            {
                "branches": [_ref("heads", n, s) for n, s in sorted(repo.branches.items())],
                "tags": [_ref("tags", n, s) for n, s in sorted(repo.tags.items())],
                "converts": [],
                "pullRequests": [],
            }
        )

    def _list_commits(self, request: _Request, repo_type: str, repo_id: str, revision: str) -> _Response:
        repo = self._require_repo(repo_type, repo_id, request.identity)
        sha = self._require_revision(repo, revision)
        items = []
        for commit_sha in repo.history(sha):
            commit = repo.commits[commit_sha]
            items.append(
                {
                    "id": commit_sha,
                    "title": commit["title"],
                    "message": commit["message"],
                    "date": commit["date"],
                    "authors": [{"user": commit["author"]}],
                }
            )
        return _Response.json(items)

    def _branch(self, request: _Request, repo_type: str, repo_id: str, branch: str) -> _Response:
        repo = self._require_repo(repo_type, repo_id, request.identity)
        self._check_write(request.identity, repo_id.split("/")[0])
        if request.method == "DELETE":
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            if branch == "main":
                raise HubError(403, "Cannot delete the default branch")
            del repo.branches[branch]
            repo.save()
            return _Response.json({})
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        if _HEX_RE.match(branch) and len(branch) == 40:
            raise HubError(400, "Invalid branch name")
        starting_point = (request.json() or {}).get("startingPoint") or "main"
        repo.branches[branch] = self._require_revision(repo, starting_point)
        repo.save()
        return _Response.json({})

    def _tag(self, request: _Request, repo_type: str, repo_id: str, revision_or_tag: str) -> _Response:
        repo = self._require_repo(repo_type, repo_id, request.identity)
        self._check_write(request.identity, repo_id.split("/")[0])
        if request.method == "DELETE":
            if revision_or_tag not in repo.tags:
                raise HubError(404, f"Invalid rev id: {revision_or_tag}", "RevisionNotFound")
            del repo.tags[revision_or_tag]
            repo.save()
            return _Response.json({})
        tag = (request.json() or {}).get("tag") or ""
        if not tag:
            raise HubError(400, "Missing tag name")
        if tag in repo.tags:
            raise HubError(409, f"Reference already exists: refs/tags/{tag}")
        repo.tags[tag] = self._require_revision(repo, revision_or_tag)
        repo.save()
        return _Response.json({})

    def _resolve(self, request: _Request, repo_type: str, repo_id: str, revision: str, filename: str) -> _Response:
        with self._lock:
            repo = self._require_repo(repo_type, repo_id, request.identity)
            sha = self._require_revision(repo, revision)
            tree = repo.tree(sha)
            if filename not in tree:
                # X-Repo-Commit lets the client cache the non-existence (`.no_exist`) for this commit.
                raise HubError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": sha})
            oid = tree[filename]
            content = repo.read_blob(oid)
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{oid}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{filename.rsplit("/", 1)[-1]}"',
        }
        status = 200
        range_header = request.headers.get("Range")
        if range_header and request.method == "GET":
            match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header)
            total = len(content)
            start = end = -1
            if match and (match.group(1) or match.group(2)):
                if match.group(1):
                    start = int(match.group(1))
                    end = int(match.group(2)) if match.group(2) else total - 1
                else:  # suffix range: last N bytes
                    start, end = max(total - int(match.group(2)), 0), total - 1
            if start < 0 or start >= total or end < start:
                raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{total}"})
            end = min(end, total - 1)
            content = content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
            status = 206
        return _Response(status=status, body=content, headers=headers, content_type="application/octet-stream")


# ---------------------------------------------------------------------- HTTP plumbing


@dataclass
class _Request:
    method: str
    raw_path: str
    query: dict[str, list[str]]
    headers: Any  # email.message.Message (case-insensitive)
    body: bytes
    identity: _Identity | None = None

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err
        if not isinstance(data, dict):
            raise HubError(400, "JSON body must be an object")
        return data

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"

    @classmethod
    def json(cls, data: Any, status: int = 200) -> _Response:
        return cls(status=status, body=json.dumps(data).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: LocalHub

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet (no traceback on stderr); keep the error for debugging instead."""
        import sys

        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, (ConnectionError, TimeoutError)):
            self.hub.errors.append(error)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Never log: request lines are noise and headers may carry tokens."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        hub = self.server.hub
        # One request per connection: `stop()` then really cuts the service, and no stale keep-alive state.
        self.close_connection = True
        split = urlsplit(self.path)
        raw_path = split.path
        body = self._read_body()
        authenticated = self.headers.get("Authorization") is not None

        fault = hub._take_fault(self.command, raw_path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.disconnect:
                hub.requests.append(RequestRecord(self.command, raw_path, None, authenticated))
                return  # close without answering
            if fault.status is not None:
                error = HubError(fault.status, fault.message, fault.error_code)
                hub.requests.append(RequestRecord(self.command, raw_path, fault.status, authenticated))
                self._send(self._error_response(error))
                return

        request = _Request(
            method=self.command,
            raw_path=raw_path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        try:
            response = hub.handle(request)
        except HubError as error:
            response = self._error_response(error)
        except Exception as error:  # noqa: BLE001 - a test server must answer, not die
            hub.errors.append(error)
            response = self._error_response(HubError(500, f"LocalHub internal error: {type(error).__name__}: {error}"))
        # Recorded before the answer goes out: a client that has its answer may check `requests` at once (appending
        # after `_send` lost that race on a loaded machine: the stress check saw a preupload missing from the record).
        hub.requests.append(RequestRecord(self.command, raw_path, response.status, authenticated))
        self._send(response)

    @staticmethod
    def _error_response(error: HubError) -> _Response:
        message = " ".join(error.message.split())  # header-safe: single line
        headers = {"X-Error-Message": message, **error.headers}
        if error.error_code:
            headers["X-Error-Code"] = error.error_code
        body = {**error.body, "error": message}
        return _Response(status=error.status, body=json.dumps(body).encode(), headers=headers)

    def _send(self, response: _Response) -> None:
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = ""
        self.send_response(response.status, phrase)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Request-Id", uuid.uuid4().hex)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)
