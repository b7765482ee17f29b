"""Bad inputs, round 2 (issue 15): the mistakes real users make that gave silent wrong results or late errors.

One table per class of fault; every case asserts the exception type and that the message names the task / column /
row / file / key at fault. Behaviour that must be *right* (not an error) has its own tests below each table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from hf_mtl import MultiTaskConfig, TaskSpec, validate_labels
from hf_mtl.data import encode_labels
from hf_mtl.scripts.arguments import RecipeError
from tests.test_bad_inputs import BadInput, Context, run_case
from tests.tiny_models import MIXED_TASKS, TIMM_BACKBONE


def stars(**overrides: Any) -> TaskSpec:
    return TaskSpec(**{"name": "stars", "type": "multiclass", "labels": [1, 2, 3, 4, 5], **overrides})


def encode(spec: TaskSpec, values: list[Any]) -> torch.Tensor:
    """Labels as the trainer sees them: checked up front (validate_labels), then encoded by the collator."""
    rows = [{spec.name: value} for value in values]
    validate_labels(rows, [spec])
    return encode_labels([spec], rows)[spec.name]


# ------------------------------------------------------------------------------------------ 1. integer label names
INTEGER_LABELS = [
    BadInput("int-labels-multiclass-not-a-name", "data", lambda c: encode(stars(), [1, 0]), ValueError,
             ("task 'stars'", "row 1", "class 0", "label names", "integers")),
    BadInput("int-labels-multiclass-float-not-a-name", "data", lambda c: encode(stars(), [5.0, 6.0]), ValueError,
             ("task 'stars'", "row 1", "6.0", "integers")),
    BadInput("int-labels-binary-not-a-name", "data",
             lambda c: encode(TaskSpec("grade", "binary", labels=[1, 2]), [2, 0]), ValueError,
             ("task 'grade'", "row 1", "label 0", "integers")),
    BadInput("int-labels-binary-single-zero", "config", lambda c: TaskSpec("grade", "binary", labels=[0]), ValueError,
             ("task 'grade'", "'0'", "[negative, positive]")),
    BadInput("int-labels-multilabel-ambiguous", "data",
             lambda c: encode(TaskSpec("codes", "multilabel", labels=[0, 1]), [[0, 1]]), ValueError,
             ("task 'codes'", "row 0", "both", "positive")),
]


@pytest.mark.parametrize("case", INTEGER_LABELS, ids=str)
def test_integer_label_names(case: BadInput, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run_case(case, tmp_path, request)


def test_integer_label_names_are_read_as_names() -> None:
    """Star ratings 1..5: the value 1 is the label named "1" (class id 0), never class id 1."""
    assert encode(stars(), [1, 2, 5, "3", 4.0, None]).tolist() == [0, 1, 4, 2, 3, -100]
    # names that are not integers keep integers as class ids
    assert encode(TaskSpec("kind", "multiclass", labels=["x", "y"]), [1, "x"]).tolist() == [1, 0]
    # binary with integer names: the first name is negative, the second positive
    assert encode(TaskSpec("grade", "binary", labels=[1, 2]), [1, 2, "2"]).tolist() == [0.0, 1.0, 1.0]
    assert encode(TaskSpec("grade", "binary", labels=[2, 1]), [1]).tolist() == [1.0]
    # multilabel with integer names: a list of names, or a 0/1 row when that is the only reading
    codes = TaskSpec("codes", "multilabel", labels=[10, 20, 30])
    assert encode(codes, [[10, 30], [1, 0, 1], ["20"]]).tolist() == [[1, 0, 1], [1, 0, 1], [0, 1, 0]]


# ------------------------------------------------------------------------------------------ 2. metric-key collisions
def tasks_config(*tasks: dict[str, Any]) -> MultiTaskConfig:
    return MultiTaskConfig(backbone=TIMM_BACKBONE, backbone_library="timm", tasks=list(tasks))


METRIC_KEYS = [
    BadInput("metric-key-label-named-macro", "config",
             lambda c: TaskSpec("tags", "multilabel", labels=["macro", "b"]), ValueError,
             ("'tags_macro_roc_auc'", "label 'macro'", "macro roc_auc of task 'tags'")),
    BadInput("metric-key-class-named-macro", "config",
             lambda c: TaskSpec("kind", "multiclass", labels=["macro", "b"]), ValueError,
             ("'kind_macro_f1'", "label 'macro'", "task 'kind'")),
    BadInput("metric-key-label-named-micro", "config",
             lambda c: TaskSpec("tags", "multilabel", labels=["micro", "b"]), ValueError,
             ("'tags_micro_roc_auc'", "label 'micro'")),
    BadInput("metric-key-labels-same-after-escaping", "config",
             lambda c: TaskSpec("tags", "multilabel", labels=["a b", "a/b"]), ValueError,
             ("'tags_a_b_roc_auc'", "label 'a b'", "label 'a/b'")),
    BadInput("metric-key-regression-outputs-same-after-escaping", "config",
             lambda c: TaskSpec("size", "regression", labels=["w.h", "w.h "]), ValueError,
             ("'size_w.h_mae'", "task 'size'")),
    BadInput("metric-key-task-prefix-of-other-task", "config",
             lambda c: tasks_config({"name": "tags", "type": "multilabel", "labels": ["a", "b"]},
                                    {"name": "tags_a", "type": "binary"}), ValueError,
             ("'tags_a_roc_auc'", "label 'a' of task 'tags'", "task 'tags_a'")),
    BadInput("metric-key-class-f1-vs-binary-task", "config",
             lambda c: tasks_config({"name": "kind", "type": "multiclass", "labels": ["x", "y"]},
                                    {"name": "kind_x", "type": "binary"}), ValueError,
             ("'kind_x_f1'", "label 'x' of task 'kind'", "task 'kind_x'")),
]


@pytest.mark.parametrize("case", METRIC_KEYS, ids=str)
def test_metric_keys_are_unique(case: BadInput, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run_case(case, tmp_path, request)


def test_every_reported_metric_key_is_declared_by_its_task_type() -> None:
    """The config-time check sees exactly the keys compute_metrics reports, so uniqueness holds by construction."""
    from hf_mtl.metrics import MAIN_SCORE, build_compute_metrics, reported_metric_keys
    from tests.tiny_models import MIXED_TASKS

    tasks = [*MIXED_TASKS, {"name": "size", "type": "regression", "labels": ["w", "h"]},
             {"name": "stars", "type": "ordinal", "labels": [1, 2, 3, 4, 5]}]
    specs = tasks_config(*tasks).task_specs
    reported = reported_metric_keys(build_compute_metrics(specs), specs)
    declared = {key for s in specs for key, _ in s.task_type.metric_keys(s) if not key.startswith("loss_")}
    assert reported == declared | {MAIN_SCORE}  # the one model-level key: the mean of the tasks' main metrics


# ------------------------------------------------------------------------------------------ 3. 16-bit and float images
def predict_on(image: Any) -> Any:
    from hf_mtl import build_processor
    from tests.tiny_models import IMAGE_SIZE, timm_model

    model = timm_model()
    return model.predict(image, processor=build_processor(model, image_size=IMAGE_SIZE))


def float_image(value: float) -> np.ndarray:
    array = np.full((8, 8, 3), 0.5, dtype=np.float32)
    array[2, 3, 1] = value
    return array


IMAGE_VALUES = [
    BadInput("image-float-nan", "predict", lambda c: predict_on(float_image(float("nan"))), ValueError,
             ("image array of shape (8, 8, 3)", "NaN", "1 pixels")),
    BadInput("image-float-inf", "predict", lambda c: predict_on(float_image(float("inf"))), ValueError,
             ("image array", "inf")),
    BadInput("image-float-negative", "predict", lambda c: predict_on(float_image(-1.5)), ValueError,
             ("image array", "[-1.5, 0.5]", "normalised")),
    BadInput("image-float-above-255", "predict", lambda c: predict_on(float_image(300.0)), ValueError,
             ("image array", "300", "[0, 255]")),
    BadInput("image-float-tensor-normalised", "predict", lambda c: predict_on(torch.randn(3, 8, 8)), ValueError,
             ("image array of shape (3, 8, 8)", "normalised")),
    BadInput("image-float-pil-nan", "predict",
             lambda c: predict_on(Image.fromarray(np.full((8, 8), np.nan, dtype=np.float32), mode="F")), ValueError,
             ("a F image", "NaN")),
]


@pytest.mark.parametrize("case", IMAGE_VALUES, ids=str)
def test_image_values(case: BadInput, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run_case(case, tmp_path, request)


def reference_8bit(array: np.ndarray) -> np.ndarray:
    """The reference conversion of a wide integer image: its own range, min → 0, max → 255, rounded."""
    wide = array.astype(np.float64)
    return np.round((wide - wide.min()) / (wide.max() - wide.min()) * 255).astype(np.uint8)


def write_16bit_pngs(folder: Path, n: int) -> list[tuple[str, np.ndarray]]:
    """12-bit X-ray-like images stored in 16-bit grayscale PNGs (values 600..3900, far above 255)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        array = rng.integers(600, 3900, size=(20, 24), dtype=np.uint16)
        path = folder / f"xray_{i}.png"
        Image.fromarray(array).save(path)
        out.append((str(path), array))
    return out


