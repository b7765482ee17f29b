"""Pushing to the Hub: one commit of config, safetensors weights, processor files, model card and plots, and a
[`PushToHubError`] that says what reached the Hub when it fails part-way.

The card is rendered by ``hf_mtl.modelcard`` (plots: ``hf_mtl.chart``); a loaded model's processor comes from
``hf_mtl.processor_loading``. Tokens are only handed to ``huggingface_hub`` calls: never logged, never written into
the card, the recipe or any file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .chart import PLOTS_DIR
from .modelcard import write_model_card
from .safety import redact_secrets

logger = logging.getLogger(__name__)


def save_for_hub(model: Any, folder: str | os.PathLike, *, processor: Any = None, **card_kwargs: Any) -> Path:
    """Everything a Hub repo needs, in ``folder``: config, safetensors weights, processor files, card and plots."""
    folder = Path(folder)
    model.save_pretrained(folder)
    if processor is None:
        processor = model.get_processor()
    processor.save_pretrained(folder)
    write_model_card(model, folder, **card_kwargs)
    return folder


class PushToHubError(RuntimeError):
    """A push that failed part-way. The message (and the attributes) say what reached the Hub, where the files are kept
    and how to retry; the original error is chained (``__cause__``).

    Attributes: ``repo_id``; ``folder`` (the kept local files); ``files``; ``repo_ready`` (the repo exists);
    ``branch_ready`` (None when no branch was asked for); ``committed`` (False: no file of this push is on the Hub, a
    Hub commit being all-or-nothing; None: unknown, the commit request got no answer).
    """

    def __init__(self, message: str, *, repo_id: str, folder: str, files: list[str], repo_ready: bool,
                 branch_ready: bool | None, committed: bool | None) -> None:
        super().__init__(message)
        self.repo_id, self.folder, self.files = repo_id, folder, files
        self.repo_ready, self.branch_ready, self.committed = repo_ready, branch_ready, committed


def _failed_request_url(err: BaseException) -> str:
    try:  # httpx raises RuntimeError when an error carries no request
        return str(err.request.url)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return ""


def is_hub_error(err: BaseException) -> bool:
    """An error from talking to the Hub (HTTP error, network, timeout, offline mode), not from local work."""
    from huggingface_hub.errors import HfHubHTTPError

    return isinstance(err, (HfHubHTTPError, ConnectionError, TimeoutError)) or type(err).__module__.split(".")[0] in (
        "httpx", "httpx2", "httpcore")


def warn_if_push_failed(repo_id: str, what: str, future: Any) -> None:
    """Done-callback of a background push (the Trainer's checkpoint pushes run as futures whose errors nobody
    reads): log a failure instead of losing it silently. The files stay in ``output_dir``; the next push sends them."""
    err = future.exception()
    if err is not None:
        logger.warning(
            "background push to %s (%s) failed: %s. Training goes on; the files stay in output_dir and the next push "
            "(the next checkpoint's, or trainer.push_to_hub() at the end) uploads them again",
            repo_id, what, redact_secrets(f"{type(err).__name__}: {err}"),
        )


def push_failure(
    err: BaseException,
    *,
    repo_id: str,
    folder: str | os.PathLike,
    step: str,
    repo_ready: bool,
    revision: str | None = None,
    branch_ready: bool | None = None,
    token: str | bool | None = None,
    retry: str | None = None,
    exclude: Sequence[str] = (),
) -> PushToHubError:
    """The [`PushToHubError`] for ``err``, raised while doing ``step`` of a push of the files in ``folder`` (less the
    ``exclude`` patterns, as in ``upload_folder(ignore_patterns=...)``)."""
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import filter_repo_objects

    folder = os.fspath(folder)
    files = sorted(str(p.relative_to(folder).as_posix()) for p in Path(folder).rglob("*") if p.is_file())
    files = list(filter_repo_objects(files, ignore_patterns=list(exclude) or None))
    committing = step == "commit"
    # The server answered (an HTTP error) or was never reached: no commit. A commit request sent without an answer
    # (timeout, dropped connection) may have been applied.
    unanswered = not isinstance(err, HfHubHTTPError) and "Connect" not in type(err).__name__
    committed = None if committing and unanswered and "/commit/" in _failed_request_url(err) else False
    lines = [f"push to {repo_id} failed at step '{step}': {type(err).__name__}: {err}", "What reached the Hub:"]
    lines.append(f"  - repo {repo_id}: " + ("exists" if repo_ready else "not created or checked (this step failed)"))
    if branch_ready is not None:
        lines.append(f"  - branch {revision!r}: " + ("exists" if branch_ready else "not created"))
    if committed is None:
        lines.append("  - commit: UNKNOWN - the commit request got no answer (timeout or dropped connection); the Hub "
                     f"may have applied it: check the repo's commits (HfApi().list_repo_commits({repo_id!r}))")
    else:
        lines.append(f"  - commit: none - none of the {len(files)} files of this push is on the Hub (a Hub commit is "
                     "all-or-nothing)")
    lines.append(f"Nothing is lost: the files ({', '.join(files)}) are kept in {folder}")
    options = (f" --revision {revision}" if revision else "") + "".join(f" --exclude '{p}'" for p in exclude)
    lines.append("To retry once the Hub answers: " + (retry or "call push_to_hub again")
                 + f", or upload that folder as it is: hf upload {repo_id} {folder} .{options}")
    return PushToHubError(
        redact_secrets("\n".join(lines), token if isinstance(token, str) else None), repo_id=repo_id, folder=folder,
        files=files, repo_ready=repo_ready, branch_ready=branch_ready, committed=committed,
    )


def push_to_hub(
    model: Any,
    repo_id: str,
    *,
    processor: Any = None,
    token: str | bool | None = None,
    revision: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    **card_kwargs: Any,
):
    """Create ``repo_id`` if needed and upload the model, its processor, card and plots in one commit.

    ``card_kwargs`` go to [`create_model_card`] (``metrics``, ``per_label_metrics``, ``datasets``, ...).
    Returns huggingface_hub's ``CommitInfo``. If the Hub fails (down, HTTP error, timeout), raises [`PushToHubError`]:
    the staged files are kept in the folder it names, and it says what was and was not pushed.
    """
    import shutil

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    folder = tempfile.mkdtemp(prefix="hf_mtl_push_")
    try:
        # Everything is written (and every input checked) before the first request: bad input loses nothing remote.
        save_for_hub(model, folder, processor=processor, repo_id=repo_id, **card_kwargs)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    step, repo_ready, branch_ready = "create the repo", False, None
    try:
        resolved = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        repo_ready = True
        if resolved != repo_id:  # "name" → "<user>/name": the card's usage snippet names the full id
            repo_id = resolved
            write_model_card(model, folder, repo_id=repo_id, **card_kwargs)
        if revision is not None and not create_pr:
            step, branch_ready = "create the branch", False
            api.create_branch(repo_id, branch=revision, exist_ok=True)
            branch_ready = True
        step = "commit"
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or "Upload hf_mtl multi-task model",
            # Plots (the old per-label chart at the top level too) or weight shards of an earlier push that this one
            # does not rewrite would be stale.
            delete_patterns=[f"{PLOTS_DIR}/*", "per_label_metrics.png", "model*.safetensors",
                             "model.safetensors.index.json"],
            revision=revision,
            create_pr=create_pr,
        )
    except Exception as err:  # any failure talking to the Hub: keep the files, say what happened
        raise push_failure(err, repo_id=repo_id, folder=folder, step=step, repo_ready=repo_ready, revision=revision,
                           branch_ready=branch_ready, token=token) from err
    shutil.rmtree(folder, ignore_errors=True)
    logger.info("pushed %s to %s (commit %s)", type(model).__name__, repo_id, commit.oid)
    return commit
