"""The model card: the template in ``model_cards/`` filled with the task sections, the ``model-index`` of the real eval
results, the per-label table, the training recipe and a usage snippet that runs as written.

Tokens never reach a card: training arguments whose name ends in ``_token`` are left out of the recipe.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from .chart import per_label_table, write_plots
from .preprocessing import input_kind
from .tasks import TaskSpec

TEMPLATE_NAME = "hf_mtl_model_card.md"
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

PerLabelMetrics = Mapping[str, Mapping[str, Mapping[str, float | None]]]
"""``{task: {label: {metric: value}}}``: one evaluation's per-label table (``hf_mtl.metrics.Evaluation.per_label``)."""


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


# ---------------------------------------------------------------------------------------------------- model-index
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


def task_baseline_results(specs: Sequence[TaskSpec], metrics: Mapping[str, Any] | None) -> list[tuple[str, str, float]]:
    """``(task, metric, value)`` of each type's trivial-predictor metrics (e.g. regression ``constant_mae``): shown
    in the card beside the model's numbers, kept out of the model-index (they are not the model's results)."""
    flat = {_strip_prefix(key): value for key, value in (metrics or {}).items()}
    return [
        (spec.name, metric, float(flat[f"{spec.name}_{metric}"]))
        for spec in specs
        for metric in spec.task_type.baseline_metric_names
        if isinstance(flat.get(f"{spec.name}_{metric}"), (int, float))
    ]


# ------------------------------------------------------------------------------------------------------ card data
def _timm_pretrained_cfg(config: Any) -> Any:
    if config.backbone_library != "timm":
        return None
    import timm

    return timm.models.get_pretrained_cfg(config.backbone.removeprefix("timm/"))


def _is_hub_id(value: Any) -> bool:
    """``owner/name`` that is not a local path (what a Hub repo id looks like)."""
    return (isinstance(value, str) and value.count("/") == 1 and not value.startswith((".", "/", "~"))
            and " " not in value and not os.path.exists(value))


def default_base_model(config: Any) -> str | None:
    """The Hub id of the backbone's pretrained weights: the one they were loaded from, or the Hub model a local copy
    is of (``backbone_hub_id``, e.g. a model shipped in a pip package); None when no weights were loaded (a random
    initialisation must not claim a base model) or they came from a file or folder of unknown origin."""
    source = getattr(config, "backbone_weights", None)
    if not source:
        return None
    if _is_hub_id(str(source)):
        return str(source)
    hub_id = getattr(config, "backbone_hub_id", None)
    return hub_id if _is_hub_id(hub_id) else None


def package_of(path: str) -> tuple[str, str | None, str | None, str] | None:
    """``(distribution, version, summary, path inside the installed packages)`` when ``path`` lies in an installed
    Python package (``site-packages``), else None; read from the path and the package metadata, so it also works
    for a path recorded on another machine."""
    from importlib import metadata

    parts = Path(path).parts
    marker = next((i for i, part in enumerate(parts) if part in ("site-packages", "dist-packages")), None)
    if marker is None or marker + 1 >= len(parts):
        return None
    top, inside = parts[marker + 1], "/".join(parts[marker + 1:])
    names = metadata.packages_distributions().get(top) or [top.replace("_", "-")]
    try:
        meta = metadata.metadata(names[0])
        return meta["Name"], meta["Version"], meta.get("Summary"), inside
    except metadata.PackageNotFoundError:
        return names[0], None, None, inside


def display_path(value: Any) -> Any:
    """A local path as a card may show it: a path inside an installed package as ``package: path``, another absolute
    path by its last two parts (the machine's layout stays out of a published card); anything else unchanged."""
    if not isinstance(value, str) or not os.path.isabs(value):
        return value
    package = package_of(value)
    if package is not None:
        return f"{package[3]} (pip package {package[0]})"
    parts = Path(value).parts
    return ".../" + "/".join(parts[-2:]) if len(parts) > 3 else value


def card_path(path: str) -> str:
    """A data file or folder as the card names it: [`display_path`] of its absolute path, in backticks."""
    return f"`{display_path(os.path.abspath(path))}`"


def backbone_display_name(config: Any) -> str:
    """The backbone as a reader knows it: its Hub id when known (a packaged copy's included), never a local path."""
    hub_id = getattr(config, "backbone_hub_id", None)
    if hub_id:
        return hub_id
    return str(display_path(config.backbone))


