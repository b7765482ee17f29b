"""Sharing on the Hub: the model card (from the template in ``model_cards/``), the per-label chart, push and processor
loading.

A pushed repo holds ``config.json`` + ``model.safetensors`` (safetensors only), the backbone's preprocessing files, a
``README.md`` card whose metadata carries the real eval results, and the per-label metrics chart. Tokens are only
handed to ``huggingface_hub`` calls: never logged, never written into the card, the recipe or any file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from .safety import redact_secrets
from .tasks import TaskSpec, metric_key

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "hf_mtl_model_card.md"
CHART_FILENAME = "per_label_metrics.png"
CHART_SKIP_COLUMNS = ("support",)
"""Per-label table columns that are counts, not scores in [0, 1]: tabled, not charted."""
LIBRARY_NAME = "hf-mtl"
CARD_METRIC_PREFIXES = ("eval_", "test_")
AGGREGATE_PREFIXES = ("", "macro_", "micro_")
RECIPE_KEYS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "weight_decay",
    "lr_scheduler_type",
    "warmup_steps",
    "optim",
    "max_grad_norm",
    "seed",
    "bf16",
    "fp16",
)
PROCESSOR_SKIP_PATTERNS = ["*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.msgpack", "*.png",
                           "*.py", "*.pyc", "*.so", "*.dll", "*.dylib"]
"""Files a processor never needs: skipped when fetching a repo's preprocessing files (a repo's own code is not even
downloaded: hf_mtl never runs it)."""


# ----------------------------------------------------------------------------------------------------------- template
def model_card_template_path() -> Path:
    """Where the card template is read from.

    The template's home is the top-level ``model_cards/`` folder of the source tree (what contributors edit). An
    installed wheel has no such folder, so the package ships a byte-identical copy as package data in
    ``hf_mtl/templates/`` (a test keeps the two equal). ``HF_MTL_MODEL_CARD_TEMPLATE`` points at another template.
    """
    override = os.environ.get("HF_MTL_MODEL_CARD_TEMPLATE")
    if override:
        if not os.path.isfile(override):
            raise FileNotFoundError(f"HF_MTL_MODEL_CARD_TEMPLATE={override!r} is not a file")
        return Path(override)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "model_cards" / TEMPLATE_NAME, here / "templates" / TEMPLATE_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"the model card template {TEMPLATE_NAME} is missing from {here / 'templates'}")


# ------------------------------------------------------------------------------------------------------------ metrics
def _strip_prefix(key: str) -> str:
    for prefix in CARD_METRIC_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def task_eval_results(specs: Sequence[TaskSpec], metrics: Mapping[str, Any] | None) -> list[tuple[str, str, float]]:
    """``(task, metric, value)`` for every task-level metric in a Trainer metrics dict (``eval_<task>_<metric>``).

    Task-level metrics are each type's ``metric_names`` and their ``macro_``/``micro_`` aggregates; per-label entries
    and losses stay out of the model-index.
    """
    if not metrics:
        return []
    flat = {_strip_prefix(key): value for key, value in metrics.items()}
    rows = []
    for spec in specs:
        for metric in spec.task_type.metric_names:
            for aggregate in AGGREGATE_PREFIXES:
                name = f"{aggregate}{metric}"
                value = flat.get(f"{spec.name}_{name}")
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append((spec.name, name, float(value)))
    return rows


def per_label_metrics_from(
    specs: Sequence[TaskSpec], metrics: Mapping[str, Any] | None
) -> dict[str, dict[str, dict[str, float]]]:
    """``{task: {label: {metric: value}}}`` read back from the per-label entries of a Trainer metrics dict.

    ``hf_mtl.metrics.build_compute_metrics`` reports them as ``<task>_<label>_<metric>`` (the Trainer adds ``eval_``)
    and also keeps the table itself in ``compute_metrics.per_label_metrics``, which the trainer's card uses directly.
    """
    if not metrics:
        return {}
    flat = {_strip_prefix(key): value for key, value in metrics.items()}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for spec in specs:
        for label in spec.label_names:
            for metric in dict.fromkeys((*spec.task_type.metric_names, "f1")):
                value = flat.get(f"{spec.name}_{metric_key(label)}_{metric}")
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    table.setdefault(spec.name, {}).setdefault(label, {})[metric] = float(value)
    return table


def _format_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"  # undefined on this eval set (e.g. no present label), never faked
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) > 1):
        return str(int(value))
    return f"{value:.4f}"


def per_label_table(
    specs: Sequence[TaskSpec], per_label: Mapping[str, Mapping[str, Mapping[str, float]]] | None
) -> tuple[list[str], list[dict[str, Any]]]:
    """``{task: {label: {metric: value}}}`` → (metric columns, rows ``{task, label, cells, text}``) in config order."""
    if not per_label:
        return [], []
    unknown = sorted(set(per_label) - {spec.name for spec in specs})
    if unknown:
        raise ValueError(f"per-label metrics for unknown tasks {unknown}; the model's tasks are {[s.name for s in specs]}")
    columns: list[str] = []
    for labels in per_label.values():
        for values in labels.values():
            columns.extend(m for m in values if m not in columns)
    rows = []
    for spec in specs:
        labels = per_label.get(spec.name) or {}
        order = [name for name in spec.label_names if name in labels] + [n for n in labels if n not in spec.label_names]
        for label in order:
            values = labels[label]
            cells = [values.get(m) for m in columns]
            rows.append({"task": spec.name, "label": label, "cells": cells, "text": [_format_cell(v) for v in cells]})
    return columns, rows


def plot_per_label_metrics(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """A grouped horizontal bar chart of per-label metrics (one bar per metric), written as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    keep = [i for i, metric in enumerate(columns) if metric not in CHART_SKIP_COLUMNS]
    columns = [columns[i] for i in keep]
    rows = [{**row, "cells": [row["cells"][i] for i in keep]} for row in rows]
    names = [f"{row['task']} / {row['label']}" for row in rows]
    height = 0.8 / max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.35 * len(rows) * max(1, len(columns)) ** 0.5))
    y = np.arange(len(rows))
    for i, metric in enumerate(columns):
        values = [row["cells"][i] if row["cells"][i] is not None else np.nan for row in rows]
        ax.barh(y + i * height, values, height=height, label=metric)
    ax.set_yticks(y + height * (len(columns) - 1) / 2, names)
    ax.invert_yaxis()
    ax.set_xlabel("value")
    ax.set_title("Per-label metrics (last evaluation)")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------------------- card data
