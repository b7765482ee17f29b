"""The `ordinal` task type (CORAL): labels, masked loss, decoding, metrics, and the whole path from a recipe to a saved,
reloaded model, its card, `predict` and the pipeline."""

from __future__ import annotations

import json
import math

import evaluate
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, pipeline

import hf_mtl
from hf_mtl import MISSING, MultiTaskTrainer, MultiTaskTrainingArguments, TaskSpec
from hf_mtl.metrics import build_compute_metrics, metric_path, reported_metric_keys
from hf_mtl.modelcard import create_model_card
from hf_mtl.tasks import TASK_TYPES, CoralLayer, OrdinalTask
from tests.recipe_helpers import tiny_recipe, write_image_dataset, write_recipe
from tests.tiny_models import IMAGE_SIZE, images, synthetic_rows, timm_model

GRADES = ["low", "mid", "high", "top"]
GRADE = {"name": "grade", "type": "ordinal", "labels": GRADES}


def grade_of(score: float) -> str:
    """The sum of the three channel means (in [-3, 3]) cut into 4 ordered grades."""
    return GRADES[int(np.digitize(score, [-0.75, 0.0, 0.75]))]


def graded_rows(n: int, seed: int, missing: float = 0.2) -> list[dict]:
    rows = synthetic_rows(n, seed=seed, missing=missing)
    for row in rows:
        row["grade"] = None if row["score"] is None else grade_of(row["score"])
    return rows


def test_spec_rules_match_multiclass():
    spec = TaskSpec(**GRADE)
    assert spec.output_size == 3 and spec.label_names == GRADES and spec.output_names == ["> low", "> mid", "> high"]
    assert TaskSpec(name="stars", type="ordinal", num_outputs=4).label_names == [f"stars_{i}" for i in range(5)]
    for bad, message in [
        ({"labels": ["only"]}, "at least 2 classes"),
        ({"labels": None}, "needs `labels` with at least 2 class names"),
        ({"labels": GRADES, "num_outputs": 4}, "disagrees"),
        ({"labels": ["a", "a"]}, "duplicate label names"),
        ({"labels": GRADES, "pos_weight": [1.0] * 3}, "do not apply to ordinal"),
        ({"labels": GRADES, "thresholds": [0.5] * 3}, "do not apply to ordinal"),
    ]:
        with pytest.raises(ValueError, match=message):
            TaskSpec(**{**GRADE, **bad})


def test_encoding_names_ids_and_missing():
    spec, kind = TaskSpec(**GRADE), TASK_TYPES["ordinal"]
    assert [kind.encode(spec, v, "row 0") for v in ("low", "top", 2, 1.0, None, float("nan"), MISSING)] == [
        0, 3, 2, 1, MISSING, MISSING, MISSING
    ]
    for bad in ("worst", 4, -1, 1.5, True):
        with pytest.raises(ValueError, match="task 'grade', row 0: (unknown class|class)"):
            kind.encode(spec, bad, "row 0")


def test_coral_head_shares_one_weight_vector():
    model = timm_model(tasks=[GRADE])
    layer = model.heads["grade"].layers[-1]
    assert isinstance(layer, CoralLayer) and layer.linear.weight.shape[0] == 1 and layer.bias.shape == (3,)
    logits = model(pixel_values=images(4)).logits["grade"]
    differences = logits - logits[:, :1]  # w·x is shared: only the biases tell the K-1 logits apart
    assert torch.allclose(differences, (layer.bias - layer.bias[0]).expand_as(differences), atol=1e-6)


def test_loss_is_masked_binary_cross_entropy_of_the_levels():
    spec = TaskSpec(**GRADE)
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    labels = torch.tensor([0, 3, MISSING, 2, MISSING])
    total, count = spec.task_type.loss_terms(spec, logits, labels)
    levels = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 1, 0]], dtype=torch.float32)
    expected = F.binary_cross_entropy_with_logits(logits[[0, 1, 3]], levels, reduction="sum")
    assert int(count) == 3 and torch.allclose(total, expected)
    total.backward()
    assert torch.all(logits.grad[[2, 4]] == 0)  # missing samples get no gradient
    none, zero = spec.task_type.loss_terms(spec, logits, torch.full((5,), MISSING))
    assert none.item() == 0.0 and int(zero) == 0


def test_decode_gives_a_class_its_probability_and_all_probabilities():
    spec, kind = TaskSpec(**GRADE), OrdinalTask()
    decoded = kind.decode(spec, torch.tensor([0.9, 0.7, 0.2]))
    assert decoded["label"] == "high" and list(decoded["probabilities"]) == GRADES
    assert decoded["probabilities"] == pytest.approx({"low": 0.1, "mid": 0.2, "high": 0.5, "top": 0.2})
    assert decoded["score"] == pytest.approx(0.5)
    # non-monotone P(class > k) are made non-increasing: probabilities stay >= 0 and sum to 1
    odd = kind.decode(spec, torch.tensor([0.3, 0.8, 0.6]))
    assert odd["label"] == "high" and min(odd["probabilities"].values()) >= 0
    assert sum(odd["probabilities"].values()) == pytest.approx(1.0)