def test_16bit_grayscale_pngs_keep_their_dynamic_range(tmp_path: Path) -> None:
    from hf_mtl.preprocessing import load_image

    (path, array), = write_16bit_pngs(tmp_path, 1)
    with Image.open(path) as opened:
        assert opened.mode.startswith("I")  # PIL reads a 16-bit PNG as I;16 (or I)
    gray = np.asarray(load_image(path, "L"))
    np.testing.assert_array_equal(gray, reference_8bit(array))
    assert gray.min() == 0 and gray.max() == 255 and len(np.unique(gray)) > 200  # not saturated at 255
    rgb = np.asarray(load_image(path, "RGB"))
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], reference_8bit(array))
    # the same pixels as a uint16 array (HW and CHW) and as a PIL I;16 image in memory
    np.testing.assert_array_equal(np.asarray(load_image(array, "L")), reference_8bit(array))
    np.testing.assert_array_equal(np.asarray(load_image(array[None], "L")), reference_8bit(array))
    np.testing.assert_array_equal(np.asarray(load_image(torch.from_numpy(array.astype(np.int32)), "L")),
                                  reference_8bit(array))


def test_16bit_grayscale_pngs_train_and_predict(tmp_path: Path) -> None:
    """A 16-bit image folder trains (labels from the bright/dark half) and predicts, through the real processor."""
    import datasets

    from hf_mtl import MultiTaskModel, MultiTaskTrainer, MultiTaskTrainingArguments, build_processor, dataset_transform
    from tests.tiny_models import IMAGE_SIZE

    pairs = write_16bit_pngs(tmp_path / "xrays", 8)
    tasks = [{"name": "finding", "type": "binary", "labels": ["normal", "abnormal"]}]
    model = MultiTaskModel.from_backbone("test_efficientnet", tasks, weights=False, backbone_kwargs={"in_chans": 1})
    processor = build_processor(model, image_size=IMAGE_SIZE)
    assert processor.image_mode == "L"
    table = datasets.Dataset.from_list([{"image": p, "finding": i % 2} for i, (p, _) in enumerate(pairs)])
    train = table.with_transform(dataset_transform(processor, "image"))
    pixels = train[0]["pixel_values"]
    expected = processor.transform(False)(Image.fromarray(reference_8bit(pairs[0][1])))
    torch.testing.assert_close(pixels, expected)
    args = MultiTaskTrainingArguments(str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4,
                                      report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=train)
    trainer.train()
    assert trainer.state.global_step == 2
    predictions = model.predict([p for p, _ in pairs], processor=processor)
    assert [set(p) for p in predictions] == [{"finding"}] * 8
    assert all(p["finding"]["label"] in ("normal", "abnormal") for p in predictions)