def weights_provenance(config: Any) -> str:
    """Where the backbone weights came from, exactly as they were loaded (Markdown, for the card)."""
    source = getattr(config, "backbone_weights", None)
    if not source:
        return "randomly initialised: no pretrained weights were loaded"
    source = str(source)
    if _is_hub_id(source):
        return f"pretrained weights from [{source}](https://huggingface.co/{source}) on the Hub"
    if not os.path.isabs(source) and not os.path.exists(source):
        return f"pretrained weights from {source}"  # e.g. timm's own download without a Hub id
    what = "folder" if os.path.isdir(source) or not Path(source).suffix else "file"
    package = package_of(source)
    hub_id = getattr(config, "backbone_hub_id", None)
    copy = f", a copy of [{hub_id}](https://huggingface.co/{hub_id})" if hub_id else ""
    if package is not None:
        name, version, summary, inside = package
        described = f' ("{summary.strip()}")' if summary else ""
        return (f"pretrained weights loaded from the {what} `{inside}` of the pip package `{name}`"
                f"{f' {version}' if version else ''}{described}{copy}")
    return f"pretrained weights loaded from a local {what} `{Path(source).name}`{copy}"


GENERIC_FOLDER_NAMES = {"model", "models", "output", "outputs", "out", "run", "runs", "final", "best", "saved", "tmp",
                        "temp", "export", "result", "results", "checkpoint", "last-checkpoint", "path"}
"""Folder names that say nothing about a model: never a card's title."""


def default_model_name(config: Any, *candidates: str | os.PathLike | None) -> str:
    """The card's title: the last part of the first candidate (a repo id, the model folder) that names something,
    else the backbone and the tasks (``MiniLM-L6-v2 multi-task model: pos, supersense``)."""
    for candidate in (*candidates, getattr(config, "name_or_path", None)):
        if not candidate:
            continue
        name = Path(os.fspath(candidate).rstrip("/")).name
        if name and name.lower() not in GENERIC_FOLDER_NAMES and not name.startswith(("tmp", ".", "checkpoint-")):
            return name
    backbone = backbone_display_name(config).split("/")[-1].split(" ")[0]
    return f"{backbone} multi-task model: {', '.join(config.task_names)}"


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
    # hf_mtl's own arguments when the run changed them (a default LoRA rank says nothing about a run without LoRA)
    defaults = {f.name: f.default for f in fields(args)} if isinstance(args, TrainingArguments) else {}
    keys = [k for k in RECIPE_KEYS if k in values] + [
        k for k in values if k not in base and k not in RECIPE_KEYS and (k not in defaults or values[k] != defaults[k])
    ]
    recipe = [(k, display_path(values[k])) for k in keys if not k.endswith("_token") and values[k] is not None]
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