def test_metric_module_accuracy_mae_and_quadratic_weighted_kappa():
    metric = evaluate.load(metric_path("ordinal"), keep_in_memory=True)
    predictions, references = [0, 1, 3, 2, 2, 0], [0, 2, 3, 0, MISSING, 1]
    result = metric.compute(predictions=predictions, references=references, label_names=GRADES)
    y, p = np.array([0, 2, 3, 0, 1]), np.array([0, 1, 3, 2, 0])
    k = len(GRADES)
    observed = np.zeros((k, k))
    for a, b in zip(y, p):
        observed[a, b] += 1
    expected = np.outer(np.bincount(y, minlength=k), np.bincount(p, minlength=k)) / len(y)
    weights = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2 / (k - 1) ** 2
    qwk = 1 - (weights * observed).sum() / (weights * expected).sum()
    assert result["accuracy"] == pytest.approx(2 / 5) and result["mae"] == pytest.approx(4 / 5)
    assert result["qwk"] == pytest.approx(qwk)
    assert result["per_label"]["top"] == {"f1": 1.0, "support": 1}
    lonely = metric.compute(predictions=[1, 1], references=[1, MISSING], label_names=GRADES)
    assert lonely["qwk"] is None and lonely["accuracy"] == 1.0  # kappa is undefined with one class, never faked


def test_compute_metrics_keys_and_per_label_table():
    spec = TaskSpec(**GRADE)
    compute = build_compute_metrics([spec])
    logits = np.array([[4.0, 4.0, 4.0], [-4.0, -4.0, -4.0], [4.0, -4.0, -4.0]])
    out = compute((({"grade": logits},), {"grade": np.array([3, 1, MISSING])}))
    assert out == pytest.approx({"grade_accuracy": 0.5, "grade_mae": 0.5, "grade_qwk": out["grade_qwk"],
                                 "grade_mid_f1": 0.0, "grade_top_f1": 1.0, "main_score": out["grade_qwk"]})
    assert set(compute.last.per_label["grade"]) == set(GRADES)
    assert {"grade_accuracy", "grade_mae", "grade_qwk"} <= reported_metric_keys(compute, [spec])


def test_train_metrics_save_load_predict_pipeline_and_card(tmp_path):
    """Trained with the Trainer, the ordinal head beats the constant predictor; everything downstream agrees."""
    torch.manual_seed(0)
    model = timm_model(tasks=[{"name": "tags", "type": "multilabel", "labels": ["a", "b", "c"]}, GRADE])
    train, test = graded_rows(384, seed=1), graded_rows(128, seed=2, missing=0.0)
    args = MultiTaskTrainingArguments(
        output_dir=str(tmp_path / "run"), report_to=[], disable_tqdm=True, save_strategy="no", use_cpu=True, seed=0,
        per_device_train_batch_size=32, num_train_epochs=12, learning_rate=3e-3, lr_scheduler_type="constant",
        per_device_eval_batch_size=64,
    )
    compute = build_compute_metrics(model)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=train, eval_dataset=test,
                               compute_metrics=compute)
    trainer.train()
    metrics = trainer.evaluate()
    truth = np.array([GRADES.index(r["grade"]) for r in test])
    constant_mae = np.abs(truth - np.median(truth)).mean()  # the best constant predictor of MAE
    assert metrics["eval_grade_mae"] < 0.6 * constant_mae, (metrics["eval_grade_mae"], constant_mae)
    assert metrics["eval_grade_accuracy"] > 0.5 and metrics["eval_grade_qwk"] > 0.5, metrics

    card = str(create_model_card(model, metrics=metrics, per_label_metrics=compute.last.per_label))
    assert "- **Type:** ordinal" in card and "CORAL" in card and "| grade | qwk |" in card
    assert "`grade` (ordinal) gives the predicted class, its probability and every class's probability" in card

    model.save_pretrained(tmp_path / "saved")
    loaded = AutoModel.from_pretrained(tmp_path / "saved").eval()
    pixels = torch.stack([r["pixel_values"] for r in test[:8]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(pixel_values=pixels).logits["grade"], model(pixel_values=pixels).logits["grade"])
    loaded.set_processor(hf_mtl.build_processor(loaded, image_size=IMAGE_SIZE))
    image = (pixels[0].permute(1, 2, 0).clamp(-1.5, 1.5).add(1.5).mul(85)).to(torch.uint8).numpy()
    predicted = loaded.predict(image)["grade"]
    assert predicted["label"] in GRADES and set(predicted) == {"label", "score", "probabilities"}
    assert sum(predicted["probabilities"].values()) == pytest.approx(1.0)
    assert predicted["score"] == pytest.approx(predicted["probabilities"][predicted["label"]])
    from_pipeline = pipeline("multi-task-classification", model=loaded)(image)["grade"]
    assert from_pipeline["label"] == predicted["label"]
    assert from_pipeline["score"] == pytest.approx(predicted["score"], abs=1e-5)


def test_recipe_with_an_ordinal_task_trains_evaluates_and_writes_the_card(tmp_path, capsys):
    from hf_mtl.scripts.train import main

    data_file = write_image_dataset(tmp_path / "data", 24)
    rows = [json.loads(line) for line in data_file.read_text().splitlines()]
    for row in rows:
        row["grade"] = None if row["score"] is None else grade_of(row["score"])
    data_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tasks = [{"name": "tags", "type": "multilabel", "labels": ["a", "b", "c"]}, GRADE]
    recipe = tiny_recipe(data_file, tmp_path / "out", tasks=tasks, max_steps=2)
    metrics = main([str(write_recipe(tmp_path / "r.yaml", recipe))])
    assert {"eval_grade_accuracy", "eval_grade_mae"} <= set(metrics)
    assert all(math.isfinite(metrics[k]) for k in ("eval_grade_accuracy", "eval_grade_mae"))
    out = capsys.readouterr().out
    assert "[grade] (ordinal) accuracy=" in out and "mae=" in out
    card = (tmp_path / "out" / "README.md").read_text()
    assert "- **Type:** ordinal" in card and "| grade | mae |" in card
    reloaded = AutoModel.from_pretrained(tmp_path / "out")
    assert reloaded.config.get_task("grade").type == "ordinal"
