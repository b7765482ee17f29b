"""The real huggingface_hub client against tests/hub_server.py (nothing mocked).

Why: the model push/load tests rely on this fake Hub behaving like the real one for the client calls they
make (uploads, history, revisions, cache layout, error types, offline mode, retries).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    constants,
    create_branch,
    create_commit,
    create_repo,
    create_tag,
    delete_repo,
    file_exists,
    hf_hub_download,
    list_repo_commits,
    list_repo_files,
    list_repo_refs,
    list_repo_tree,
    model_info,
    repo_exists,
    snapshot_download,
    upload_file,
    upload_folder,
    whoami,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.hub_fixtures import LocalHubHandle  # the `local_hub` fixture comes from tests/conftest.py
from tests.hub_server import LocalHub
from tests.multiprocess import TIMEOUT

BINARY = bytes(range(256)) * 4 + b"\x00\xff\x00"


def _is_sha(value: str | None) -> bool:
    return value is not None and len(value) == 40 and all(c in "0123456789abcdef" for c in value)


def _make_folder(root: Path) -> Path:
    """A small model-like folder: JSON, a binary blob, a model card with YAML and a nested file."""
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"hidden_size": 8}))
    (root / "weights.bin").write_bytes(BINARY)
    (root / "README.md").write_text("---\nlicense: mit\ntags: [hf-mtl]\n---\n# Tiny\n")
    (root / "heads" / "ner").mkdir(parents=True)
    (root / "heads" / "ner" / "head.json").write_text('{"num_labels": 3}')
    return root


def test_fixture_patches_already_imported_client(local_hub: LocalHubHandle) -> None:
    # huggingface_hub was imported at the top of this module, before the fixture ran.
    assert constants.ENDPOINT == local_hub.url
    assert huggingface_hub.hf_api.api.endpoint == local_hub.url
    assert constants.HF_HUB_CACHE == str(local_hub.cache_dir)
    assert os.environ["HF_ENDPOINT"] == local_hub.url
    assert constants.HF_HUB_DISABLE_XET is True
    assert whoami()["name"] == local_hub.user  # token sent implicitly from HF_TOKEN


def test_create_repo_exist_ok_and_delete(local_hub: LocalHubHandle) -> None:
    repo_id = local_hub.repo_id("model")
    url = create_repo(repo_id)
    assert url.repo_id == repo_id
    assert str(url).startswith(local_hub.url)

    with pytest.raises(HfHubHTTPError) as err:
        create_repo(repo_id)
    assert err.value.response.status_code == 409
    assert create_repo(repo_id, exist_ok=True).repo_id == repo_id

    # No namespace -> the token owner's namespace, like on the Hub.
    assert create_repo("no-namespace").repo_id == local_hub.repo_id("no-namespace")
    # Organisation repos work the same.
    assert create_repo(f"{local_hub.org}/shared").repo_id == f"{local_hub.org}/shared"

    info = model_info(repo_id)
    assert info.id == repo_id
    assert _is_sha(info.sha)
    assert info.private is False
    assert [s.rfilename for s in info.siblings or []] == [".gitattributes"]

    delete_repo(repo_id)
    assert not repo_exists(repo_id)
    delete_repo(repo_id, missing_ok=True)


def test_upload_folder_list_and_download(local_hub: LocalHubHandle, tmp_path: Path) -> None:
    repo_id = local_hub.repo_id("folder")
    create_repo(repo_id)
    commit = upload_folder(repo_id=repo_id, folder_path=_make_folder(tmp_path / "model"), commit_message="add model")
    assert _is_sha(commit.oid)

    expected = [".gitattributes", "README.md", "config.json", "heads/ner/head.json", "weights.bin"]
    assert sorted(list_repo_files(repo_id)) == expected
    top = {(type(e).__name__, e.path) for e in list_repo_tree(repo_id)}
    assert ("RepoFolder", "heads") in top and ("RepoFile", "weights.bin") in top
    assert [e.path for e in list_repo_tree(repo_id, path_in_repo="heads", recursive=True)] == [
        "heads/ner",
        "heads/ner/head.json",
    ]

    assert not local_hub.cache_dir.joinpath("models--hf-mtl-tester--folder").exists()
    path = Path(hf_hub_download(repo_id, "weights.bin"))
    assert path.read_bytes() == BINARY
    assert path.parent.name == commit.oid  # snapshots/<commit sha>/weights.bin
    assert path.is_relative_to(local_hub.cache_dir)
    nested = Path(hf_hub_download(repo_id, "head.json", subfolder="heads/ner"))
    assert json.loads(nested.read_text()) == {"num_labels": 3}
    assert local_hub.server.read_file(repo_id, "weights.bin") == BINARY

    snapshot = Path(snapshot_download(repo_id))
    assert (snapshot / "config.json").read_text() == json.dumps({"hidden_size": 8})
    assert (snapshot / "heads" / "ner" / "head.json").is_file()


def test_history_old_commit_sha_is_a_valid_revision(local_hub: LocalHubHandle) -> None:
    repo_id = local_hub.repo_id("history")
    create_repo(repo_id)
    first = upload_file(path_or_fileobj=b'{"v": 1}', path_in_repo="config.json", repo_id=repo_id)
    second = create_commit(
        repo_id,
        [
            CommitOperationAdd(path_in_repo="config.json", path_or_fileobj=b'{"v": 2}'),
            CommitOperationAdd(path_in_repo="extra.txt", path_or_fileobj=b"new in v2"),
        ],
        commit_message="v2",
    )
    assert first.oid != second.oid

    assert Path(hf_hub_download(repo_id, "config.json")).read_bytes() == b'{"v": 2}'
    assert Path(hf_hub_download(repo_id, "config.json", revision=first.oid)).read_bytes() == b'{"v": 1}'

    old = Path(snapshot_download(repo_id, revision=first.oid))
    assert (old / "config.json").read_bytes() == b'{"v": 1}'
    assert not (old / "extra.txt").exists()
    new = Path(snapshot_download(repo_id))
    assert (new / "extra.txt").read_bytes() == b"new in v2"

    assert model_info(repo_id, revision=first.oid).sha == first.oid
    assert model_info(repo_id, revision=first.oid[:7]).sha == first.oid  # short sha, like the Hub
    assert [c.commit_id for c in list_repo_commits(repo_id)][:2] == [second.oid, first.oid]
    assert list_repo_commits(repo_id)[0].title == "v2"


def test_branches_tags_and_deletions(local_hub: LocalHubHandle) -> None:
    repo_id = local_hub.repo_id("branches")
    create_repo(repo_id)
    base = upload_file(path_or_fileobj=b"main", path_in_repo="a.txt", repo_id=repo_id)
    create_branch(repo_id, branch="dev")
    create_branch(repo_id, branch="dev", exist_ok=True)
    upload_file(path_or_fileobj=b"dev only", path_in_repo="dir/b.txt", repo_id=repo_id, revision="dev")
    create_tag(repo_id, tag="v1", revision=base.oid)

    assert Path(hf_hub_download(repo_id, "dir/b.txt", revision="dev")).read_bytes() == b"dev only"
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "dir/b.txt")  # not on main
    assert Path(hf_hub_download(repo_id, "a.txt", revision="v1")).read_bytes() == b"main"
    refs = list_repo_refs(repo_id)
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", base.oid)]

    create_commit(
        repo_id,
        [CommitOperationDelete("dir/"), CommitOperationDelete("a.txt")],
        commit_message="clean",
        revision="dev",
    )
    assert sorted(list_repo_files(repo_id, revision="dev")) == [".gitattributes"]
    with pytest.raises(EntryNotFoundError):
        create_commit(repo_id, [CommitOperationDelete("missing.txt")], commit_message="nope")


def test_not_found_errors_have_the_client_types(local_hub: LocalHubHandle) -> None:
    repo_id = local_hub.repo_id("errors")
    create_repo(repo_id)
    upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo_id)
    missing = local_hub.repo_id("missing")

    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(missing, "config.json")
    with pytest.raises(RepositoryNotFoundError):
        model_info(missing)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "config.json", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        list_repo_files(repo_id, revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "no-such-file.bin")
    with pytest.raises(RevisionNotFoundError):
        upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=repo_id, revision="no-such-branch")
    assert not file_exists(repo_id, "no-such-file.bin")
    assert file_exists(repo_id, "config.json")
    assert not repo_exists(missing)


def test_auth_tokens_permissions_and_private_repos(local_hub: LocalHubHandle, tmp_path: Path) -> None:
    repo_id = local_hub.repo_id("private")
    create_repo(repo_id, private=True)
    upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id=repo_id)

    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token="hf_wrong").whoami()
    assert err.value.response.status_code == 401

    reader = local_hub.api(token=local_hub.read_token)
    assert reader.whoami()["auth"]["accessToken"]["role"] == "read"
    assert Path(reader.hf_hub_download(repo_id, "s.txt", cache_dir=tmp_path / "c")).read_bytes() == b"secret"
    with pytest.raises(HfHubHTTPError) as err:
        reader.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=repo_id)
    assert err.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as err:
        reader.create_repo(local_hub.repo_id("by-reader"))
    assert err.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as err:
        create_repo("someone-else/model")
    assert err.value.response.status_code == 403

    # Anonymous users cannot see a private repo at all.
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "s.txt", token=False, cache_dir=tmp_path / "anon")
    assert all(local_hub.token not in repr(r) for r in local_hub.server.requests)


def test_any_token_is_accepted_by_default(tmp_path: Path) -> None:
    with LocalHub(tmp_path / "repos", user="alice") as hub:
        api = HfApi(endpoint=hub.url, token="whatever")
        assert api.whoami()["name"] == "alice"
        api.create_repo("alice/m")
        api.upload_file(path_or_fileobj=b"1", path_in_repo="f", repo_id="alice/m")
        assert hub.read_file("alice/m", "f") == b"1"
    # State lives on disk: a new server on the same folder serves the same repos.
    with LocalHub(tmp_path / "repos") as again:
        assert again.list_files("alice/m") == [".gitattributes", "f"]


def test_fault_injection_upload_fails_then_retry_succeeds(local_hub: LocalHubHandle) -> None:
    repo_id = local_hub.repo_id("faults")
    create_repo(repo_id)
    before = local_hub.server.commits(repo_id)
    fault = local_hub.server.fail_next("/commit/", status=500)
    with pytest.raises(HfHubHTTPError) as err:
        upload_file(path_or_fileobj=b"w", path_in_repo="w.bin", repo_id=repo_id)
    assert err.value.response.status_code == 500
    assert fault.hits == 1
    assert local_hub.server.commits(repo_id) == before  # nothing half-committed

    upload_file(path_or_fileobj=b"w", path_in_repo="w.bin", repo_id=repo_id)
    assert local_hub.server.read_file(repo_id, "w.bin") == b"w"

    # A dropped connection on a listing is retried by the client's own backoff (1 s).
    dropped = local_hub.server.fail_next("/tree/", disconnect=True)
    assert "w.bin" in list_repo_files(repo_id)
    assert dropped.hits == 1


def test_download_falls_back_to_cache_when_hub_is_down(local_hub: LocalHubHandle) -> None:
    repo_id = local_hub.repo_id("outage")
    create_repo(repo_id)
    upload_file(path_or_fileobj=b"cached", path_in_repo="c.txt", repo_id=repo_id)
    path = hf_hub_download(repo_id, "c.txt")
    snapshot = snapshot_download(repo_id)

    local_hub.server.fail_next("/resolve/", status=503, count=None)
    assert hf_hub_download(repo_id, "c.txt") == path
    local_hub.server.clear_faults()

    local_hub.server.stop()
    assert hf_hub_download(repo_id, "c.txt") == path
    assert snapshot_download(repo_id) == snapshot
    local_hub.server.start()  # same port, same URL
    upload_file(path_or_fileobj=b"after restart", path_in_repo="c.txt", repo_id=repo_id)
    assert Path(hf_hub_download(repo_id, "c.txt")).read_bytes() == b"after restart"


def test_offline_mode_loads_from_cache_in_subprocess(local_hub: LocalHubHandle) -> None:
    repo_id = local_hub.repo_id("offline")
    create_repo(repo_id)
    upload_file(path_or_fileobj=b'{"offline": true}', path_in_repo="config.json", repo_id=repo_id)
    hf_hub_download(repo_id, "config.json")
    local_hub.server.stop()  # prove that nothing goes to the network

    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from huggingface_hub import constants, hf_hub_download, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
        assert constants.HF_HUB_OFFLINE
        print(Path(hf_hub_download({repo_id!r}, "config.json")).read_text())
        print(sorted(p.name for p in Path(snapshot_download({repo_id!r})).iterdir()))
        try:
            hf_hub_download({repo_id!r}, "never-downloaded.bin")
        except LocalEntryNotFoundError:
            print("missing-ok")
        """
    )
    # The fixture's env (HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN...) is inherited; HF_HUB_OFFLINE must be set
    # before huggingface_hub is imported, hence the subprocess.
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '{"offline": true}'
    assert "config.json" in lines[1]
    assert lines[2] == "missing-ok"


def test_transformers_push_to_hub_and_from_pretrained(local_hub: LocalHubHandle) -> None:
    transformers = pytest.importorskip("transformers")
    from transformers.utils import hub as transformers_hub

    assert transformers_hub.hf_api().endpoint == local_hub.url
    repo_id = local_hub.repo_id("tiny-bert")
    config = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    config.push_to_hub(repo_id)  # also uploads a README.md model card (validate-yaml endpoint)
    config.hidden_size = 16
    config.push_to_hub(repo_id, revision="v2")  # transformers creates the branch first
    assert transformers.AutoConfig.from_pretrained(repo_id).hidden_size == 8
    assert transformers.AutoConfig.from_pretrained(repo_id, revision="v2").hidden_size == 16