def input_kind(model: Any) -> str:
    """``"image"``, ``"text"`` or ``"audio"``: what the backbone reads (from its main input name)."""
    main_input = getattr(model, "main_input_name", "pixel_values")
    return {"pixel_values": "image", "input_values": "audio", "input_features": "audio"}.get(main_input, "text")


def _timm_pretrained_cfg(config: Any) -> Any:
    if config.backbone_library != "timm":
        return None
    import timm

    return timm.models.get_pretrained_cfg(config.backbone.removeprefix("timm/"))


def default_base_model(config: Any) -> str | None:
    """The Hub id of the backbone's pretrained weights, when it has one (not for local folders)."""
    pretrained_cfg = _timm_pretrained_cfg(config)
    if pretrained_cfg is not None:
        return getattr(pretrained_cfg, "hf_hub_id", None) or None
    backbone = str(config.backbone or "")
    if config.backbone_library == "transformers" and backbone.count("/") == 1 and not os.path.exists(backbone):
        return backbone
    return None


def default_license(config: Any) -> str | None:
    """The license of the backbone weights: the config's ``backbone_license``, else timm's pretrained config."""
    if config.backbone_license:
        return config.backbone_license
    pretrained_cfg = _timm_pretrained_cfg(config)
    return getattr(pretrained_cfg, "license", None) if pretrained_cfg is not None else None


def training_recipe(args: Any = None, state: Any = None) -> list[tuple[str, Any]]:
    """The settings that reproduce a run: core optimisation arguments, every hf_mtl-specific argument, the run length.

    Arguments whose name ends in ``_token`` are never included.
    """
    if args is None:
        return []
    from transformers import TrainingArguments

    values = args.to_dict() if hasattr(args, "to_dict") else dict(args)
    base = {f.name for f in fields(TrainingArguments)} if isinstance(args, TrainingArguments) else set()
    keys = [k for k in RECIPE_KEYS if k in values] + [k for k in values if k not in base and k not in RECIPE_KEYS]
    recipe = [(k, values[k]) for k in keys if not k.endswith("_token") and values[k] is not None]
    world_size = getattr(args, "world_size", None)
    if world_size is not None:
        recipe.append(("world_size", world_size))
        batch = values.get("per_device_train_batch_size", 0) * values.get("gradient_accumulation_steps", 1)
        recipe.append(("effective_batch_size", batch * world_size))
    if state is not None and getattr(state, "global_step", 0):
        recipe += [("trained_steps", state.global_step), ("trained_epochs", round(float(state.epoch or 0), 4))]
    return recipe