# ------------------------------------------------------------------------------------------ 4. text past the positions
def test_long_text_is_capped_at_the_backbone_positions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A tokenizer without model_max_length and texts longer than the tiny BERT's 32 positions: training, predict and
    the pipeline truncate at 32 tokens (said once), instead of an index error deep in the backbone at a later step."""
    import datasets
    from transformers import pipeline

    from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments, dataset_transform
    from tests.test_pipeline import WORDS, tiny_tokenizer
    from tests.tiny_models import bert_model

    long_text = " ".join(WORDS * 10)  # 130 words, 132 tokens with [CLS]/[SEP]
    tokenizer = tiny_tokenizer()
    assert tokenizer.model_max_length > 10**12 and len(tokenizer(long_text)["input_ids"]) > 100
    model = bert_model(tasks=[{"name": "flag", "type": "binary"}])
    rows = datasets.Dataset.from_list([{"text": long_text if i % 2 else "the cat", "flag": i % 2} for i in range(4)])
    train = rows.with_transform(dataset_transform(tokenizer, "text"))
    args = MultiTaskTrainingArguments(str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2, report_to=[],
                                      use_cpu=True, save_strategy="no", disable_tqdm=True)
    with caplog.at_level("WARNING"):
        trainer = MultiTaskTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
        trainer.train()
    assert trainer.state.global_step == 2
    assert len(train[1]["input_ids"]) == 32
    assert sum("32 position embeddings" in r.getMessage() for r in caplog.records) == 1

    fresh = tiny_tokenizer()  # predict and the pipeline cap a tokenizer they are given, too
    assert set(model.predict(long_text, processor=fresh)) == {"flag"}
    assert fresh.model_max_length == 32
    classifier = pipeline("multi-task-classification", model=model, tokenizer=tiny_tokenizer())
    assert set(classifier(long_text)) == {"flag"}


# ------------------------------------------------------------------------------------------ 5. resume of another model
def resume_with(ctx: Context, tasks: list[dict[str, Any]]) -> None:
    """Train the stock tiny model one step (a checkpoint), then resume a model with ``tasks`` from it: the error must
    come before anything is loaded (the model's weights are unchanged)."""
    from hf_mtl import MultiTaskTrainer
    from tests.test_bad_inputs import args
    from tests.tiny_models import synthetic_rows, timm_model

    MultiTaskTrainer(model=timm_model(), args=args(ctx, max_steps=1), train_dataset=synthetic_rows(4)).train()
    other = timm_model(tasks=tasks, seed=1)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    trainer = MultiTaskTrainer(model=other, args=args(ctx, max_steps=2), train_dataset=[{**row, "findings": row["tags"], "tags": None} for row in synthetic_rows(4)])
    try:
        trainer.train(resume_from_checkpoint=str(ctx.tmp / "out" / "checkpoint-1"))
    finally:
        assert all(torch.equal(before[k], v) for k, v in other.state_dict().items()), "weights changed before the error"
        assert trainer.state.global_step == 0


RENAMED = [dict(MIXED_TASKS[0], name="findings"), *MIXED_TASKS[1:]]
WIDER = [dict(MIXED_TASKS[0], labels=["a", "b", "c", "d"]), *MIXED_TASKS[1:]]
DEEPER = [MIXED_TASKS[0], dict(MIXED_TASKS[1], hidden_sizes=[8]), *MIXED_TASKS[2:]]

RESUME = [
    BadInput("resume-renamed-task", "training", lambda c: resume_with(c, RENAMED), ValueError,
             ("checkpoint-1", "another model", "tags (multilabel, 3 outputs)", "findings (multilabel, 3 outputs)")),
    BadInput("resume-other-label-count", "training", lambda c: resume_with(c, WIDER), ValueError,
             ("checkpoint-1", "tags (multilabel, 3 outputs)", "tags (multilabel, 4 outputs)")),
    BadInput("resume-other-head-shape", "training", lambda c: resume_with(c, DEEPER), ValueError,
             ("checkpoint-1", "heads.kind", "checkpoint [16", "model [8")),
]


@pytest.mark.parametrize("case", RESUME, ids=str)
def test_resume_of_another_model(case: BadInput, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run_case(case, tmp_path, request)


# ------------------------------------------------------------------------------------------ 6. stock TrainingArguments
def stock_args(ctx: Context, **overrides: Any) -> Any:
    from tests.test_bad_inputs import args

    return args(ctx, **overrides)


def trainer_with_metrics(ctx: Context, **overrides: Any) -> Any:
    from hf_mtl import MultiTaskTrainer
    from hf_mtl.metrics import build_compute_metrics
    from tests.tiny_models import synthetic_rows, timm_model

    model = timm_model()
    return MultiTaskTrainer(model=model, args=stock_args(ctx, **overrides), train_dataset=synthetic_rows(4),
                            eval_dataset=synthetic_rows(4), compute_metrics=build_compute_metrics(model))


def image_trainer(ctx: Context, **overrides: Any) -> Any:
    from hf_mtl import MultiTaskTrainer
    from tests.tiny_models import synthetic_rows, timm_model

    return MultiTaskTrainer(model=timm_model(), args=stock_args(ctx, **overrides), train_dataset=synthetic_rows(4))


def tensor_parallel() -> Any:
    from accelerate.parallelism_config import ParallelismConfig

    return ParallelismConfig(tp_size=2)


STOCK_FIELDS = [
    BadInput("stock-label-names", "training", lambda c: stock_args(c, label_names=["tags"]), ValueError,
             ("label_names=['tags']", "`labels`", "label_columns")),
    BadInput("stock-remove-unused-columns", "training", lambda c: stock_args(c, remove_unused_columns=True),
             ValueError, ("remove_unused_columns=True", "label columns")),
    BadInput("stock-average-tokens-across-devices", "training",
             lambda c: stock_args(c, average_tokens_across_devices=False), ValueError,
             ("average_tokens_across_devices=False", "all processes")),
    BadInput("stock-label-smoothing-out-of-range", "training", lambda c: stock_args(c, label_smoothing_factor=1.0),
             ValueError, ("label_smoothing_factor", "[0, 1)", "1.0")),
    BadInput("stock-eval-do-concat-batches", "training",
             lambda c: trainer_with_metrics(c, eval_do_concat_batches=False), ValueError,
             ("eval_do_concat_batches=False", "first batch")),
    BadInput("stock-activation-checkpointing", "training", lambda c: stock_args(c, activation_checkpointing=True),
             ValueError, ("activation_checkpointing=True", "does not support")),
    BadInput("stock-gradient-checkpointing", "training", lambda c: stock_args(c, gradient_checkpointing=True),
             ValueError, ("gradient_checkpointing=True", "does not support")),
    BadInput("stock-activation-checkpointing-kwargs", "training",
             lambda c: stock_args(c, activation_checkpointing_kwargs={"use_reentrant": False}), ValueError,
             ("activation_checkpointing_kwargs={'use_reentrant': False}", "leave it unset")),
    BadInput("stock-gradient-checkpointing-kwargs", "training",
             lambda c: stock_args(c, gradient_checkpointing_kwargs={"use_reentrant": False}), ValueError,
             ("gradient_checkpointing_kwargs", "leave it unset")),
    BadInput("stock-use-liger-kernel", "training", lambda c: stock_args(c, use_liger_kernel=True), ValueError,
             ("use_liger_kernel=True", "'multitask'", "nothing would be patched")),
    BadInput("stock-liger-kernel-config", "training", lambda c: stock_args(c, liger_kernel_config={"rope": True}),
             ValueError, ("liger_kernel_config={'rope': True}", "nothing would be patched")),
    BadInput("stock-use-cache", "training", lambda c: stock_args(c, use_cache=True), ValueError,
             ("use_cache=True", "generates nothing")),
    BadInput("stock-eval-use-gather-object", "training", lambda c: stock_args(c, eval_use_gather_object=True),
             ValueError, ("eval_use_gather_object=True", "per task")),
    BadInput("stock-parallelism-config", "training", lambda c: stock_args(c, parallelism_config=tensor_parallel()),
             ValueError, ("parallelism_config", "'tp_size': 2", "data parallelism")),
    BadInput("stock-include-for-metrics", "training",
             lambda c: trainer_with_metrics(c, include_for_metrics=["inputs"]), ValueError,
             ("include_for_metrics=['inputs']", "predictions and labels only")),
    BadInput("stock-batch-eval-metrics", "training", lambda c: trainer_with_metrics(c, batch_eval_metrics=True),
             ValueError, ("batch_eval_metrics=True", "every prediction")),
    BadInput("stock-prediction-loss-only", "training",
             lambda c: trainer_with_metrics(c, prediction_loss_only=True, metric_for_best_model="eval_main_score"),
             ValueError, ("prediction_loss_only=True", "'eval_main_score'", "only eval_loss")),
    BadInput("stock-greater-is-better", "training",
             lambda c: trainer_with_metrics(c, metric_for_best_model="eval_score_mae", greater_is_better=True),
             ValueError, ("greater_is_better=True", "'eval_score_mae'", "lower is better")),
    BadInput("stock-include-num-input-tokens-seen", "training",
             lambda c: image_trainer(c, include_num_input_tokens_seen="all"), ValueError,
             ("include_num_input_tokens_seen='all'", "image model", "pixel_values")),
    BadInput("stock-train-sampling-strategy", "training",
             lambda c: image_trainer(c, train_sampling_strategy="group_by_length"), ValueError,
             ("train_sampling_strategy='group_by_length'", "image model", "'length'")),
    BadInput("stock-neftune-noise-alpha", "training", lambda c: image_trainer(c, neftune_noise_alpha=5.0),
             ValueError, ("neftune_noise_alpha=5.0", "token embeddings")),
]


@pytest.mark.parametrize("case", STOCK_FIELDS, ids=str)
def test_stock_fields_the_masked_loss_makes_meaningless(case: BadInput, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    run_case(case, tmp_path, request)


def test_label_smoothing_factor_smooths_classification_targets(tmp_path: Path) -> None:
    """multiclass: cross-entropy with ε spread over the classes; binary / multilabel: 0/1 targets → ε/2, 1 - ε/2;
    regression untouched. Checked against torch's own functions on the present labels of a real batch."""
    import torch.nn.functional as F

    from hf_mtl import MultiTaskTrainer
    from tests.tiny_models import synthetic_rows, timm_model

    eps = 0.2
    model = timm_model().eval()
    trainer = MultiTaskTrainer(model=model, args=stock_args(Context(tmp=tmp_path), label_smoothing_factor=eps),
                               train_dataset=synthetic_rows(8))
    batch = trainer.data_collator(synthetic_rows(8, seed=3, missing=0.3))
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        logits = model(pixel_values=batch["pixel_values"]).logits
    labels = batch["labels"]
    expected = 0.0
    for name in ("tags", "flag"):
        y, z = labels[name].reshape(logits[name].shape).float(), logits[name].float()
        present = y != -100
        expected += F.binary_cross_entropy_with_logits(z[present], y[present] * (1 - eps) + eps / 2)
    y = labels["kind"]
    expected += F.cross_entropy(logits["kind"][y != -100], y[y != -100], label_smoothing=eps)
    y, z = labels["score"].reshape(-1), logits["score"].reshape(-1)
    score = next(s for s in model.task_specs if s.name == "score")  # standardised with the training statistics
    expected += F.mse_loss(z[y != -100], (y[y != -100] - score.target_mean[0]) / score.target_std[0])
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    plain = MultiTaskTrainer(model=model, args=stock_args(Context(tmp=tmp_path)), train_dataset=synthetic_rows(8))
    with torch.no_grad():
        assert abs(float(plain.compute_loss(model, dict(batch))) - float(loss)) > 1e-3


# ------------------------------------------------------------------------------------------ 7. duplicate YAML keys
def recipe_text(ctx: Context, text: str) -> Any:
    from hf_mtl.scripts.arguments import read_recipe_file

    path = ctx.tmp / "recipe.yaml"
    path.write_text(text)
    return read_recipe_file(path)


DUPLICATE_KEYS = [
    BadInput("yaml-duplicate-top-level-key", "recipe",
             lambda c: recipe_text(c, "learning_rate: 1e-4\nmax_steps: 10\nlearning_rate: 3e-4\n"), RecipeError,
             ("recipe.yaml", "duplicate key 'learning_rate'", "lines 1 and 3")),
    BadInput("yaml-duplicate-key-in-a-task", "recipe",
             lambda c: recipe_text(c, "tasks:\n  - name: tags\n    type: multilabel\n    name: kind\n"), RecipeError,
             ("recipe.yaml", "duplicate key 'name'", "lines 2 and 4")),
    BadInput("yaml-duplicate-nested-key", "recipe",
             lambda c: recipe_text(c, "backbone_kwargs:\n  in_chans: 1\n  in_chans: 3\n"), RecipeError,
             ("recipe.yaml", "duplicate key 'in_chans'", "lines 2 and 3")),
]


@pytest.mark.parametrize("case", DUPLICATE_KEYS, ids=str)
def test_duplicate_yaml_keys(case: BadInput, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run_case(case, tmp_path, request)


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    data = recipe_text(Context(tmp=tmp_path), "base: &b {lr: 1, steps: 2}\nrun:\n  <<: *b\n  lr: 3\n")
    assert data["run"] == {"lr": 3, "steps": 2}


# ------------------------------------------------------------------------------------------ 8. pipeline arguments
def classifier() -> Any:
    from transformers import pipeline

    import hf_mtl
    from tests.tiny_models import IMAGE_SIZE, timm_model

    model = timm_model()
    model.set_processor(hf_mtl.build_processor(model, image_size=IMAGE_SIZE))
    return pipeline("multi-task-classification", model=model)


def an_image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))


PIPELINE_ARGUMENTS = [
    BadInput("pipeline-function-to-apply", "predict",
             lambda c: classifier()(an_image(), function_to_apply="sigmoid"), ValueError,
             ("function_to_apply='sigmoid'", "tags: sigmoid", "kind: softmax", "score: none")),
    BadInput("pipeline-unknown-argument", "predict", lambda c: classifier()(an_image(), return_all_scores=True),
             ValueError, ("['return_all_scores']", "top_k", "threshold")),
    BadInput("pipeline-threshold-out-of-range", "predict", lambda c: classifier()(an_image(), threshold=1.5),
             ValueError, ("threshold", "[0, 1]", "1.5")),
    BadInput("pipeline-top-k-zero", "predict", lambda c: classifier()(an_image(), top_k=0), ValueError,
             ("top_k", ">= 1", "None")),
]


@pytest.mark.parametrize("case", PIPELINE_ARGUMENTS, ids=str)
def test_pipeline_arguments(case: BadInput, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run_case(case, tmp_path, request)


def test_pipeline_top_k_none_and_threshold_mean_what_transformers_means() -> None:
    pipe, image = classifier(), an_image()
    every = pipe(image, top_k=None)
    assert len(every["kind"]["top_k"]) == 3 and sum(t["score"] for t in every["kind"]["top_k"]) == pytest.approx(1.0)
    assert len(pipe(image)["kind"]["top_k"]) == 1  # default: the top class
    assert pipe.model.predict(image, top_k=None)["kind"]["top_k"] == every["kind"]["top_k"]
    assert pipe(image, threshold=0.0)["tags"]["labels"] == ["a", "b", "c"]
    assert pipe(image, threshold=1.0)["tags"]["labels"] == []
    flag = every["flag"]["positive_score"]
    assert pipe(image, threshold=0.0)["flag"]["label"] == "yes" and pipe(image, threshold=1.0)["flag"]["label"] == "no"
    assert 0.0 < flag < 1.0
    assert pipe.model.predict(image, threshold=0.0)["tags"]["labels"] == ["a", "b", "c"]
    assert pipe(image, function_to_apply="default") == pipe(image)


# ------------------------------------------------------------------------------------------ 9. base model claims
def test_card_names_a_base_model_only_when_weights_were_loaded(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from hf_mtl import MultiTaskModel
    from hf_mtl.modelcard import create_model_card

    random_init = MultiTaskModel.from_backbone(TIMM_BACKBONE, MIXED_TASKS, weights=False)
    card = create_model_card(random_init, repo_id="me/random")
    assert card.data.base_model is None and random_init.config.backbone_weights is None
    assert "randomly initialised: no pretrained weights were loaded" in card.text
    assert "timm/test_efficientnet" not in card.text

    weights = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in random_init.backbone.model.state_dict().items()}, str(weights))
    from_file = MultiTaskModel.from_backbone(TIMM_BACKBONE, MIXED_TASKS, weights=str(weights))
    card = create_model_card(from_file, repo_id="me/from-file")
    assert from_file.config.backbone_weights == str(weights) and card.data.base_model is None
    assert "pretrained weights loaded from a local file `backbone.safetensors`" in card.text  # no local path

    from_file.save_pretrained(tmp_path / "saved")  # the source travels with the model
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "saved")
    assert reloaded.config.backbone_weights == str(weights)

    reloaded.config.backbone_weights = "timm/test_efficientnet.r160_in1k"  # as load_backbone_weights(True) records
    card = create_model_card(reloaded, repo_id="me/hub")
    assert card.data.base_model == "timm/test_efficientnet.r160_in1k"
    assert "pretrained weights from [timm/test_efficientnet.r160_in1k]" in card.text


# ------------------------------------------------------------------------------------------ 10. errors at the boundary
class TorchRows(torch.utils.data.Dataset):
    """A plain torch map-style Dataset of synthetic rows, with one bad label at ``bad`` (data-set position)."""

    def __init__(self, n: int, bad: int | None = None) -> None:
        from tests.tiny_models import synthetic_rows

        self.rows = synthetic_rows(n, missing=0.0)
        if bad is not None:
            self.rows[bad]["kind"] = "w"

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def stream_rows(n: int, bad: int) -> Any:
    import datasets

    from tests.tiny_models import synthetic_rows

    rows = [{k: v for k, v in row.items() if k != "pixel_values"} for row in synthetic_rows(n, missing=0.0)]
    rows[bad]["tags"] = [1, 2, 0]
    return datasets.IterableDataset.from_generator(lambda: iter(rows))


def label_table(n: int, bad: int | None = None) -> Any:
    """Label-only rows as a ``datasets.Dataset`` whose transform fails if called: label checks must not decode."""
    import datasets

    from tests.tiny_models import synthetic_rows

    rows = [{k: v for k, v in row.items() if k != "pixel_values"} for row in synthetic_rows(n, missing=0.0)]
    if bad is not None:
        rows[bad]["kind"] = 7  # a class id past the 3 classes (an int column: Arrow refuses a name among ids)

    def decode(batch: dict[str, list]) -> dict[str, list]:
        raise RuntimeError("the label check decoded the inputs")

    return datasets.Dataset.from_list(rows).with_transform(decode)


def subset_of_table(bad: int) -> Any:
    """Rows of a table in reverse order: table row ``bad`` is data-set row ``5 - bad``."""
    return torch.utils.data.Subset(label_table(6, bad=bad), list(range(5, -1, -1)))


def concat_of_rows_and_table(bad: int) -> Any:
    from tests.tiny_models import synthetic_rows

    return torch.utils.data.ConcatDataset([synthetic_rows(4, missing=0.0), label_table(4, bad=bad)])


def train_rows_on(ctx: Context, train: Any) -> None:
    from tests.test_bad_inputs import train_on

    train_on(ctx, train)


def long_input_ids() -> Any:
    """Texts tokenized by the user beforehand (no cap possible) reach the model: a clear error, not an index error."""
    from tests.tiny_models import bert_model

    return bert_model()(input_ids=torch.ones(2, 40, dtype=torch.long), attention_mask=torch.ones(2, 40))


def corrupt_saved_model(ctx: Context) -> Any:
    from hf_mtl import MultiTaskModel
    from tests.tiny_models import timm_model

    timm_model().save_pretrained(ctx.tmp / "model")
    (ctx.tmp / "model" / "model.safetensors").write_bytes(b"garbage" * 10)
    return MultiTaskModel.from_pretrained(ctx.tmp / "model")


def corrupt_weights_file(ctx: Context) -> Any:
    from hf_mtl import MultiTaskModel

    (ctx.tmp / "backbone.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    return MultiTaskModel.from_backbone(TIMM_BACKBONE, MIXED_TASKS, weights=str(ctx.tmp / "backbone.safetensors"))


def broken_json_recipe(ctx: Context) -> None:
    from hf_mtl.scripts.train import main
    from tests.recipe_helpers import tiny_recipe, write_image_dataset, write_recipe

    data = write_image_dataset(ctx.tmp / "data", 8)
    recipe = tiny_recipe(data, ctx.tmp / "out")
    train_file = Path(recipe["train_file"])
    train_file.write_text(train_file.read_text() + '{"image": "images/0.png", "kind": \n')
    main([str(write_recipe(ctx.tmp / "recipe.yaml", recipe))])


def predict_cli(ctx: Context, path: str) -> None:
    import os

    from hf_mtl.scripts.predict import main
    from tests.tiny_models import timm_model

    timm_model().save_pretrained(ctx.tmp / "runs" / "model")
    cwd = os.getcwd()
    os.chdir(ctx.tmp)
    try:
        main([path, "x.png"])  # what `hf-mtl predict <path> x.png` runs (the CLI prints "error: ...", exit 2)
    finally:
        os.chdir(cwd)


def check_texts(texts: list[Any]) -> Any:
    from hf_mtl.data import validate_inputs

    return validate_inputs([{"text": t} for t in texts], "text", "text")


def transform_batch(texts: list[Any]) -> Any:
    from hf_mtl import dataset_transform
    from tests.test_pipeline import tiny_tokenizer

    return dataset_transform(tiny_tokenizer(), "text")({"text": texts})


def predict_texts(texts: list[Any]) -> Any:
    from tests.test_pipeline import tiny_tokenizer
    from tests.tiny_models import bert_model

    return bert_model().predict(texts, processor=tiny_tokenizer(), batch_size=4)


def collate_token_ids(rows: list[dict[str, Any]]) -> Any:
    from hf_mtl import MultiTaskDataCollator
    from tests.test_pipeline import tiny_tokenizer

    return MultiTaskDataCollator([TaskSpec("flag", "binary")], tokenizer=tiny_tokenizer())(rows)


def corrupt_balancer_state(ctx: Context) -> Any:
    from hf_mtl.balancing import BALANCER_STATE_NAME, build_balancer, load_balancer_state

    (ctx.tmp / BALANCER_STATE_NAME).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken")
    return load_balancer_state(build_balancer("uncertainty", [TaskSpec("flag", "binary")]), ctx.tmp)


def corrupt_lora_adapter(ctx: Context) -> Any:
    from hf_mtl import MultiTaskModel
    from hf_mtl.transfer import apply_lora, load_lora
    from tests.tiny_models import timm_model

    timm_model().save_pretrained(ctx.tmp / "base")
    apply_lora(MultiTaskModel.from_pretrained(ctx.tmp / "base"), r=2).save_pretrained(ctx.tmp / "adapter")
    (ctx.tmp / "adapter" / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken")
    return load_lora(ctx.tmp / "adapter", ctx.tmp / "base")


def resume_from_corrupt_config(ctx: Context) -> Any:
    from hf_mtl.checkpointing import check_resume_compatible
    from tests.tiny_models import timm_model

    model = timm_model()
    model.save_pretrained(ctx.tmp / "checkpoint-1")
    (ctx.tmp / "checkpoint-1" / "config.json").write_text("{broken")
    return check_resume_compatible(str(ctx.tmp / "checkpoint-1"), model)


def corrupt_feature_cache(ctx: Context) -> Any:
    from hf_mtl.transfer import cache_features, set_trainable_blocks
    from tests.tiny_models import synthetic_dataset, timm_model

    model, data = timm_model(), synthetic_dataset(4)
    set_trainable_blocks(model, 0)
    cache_features(model, data, cache_dir=ctx.tmp, batch_size=4)
    for arrow in ctx.tmp.glob("features-*/*.arrow"):
        arrow.write_bytes(b"not arrow")
    return cache_features(model, data, cache_dir=ctx.tmp, batch_size=4)


BOUNDARY = [
    BadInput("boundary-torch-dataset-bad-label", "data", lambda c: train_rows_on(c, TorchRows(6, bad=4)), ValueError,
             ("train_dataset", "task 'kind'", "column 'kind', row 4", "'w'")),
    BadInput("boundary-torch-dataset-bad-label-past-1000", "data",
             lambda c: train_rows_on(c, TorchRows(1200, bad=1100)), ValueError,
             ("train_dataset", "task 'kind'", "column 'kind', row 1100", "'w'")),
    BadInput("boundary-subset-bad-label-in-data-set-rows", "data",
             lambda c: train_rows_on(c, subset_of_table(bad=1)), ValueError,
             ("train_dataset", "task 'kind'", "column 'kind', row 4", "7")),
    BadInput("boundary-concat-bad-label-in-data-set-rows", "data",
             lambda c: train_rows_on(c, concat_of_rows_and_table(bad=2)), ValueError,
             ("train_dataset", "task 'kind'", "column 'kind', row 6", "7")),
    BadInput("boundary-stream-bad-label", "data", lambda c: train_rows_on(c, stream_rows(6, bad=5)), ValueError,
             ("train_dataset", "task 'tags'", "column 'tags', row 5", "not 0, 1")),
    BadInput("boundary-dict-of-columns-unequal", "data",
             lambda c: train_rows_on(c, {"pixel_values": [np.zeros((3, 8, 8))] * 3, "kind": ["x", "y"]}), ValueError,
             ("train_dataset", "one length", "'pixel_values': 3", "'kind': 2")),
    BadInput("boundary-corrupt-safetensors", "loading", corrupt_saved_model, OSError,
             ("model.safetensors", "model'", "corrupt or truncated")),
    BadInput("boundary-corrupt-backbone-weights", "loading", corrupt_weights_file, ValueError,
             ("backbone.safetensors", "not readable safetensors")),
    BadInput("boundary-recipe-json-line-broken", "recipe", broken_json_recipe, RecipeError,
             ("data.jsonl", "cannot be read")),
    BadInput("boundary-pretokenized-text-too-long", "data", lambda c: long_input_ids(), ValueError,
             ("input_ids have 40 tokens", "32 position embeddings", "max_length=32")),
    BadInput("boundary-text-lone-surrogate", "data",  # (Arrow refuses such text: a list of rows or a stream)
             lambda c: check_texts(["the cat", "a dog", "big mat", "a \ud800 cat"]), ValueError,
             ("column 'text', row 3", "lone surrogate", "character 2")),
    BadInput("boundary-text-number-in-transform", "data", lambda c: transform_batch(["the cat", 5]), ValueError,
             ("column 'text', batch row 1", "int 5")),
    BadInput("boundary-text-list-in-transform", "data", lambda c: transform_batch([["the", "cat"]]), ValueError,
             ("column 'text', batch row 0", "list")),
    BadInput("boundary-tokenizer-exception-at-predict", "predict",
             lambda c: predict_texts(["the cat"] * 5 + ["a \ud800 cat"]), ValueError,
             ("input 5", "the tokenizer (BertTokenizer) fails", "TypeError")),
    BadInput("boundary-predict-none-past-first-batch", "predict",
             lambda c: predict_texts(["the cat"] * 6 + [None]), ValueError, ("input 6", "NoneType")),
    BadInput("boundary-collator-nested-token-ids", "data",
             lambda c: collate_token_ids([{"input_ids": [2, 5, 3]}, {"input_ids": [[2], [5]]}]), ValueError,
             ("model input 'input_ids', batch row 1", "flat list of token ids")),
    BadInput("boundary-corrupt-balancer-state", "loading", corrupt_balancer_state, ValueError,
             ("task_balancer.safetensors", "cannot be read")),
    BadInput("boundary-corrupt-lora-adapter", "loading", corrupt_lora_adapter, ValueError,
             ("adapter_model.safetensors", "cannot be read")),
    BadInput("boundary-resume-corrupt-config", "training", resume_from_corrupt_config, ValueError,
             ("checkpoint-1", "config.json", "not a JSON object")),
    BadInput("boundary-corrupt-feature-cache", "loading", corrupt_feature_cache, ValueError,
             ("feature cache", "features-", "delete the folder")),
    BadInput("boundary-predict-folder-typo", "predict", lambda c: predict_cli(c, "runs/modle"), RecipeError,
             ("'runs/modle'", "no such folder", "['model']")),
    BadInput("boundary-predict-relative-path-missing", "predict", lambda c: predict_cli(c, "./nope"), RecipeError,
             ("'./nope'", "no such folder")),
    BadInput("boundary-predict-deep-path-missing", "predict", lambda c: predict_cli(c, "a/b/c"), RecipeError,
             ("'a/b/c'", "no such folder")),
]


@pytest.mark.parametrize("case", BOUNDARY, ids=str)
def test_errors_at_the_boundary(case: BadInput, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    run_case(case, tmp_path, request)


def test_dataframe_and_dict_of_columns_train(tmp_path: Path) -> None:
    """A pandas DataFrame or a dict of columns is turned into a datasets.Dataset (was a KeyError at step 1)."""
    import pandas as pd

    from hf_mtl import MultiTaskTrainer
    from tests.test_bad_inputs import args
    from tests.tiny_models import synthetic_rows, timm_model

    rows = synthetic_rows(4, missing=0.0)
    columns = {key: [row[key].numpy() if key == "pixel_values" else row[key] for row in rows] for key in rows[0]}
    for train in (columns, pd.DataFrame(columns)):
        trainer = MultiTaskTrainer(model=timm_model(), args=args(Context(tmp=tmp_path), save_strategy="no"),
                                   train_dataset=train, eval_dataset=train)
        trainer.train()
        assert trainer.state.global_step == 2
        assert "eval_loss" in trainer.evaluate()


def test_a_stream_is_checked_on_its_first_validate_stream_rows(tmp_path: Path) -> None:
    """``validate_stream_rows`` rows of a stream are checked up front; a map-style set is checked in full."""
    from hf_mtl import MultiTaskTrainer, validate_labels
    from hf_mtl.data import is_map_style
    from tests.test_bad_inputs import args
    from tests.tiny_models import MIXED_TASKS as tasks
    from tests.tiny_models import timm_model

    specs = [TaskSpec.from_dict(t) for t in tasks]
    with pytest.raises(ValueError, match="row 5"):
        validate_labels(stream_rows(8, bad=5), specs, max_rows=6)
    validate_labels(stream_rows(8, bad=5), specs, max_rows=5)  # 5 rows checked: the bad one is further on
    assert not is_map_style(stream_rows(8, bad=5)) and is_map_style(TorchRows(2)) and is_map_style(subset_of_table(1))
    with pytest.raises(ValueError, match="row 5"):
        MultiTaskTrainer(model=timm_model(), args=args(Context(tmp=tmp_path), validate_stream_rows=6),
                         train_dataset=stream_rows(8, bad=5))
    MultiTaskTrainer(model=timm_model(), args=args(Context(tmp=tmp_path), validate_stream_rows=5),
                     train_dataset=stream_rows(8, bad=5))
    assert validate_labels(subset_of_table(bad=None), specs)["kind"] == 6  # labels only: the transform never ran


def test_a_bad_label_past_the_checked_rows_names_its_batch_row(tmp_path: Path) -> None:
    from tests.tiny_models import synthetic_rows

    rows = synthetic_rows(4, missing=0.0)
    rows[2]["kind"] = "w"
    from hf_mtl import MultiTaskDataCollator
    from tests.tiny_models import MIXED_TASKS as tasks

    with pytest.raises(ValueError, match="column 'kind', batch row 2"):
        MultiTaskDataCollator([TaskSpec.from_dict(t) for t in tasks])(rows)


# ------------------------------------------------------------------------------------------ 11. README counts
TABLES = {
    "integer label names": INTEGER_LABELS,
    "metric-key collisions": METRIC_KEYS,
    "image values": IMAGE_VALUES,
    "resuming another model": RESUME,
    "stock training arguments": STOCK_FIELDS,
    "duplicate YAML keys": DUPLICATE_KEYS,
    "pipeline arguments": PIPELINE_ARGUMENTS,
    "errors at the boundary": BOUNDARY,
}


def test_readme_lists_every_class_with_its_count() -> None:
    import re

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    for name, cases in TABLES.items():
        assert f"{name} ({len(cases)})" in readme, f"README's reliability section must list '{name} ({len(cases)})'"
    total = sum(len(cases) for cases in TABLES.values())
    assert f"one table per class, {total} kinds" in readme
    ids = [case.id for cases in TABLES.values() for case in cases]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"[a-z0-9-]+", i) for i in ids)