def task_sections(specs: Sequence[TaskSpec]) -> list[dict[str, Any]]:
    """One card section per task: type, outputs, labels, loss weight, what a missing label is, the decision rule."""
    sections = []
    for spec in specs:
        task_type = spec.task_type
        thresholded = task_type.uses_thresholds
        thresholds = spec.thresholds if spec.thresholds is not None else [0.5] * spec.output_size
        names = spec.output_names  # one name per output (a binary task's one output is its positive label)
        sections.append(
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
    return sections


def model_index(
    specs: Sequence[TaskSpec],
    eval_rows: Sequence[tuple[str, str, float]],
    pipeline_tag: str,
    dataset_type: str,
    eval_split: str | None = None,
    dataset_name: str | None = None,
) -> list[Any]:
    """The card metadata's ``model-index`` results (``huggingface_hub.EvalResult``), one per task-level metric.

    ``dataset_type``: the Hub dataset id (or the ``datasets`` builder, e.g. ``json``); ``dataset_name``: what was
    evaluated, for readers (the files and the split)."""
    from huggingface_hub import EvalResult

    # The Hub groups model-index results by task type and dataset, so the hf_mtl task is named in each metric's name.
    task_summary = "multi-task: " + ", ".join(f"{s.name} ({s.type})" for s in specs)
    return [
        EvalResult(
            task_type=pipeline_tag,
            task_name=task_summary,
            dataset_type=dataset_type,
            dataset_name=dataset_name or dataset_type,
            dataset_split=eval_split,
            metric_type=metric,
            metric_name=f"{task} {metric}",
            metric_value=value,
        )
        for task, metric, value in eval_rows
    ]


RecipeSections = Mapping[str, Sequence[tuple[str, Any]]]
"""``{section title: [(key, value), ...]}``: the card's training recipe, e.g. one section per training stage."""


def create_model_card(
    model: Any,
    *,
    repo_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    per_label_metrics: PerLabelMetrics | None = None,
    datasets: str | Sequence[str] | None = None,
    eval_split: str | None = None,
    eval_data: str | None = None,
    training_args: Any = None,
    trainer_state: Any = None,
    recipe: RecipeSections | None = None,
    base_model: str | None = None,
    license: str | None = None,
    tags: Iterable[str] | None = None,
    model_name: str | None = None,
    plot_files: Sequence[tuple[str, str]] | None = None,
    other_evaluations: Sequence[Mapping[str, Any]] | None = None,
):
    """Render the model card of ``model`` from the template in ``model_cards/`` (a ``huggingface_hub.ModelCard``).

    The one card signature: [`write_model_card`], ``MultiTaskModel.push_to_hub``, ``MultiTaskTrainer.push_to_hub`` /
    ``create_model_card`` and ``hf-mtl push`` all take these keyword arguments.

    Args:
        metrics: the last evaluation's metrics (``trainer.evaluate()``): task-level numbers go into the card's
            ``model-index`` and its evaluation table, exactly as given.
        per_label_metrics: ``{task: {label: {metric: value}}}`` from the same evaluation, for the per-label table
            (``hf_mtl.metrics.Evaluation.per_label``; the Trainer passes its last evaluation's). None: no table.
        datasets: Hub dataset ids the model was trained and evaluated on (the card's ``datasets`` metadata).
        eval_split / eval_data: the split the metrics were computed on, and what it is in words (files, rows).
        training_args / trainer_state: the run's `TrainingArguments` and `TrainerState`, for the recipe section.
        recipe: the recipe as sections (e.g. per training stage), in place of the one built from training_args.
        base_model / license: default to the backbone's Hub id and license (timm's pretrained config, the config).
        model_name: the title (default: the repo's name, else the backbone and the tasks; never a bare ``model``).
        plot_files: ``(caption, path relative to the card)`` of the plots beside it ([`write_model_card`] draws them).
        other_evaluations: ``hf-mtl eval``'s results files (``eval_<split>_results.json``) beside the model: each its
            own section (what was evaluated, the task-level metrics, its plots); kept out of the ``model-index``.
    """
    from huggingface_hub import ModelCard, ModelCardData

    config = model.config
    specs: list[TaskSpec] = list(model.task_specs)
    hub_repo = repo_id if _is_hub_id(repo_id) or (repo_id and "/" not in repo_id) else None
    model_name = model_name or default_model_name(config, hub_repo)
    usage_repo = next((r for r in (repo_id, config.name_or_path) if _is_hub_id(r)), None) or "path/to/model"
    kind = input_kind(model.main_input_name)
    pipeline_tag = f"{kind}-classification"
    datasets = [datasets] if isinstance(datasets, str) else list(datasets or [])
    base_model = base_model or default_base_model(config)
    license = license or default_license(config)
    eval_rows = task_eval_results(specs, metrics)
    dataset_type = datasets[0] if datasets else "evaluation set"
    eval_results = model_index(specs, eval_rows, pipeline_tag, dataset_type, eval_split, eval_data)
    all_tags = [LIBRARY_NAME, "multi-task", pipeline_tag, config.backbone_library]
    all_tags += sorted({spec.type for spec in specs})
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
    columns, label_rows = per_label_table(specs, per_label_metrics)
    if recipe is None:
        steps = training_recipe(training_args, trainer_state)
        recipe = {"training": steps} if steps else {}
    return ModelCard.from_template(
        card_data,
        template_path=str(model_card_template_path()),
        model_name=model_name,
        backbone=backbone_display_name(config),
        backbone_library=config.backbone_library,
        backbone_license=license,
        weights=weights_provenance(config),
        tasks=task_sections(specs),
        eval_rows=[{"task": t, "metric": m, "value": v, "baseline": False} for t, m, v in eval_rows]
        + [{"task": t, "metric": f"{m} (baseline)", "value": v, "baseline": True}
           for t, m, v in task_baseline_results(specs, metrics)],
        dataset_names=datasets,
        eval_split=eval_split,
        eval_data=eval_data,
        per_label_metrics=columns,
        per_label_rows=label_rows,
        plot_files=list(plot_files or []),
        other_evaluations=[_evaluation_section(specs, result) for result in other_evaluations or []],
        recipe=[(title, rows) for title, rows in recipe.items() if rows],
        usage_snippet=usage_snippet(usage_repo, kind),
        versions=_versions(),
    )


def _evaluation_section(specs: Sequence[TaskSpec], result: Mapping[str, Any]) -> dict[str, Any]:
    data = result.get("data") or {}
    return {"data": data.get("card_description") or data.get("description") or result.get("name", ""),
            "rows": [{"task": t, "metric": m, "value": v} for t, m, v in task_eval_results(specs, result.get("metrics"))],
            "plot_files": [tuple(plot) for plot in result.get("plots") or []]}


PER_LABEL_FILE = "per_label_metrics.json"
"""The per-label table of a run's last evaluation, beside the model (``hf-mtl train`` writes it)."""
CARD_INPUTS_FILE = "card_inputs.json"
"""Beside a model whose card hf_mtl wrote: that card's inputs (JSON), so ``hf-mtl push`` and ``hf-mtl eval`` render
the same card again ([`saved_card_kwargs`]); its plots are the PNGs it lists, reused as they are, its per-label table
the [`PER_LABEL_FILE`] beside it."""
EVAL_RESULTS_GLOB = "eval_*_results.json"
"""``hf-mtl eval``'s results beside a model (``eval_<split>_results.json``; the Trainer's ``eval_results.json`` aside)."""


def _jsonable(value: Any) -> Any:
    """``value`` if JSON gives it back rendering as the card renders it (``str``), else that rendering."""
    import json

    try:
        back = json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return str(value)
    return value if back == value and str(back) == str(value) else str(value)


def _recipe_jsonable(recipe: RecipeSections) -> dict[str, list[list[Any]]]:
    return {title: [[key, _jsonable(value)] for key, value in rows] for title, rows in recipe.items()}


def saved_card_kwargs(folder: str | os.PathLike) -> dict[str, Any]:
    """The keyword arguments of [`write_model_card`] that render ``folder``'s card again, elsewhere (a push's
    staging folder) or after ``hf-mtl eval`` added results: the saved inputs ([`CARD_INPUTS_FILE`]) with the plots
    they list (``plots_from``), or for a folder without them, ``metrics`` and ``per_label_metrics`` from the Trainer's
    ``eval_results.json`` and ``per_label_metrics.json``; and every ``hf-mtl eval`` result beside the model."""
    import json

    folder = Path(folder)
    path = folder / CARD_INPUTS_FILE
    kwargs: dict[str, Any] = {}
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        kwargs = dict(saved["card"])
        kwargs["recipe"] = {title: [tuple(row) for row in rows] for title, rows in kwargs.get("recipe", {}).items()}
        per_label_file = kwargs.pop("per_label_metrics_file", None)
        if per_label_file:
            kwargs["per_label_metrics"] = json.loads((folder / per_label_file).read_text(encoding="utf-8"))
        kwargs["plot_files"] = [tuple(plot) for plot in saved.get("plot_files", [])]
        kwargs["plots_from"] = str(folder)
    else:
        for key, name in (("metrics", "eval_results.json"), ("per_label_metrics", PER_LABEL_FILE)):
            if (folder / name).is_file():
                kwargs[key] = json.loads((folder / name).read_text(encoding="utf-8"))
    evaluations = []
    for result_path in sorted(folder.glob(EVAL_RESULTS_GLOB)):
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if isinstance(result, dict) and "metrics" in result:
            evaluations.append({**result, "name": result_path.name[len("eval_"):-len("_results.json")]})
    if evaluations:
        kwargs["other_evaluations"] = evaluations
        kwargs["plots_from"] = str(folder)
    return kwargs


def refresh_saved_card(model: Any, folder: str | os.PathLike) -> str | None:
    """Render ``folder``'s card again from its saved inputs, when hf_mtl wrote it ([`CARD_INPUTS_FILE`]): after
    ``hf-mtl eval`` added results or ``hf-mtl tune-thresholds`` changed the config, so the local card says what
    ``hf-mtl push`` would publish. Returns the card's path, or None for a folder without saved inputs."""
    if not (Path(folder) / CARD_INPUTS_FILE).is_file():
        return None
    return write_model_card(model, folder, **saved_card_kwargs(folder))


def drop_eval_results(folder: str | os.PathLike) -> list[str]:
    """Remove ``hf-mtl eval`` results ([`EVAL_RESULTS_GLOB`]) a model folder holds from the model a new training run
    replaces there: they describe other weights, and the card (and a push) would show them as this model's."""
    import logging

    removed = []
    for path in sorted(Path(folder).glob(EVAL_RESULTS_GLOB)):
        path.unlink()
        removed.append(path.name)
    if removed:
        logging.getLogger(__name__).info("removed %s from %s: results of the model this run replaces",
                                         ", ".join(removed), folder)
    return removed


def _copy_plots(source: Path, folder: Path, plots: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Copy the ``plots`` of ``source`` into ``folder``; returns those that exist (a card never shows a missing one)."""
    import logging
    import shutil

    kept = []
    for caption, relative in plots:
        src, dst = source / relative, folder / relative
        if not src.is_file():
            logging.getLogger(__name__).warning("card plot %s is missing from %s: left out of the card", relative, source)
            continue
        if src.resolve() != dst.resolve():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        kept.append((caption, relative))
    return kept


def write_model_card(
    model: Any,
    folder: str | os.PathLike,
    *,
    evaluation: Any = None,
    histories: Sequence[tuple[str, Sequence[Mapping[str, Any]]]] | None = None,
    plot_files: Sequence[tuple[str, str]] | None = None,
    plots_from: str | os.PathLike | None = None,
    other_evaluations: Sequence[Mapping[str, Any]] | None = None,
    **card_kwargs: Any,
) -> Path:
    """Write ``README.md``, its plots (``plots/eval_*.png``, ``plots/training_curves.png``:
    ``hf_mtl.chart.write_plots``) and its inputs ([`CARD_INPUTS_FILE`]) into ``folder``; ``hf-mtl eval`` writes
    ``plots/<split>_*.png`` beside them.

    ``evaluation``: the ``hf_mtl.metrics.Evaluation`` behind ``metrics`` (its scores and labels draw the
    diagnostic plots); ``histories``: ``(stage, Trainer.state.log_history)`` pairs for the training curves.
    ``plot_files`` (with ``plots_from``, the folder they are in): plots already drawn, copied instead of drawn
    ([`saved_card_kwargs`] gives them); ``other_evaluations``' plots are copied from ``plots_from`` too.
    ``card_kwargs``: the other keyword arguments of [`create_model_card`]."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = model.task_specs
    training_args, trainer_state = card_kwargs.pop("training_args", None), card_kwargs.pop("trainer_state", None)
    recipe = card_kwargs.pop("recipe", None)
    if recipe is None:  # resolved now, so the saved inputs render the same recipe without the run's objects
        steps = training_recipe(training_args, trainer_state)
        recipe = {"training": steps} if steps else {}
    source = Path(plots_from) if plots_from is not None else folder
    if plot_files is None:
        per_label = per_label_table(specs, card_kwargs.get("per_label_metrics"))
        plot_files = write_plots(
            specs, folder, evaluation=evaluation, metrics=card_kwargs.get("metrics"), per_label=per_label,
            histories=histories, split="eval",
            what=card_kwargs.get("eval_data") or card_kwargs.get("eval_split") or "",
        )
    else:
        plot_files = _copy_plots(source, folder, plot_files)
    others = [{**result, "plots": _copy_plots(source, folder, [tuple(p) for p in result.get("plots") or []])}
              for result in other_evaluations or []]
    card = create_model_card(model, plot_files=plot_files, recipe=recipe, other_evaluations=others, **card_kwargs)
    path = folder / "README.md"
    card.save(path)
    _save_card_inputs(folder, card_kwargs, recipe, plot_files)
    return path


def _json_number(value: Any) -> Any:
    return float(value) if hasattr(value, "__float__") else str(value)  # numpy / torch scalars


def _save_card_inputs(folder: Path, card_kwargs: Mapping[str, Any], recipe: RecipeSections,
                      plot_files: Sequence[tuple[str, str]]) -> None:
    """[`CARD_INPUTS_FILE`] (and [`PER_LABEL_FILE`]): what [`saved_card_kwargs`] reads back. The repo id is left out
    (it is the push's), and ``hf-mtl eval``'s results, which are read from their own files each time."""
    import json

    saved = {key: value if key == "metrics" else _jsonable(value) for key, value in card_kwargs.items()
             if key not in ("repo_id", "per_label_metrics")}
    if card_kwargs.get("per_label_metrics"):  # its own file: it grows with the labels (10,000 labels: megabytes)
        with open(folder / PER_LABEL_FILE, "w", encoding="utf-8") as handle:
            json.dump(card_kwargs["per_label_metrics"], handle, indent=2, default=_json_number)
        saved["per_label_metrics_file"] = PER_LABEL_FILE
    with open(folder / CARD_INPUTS_FILE, "w", encoding="utf-8") as handle:
        json.dump({"card": saved | {"recipe": _recipe_jsonable(recipe)}, "plot_files": [list(p) for p in plot_files]},
                  handle, indent=1, default=_json_number)