def usage_snippet(repo_id: str, kind: str) -> str:
    """A snippet that runs as written once the repo exists (tests execute the one in the card)."""
    example = {
        "image": ('from PIL import Image\n', 'Image.new("RGB", (224, 224), "white")  # a PIL image, an array or a path'),
        "text": ("", '"Replace this sentence with your own text."'),
        "audio": ("import numpy as np\n", "np.zeros(16000, dtype=np.float32)  # one second of 16 kHz audio"),
    }[kind]
    return (
        f"{example[0]}from transformers import AutoModel, pipeline\n\n"
        "import hf_mtl  # registers the model with transformers' Auto classes and the pipeline task\n\n"
        f'model = AutoModel.from_pretrained("{repo_id}")  # or hf_mtl.MultiTaskModel.from_pretrained\n'
        f"example = {example[1]}\n"
        "print(model.predict([example], top_k=2))\n\n"
        f'classifier = pipeline("multi-task-classification", model="{repo_id}")\n'
        "print(classifier(example))"
    )


def _versions() -> list[tuple[str, str]]:
    from importlib.metadata import PackageNotFoundError, version

    from .version import __version__

    out = [("hf_mtl", __version__)]
    for name in ("transformers", "timm", "torch", "huggingface_hub"):
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            pass
    return out


def create_model_card(
    model: Any,
    *,
    repo_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    per_label_metrics: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    datasets: str | Sequence[str] | None = None,
    eval_split: str | None = None,
    training_args: Any = None,
    trainer_state: Any = None,
    base_model: str | None = None,
    license: str | None = None,
    tags: Iterable[str] | None = None,
    chart_file: str | None = None,
    model_name: str | None = None,
):
    """Render the model card of ``model`` from the template in ``model_cards/``.

    Args:
        metrics: the last evaluation's metrics (``trainer.evaluate()``): task-level numbers go into the card's
            ``model-index`` and its evaluation table, exactly as given.
        per_label_metrics: ``{task: {label: {metric: value}}}`` from the same evaluation, for the per-label table
            (default: read from the per-label entries of ``metrics``, see [`per_label_metrics_from`]).
        datasets: Hub dataset ids (or names) the model was trained and evaluated on.
        training_args / trainer_state: the run's `TrainingArguments` and `TrainerState`, for the recipe section.
        chart_file: file name of the per-label chart pushed beside the card.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    config = model.config
    specs: list[TaskSpec] = list(model.task_specs)
    repo_id = repo_id or config.name_or_path or "path/to/model"
    model_name = model_name or repo_id.rstrip("/").split("/")[-1]
    kind = input_kind(model)
    pipeline_tag = f"{kind}-classification"
    datasets = [datasets] if isinstance(datasets, str) else list(datasets or [])
    base_model = base_model or default_base_model(config)
    license = license or default_license(config)

    eval_rows = task_eval_results(specs, metrics)
    dataset_name = datasets[0] if datasets else "evaluation set"
    # The Hub groups model-index results by task type and dataset, so the hf_mtl task is named in each metric's name.
    task_summary = "multi-task: " + ", ".join(f"{s.name} ({s.type})" for s in specs)
    eval_results = [
        EvalResult(
            task_type=pipeline_tag,
            task_name=task_summary,
            dataset_type=dataset_name,
            dataset_name=dataset_name,
            dataset_split=eval_split,
            metric_type=metric,
            metric_name=f"{task} {metric}",
            metric_value=value,
        )
        for task, metric, value in eval_rows
    ]
    task_types = sorted({spec.type for spec in specs})
    all_tags = [LIBRARY_NAME, "multi-task", pipeline_tag, config.backbone_library]
    all_tags += task_types
    all_tags += [t for t in (tags or []) if t not in all_tags]
    card_data = ModelCardData(
        library_name=LIBRARY_NAME,
        license=license,
        base_model=base_model,
        datasets=datasets or None,
        tags=list(dict.fromkeys(all_tags)),
        pipeline_tag=pipeline_tag,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    if per_label_metrics is None:
        per_label_metrics = per_label_metrics_from(specs, metrics)
    columns, label_rows = per_label_table(specs, per_label_metrics)
    tasks = []
    for spec in specs:
        task_type = spec.task_type
        thresholded = task_type.uses_thresholds
        thresholds = spec.thresholds if spec.thresholds is not None else [0.5] * spec.output_size
        names = spec.output_names  # one name per output (a binary task's one output is its positive label)
        tasks.append(
            {
                "name": spec.name,
                "type": spec.type,
                "output_size": spec.output_size,
                "labels": spec.label_names,
                "loss_weight": spec.loss_weight,
                "missing": task_type.missing_label_rule,
                "decision": task_type.decision_rule
                + ("" if not thresholded or spec.thresholds is not None else " (default threshold 0.5)"),
                "thresholds": list(zip(names, thresholds)) if thresholded else None,
                "prediction": task_type.prediction_text,
            }
        )
    return ModelCard.from_template(
        card_data,
        template_path=str(model_card_template_path()),
        model_name=model_name,
        backbone=config.backbone,
        backbone_library=config.backbone_library,
        backbone_license=license,
        base_model=base_model,
        tasks=tasks,
        eval_rows=[{"task": t, "metric": m, "value": v} for t, m, v in eval_rows],
        dataset_names=datasets,
        eval_split=eval_split,
        per_label_metrics=columns,
        per_label_rows=label_rows,
        chart_file=chart_file if label_rows else None,
        recipe=training_recipe(training_args, trainer_state),
        usage_snippet=usage_snippet(repo_id, kind),
        versions=_versions(),
    )


def write_model_card(model: Any, folder: str | os.PathLike, **card_kwargs: Any) -> Path:
    """Write ``README.md`` (and the per-label chart, when there are per-label metrics) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if card_kwargs.get("per_label_metrics") is None:
        card_kwargs["per_label_metrics"] = per_label_metrics_from(model.task_specs, card_kwargs.get("metrics"))
    columns, rows = per_label_table(model.task_specs, card_kwargs["per_label_metrics"])
    chart = None
    if rows:
        chart = plot_per_label_metrics(columns, rows, folder / CHART_FILENAME).name
    card = create_model_card(model, chart_file=chart, **card_kwargs)
    path = folder / "README.md"
    card.save(path)
    return path


# --------------------------------------------------------------------------------------------------------- save/push
def save_for_hub(model: Any, folder: str | os.PathLike, *, processor: Any = None, **card_kwargs: Any) -> Path:
    """Everything a Hub repo needs, in ``folder``: config, safetensors weights, processor files, card and chart."""
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
    """Create ``repo_id`` if needed and upload the model, its processor, card and chart in one commit.

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
            # A chart or weight shards of an earlier push that this one does not rewrite would be stale.
            delete_patterns=[CHART_FILENAME, "model*.safetensors", "model.safetensors.index.json"],
            revision=revision,
            create_pr=create_pr,
        )
    except Exception as err:  # any failure talking to the Hub: keep the files, say what happened
        raise push_failure(err, repo_id=repo_id, folder=folder, step=step, repo_ready=repo_ready, revision=revision,
                           branch_ready=branch_ready, token=token) from err
    shutil.rmtree(folder, ignore_errors=True)
    logger.info("pushed %s to %s (commit %s)", type(model).__name__, repo_id, commit.oid)
    return commit


# ------------------------------------------------------------------------------------------------------ processors
def load_processor(model: Any) -> Any:
    """The processor saved beside ``model`` (at the exact revision it was loaded from), else the backbone's own.

    Works offline (``HF_HUB_OFFLINE=1``) once the repo is cached.
    """
    from .preprocessing import build_processor

    source = str(getattr(model, "name_or_path", "") or "")
    if source and os.path.isdir(source):
        return build_processor(source)
    if source.count("/") == 1:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        revision = getattr(model.config, "_commit_hash", None)
        try:
            folder = snapshot_download(source, revision=revision, ignore_patterns=PROCESSOR_SKIP_PATTERNS)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
            logger.warning("could not fetch the processor files of %s (%s); using the backbone's defaults", source, err)
        else:
            return build_processor(folder)
    return build_processor(model)
