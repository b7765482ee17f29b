"""One name per outcome: a binary task's two outcomes and a regression task's outputs are named the same by the
metrics, the card, `predict` (PyTorch, pipeline, ONNX, the CLI) and the demo; `score` is the probability of the
predicted label, `positive_score` the positive label's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import pipeline

import hf_mtl
from hf_mtl import TaskSpec
from hf_mtl.metrics import evaluate_predictions
from tests.template_data import run_main
from tests.test_pipeline import sample_images
from tests.tiny_models import IMAGE_SIZE, timm_model

UNNAMED = [
    {"name": "defect", "type": "binary"},  # no labels: [not_defect, defect]
    {"name": "sharp", "type": "binary", "labels": ["sharp"]},  # [positive] only: [not_sharp, sharp]
    {"name": "ink", "type": "regression"},  # one output: named after the task
    {"name": "size", "type": "regression", "num_outputs": 2},  # several outputs: size_0, size_1
]


def test_outcome_names_follow_the_task_type():
    defect, sharp, ink, size = (TaskSpec.from_dict(t) for t in UNNAMED)
    assert defect.label_names == ["not_defect", "defect"] and defect.output_names == ["defect"]
    assert sharp.label_names == ["not_sharp", "sharp"] and sharp.output_names == ["sharp"]
    assert TaskSpec("flag", "binary", labels=["no", "yes"]).label_names == ["no", "yes"]
    assert ink.label_names == ink.output_names == ["ink"] and size.output_names == ["size_0", "size_1"]
    # the names are labels too: a binary column may hold them
    assert [defect.task_type.encode(defect, v, "row 0") for v in ("defect", "not_defect", True, 0)] == [1, 0, 1, 0]
    with pytest.raises(ValueError, match=r"unknown label name 'yes'; known labels: \['not_defect', 'defect'\]"):
        defect.task_type.encode(defect, "yes", "row 0")


@pytest.mark.slow  # an ONNX export (about a minute on this machine)
def test_metrics_card_predict_onnx_cli_and_demo_use_the_same_names(tmp_path):
    pytest.importorskip("onnxruntime")
    from hf_mtl.demo import describe
    from hf_mtl.export import OnnxMultiTaskModel, export_onnx
    from hf_mtl.modelcard import create_model_card

    model = timm_model(UNNAMED, seed=3)
    processor = hf_mtl.build_processor(model, image_size=IMAGE_SIZE)
    model.set_processor(processor)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    specs = model.task_specs

    rng = np.random.default_rng(0)
    logits = {s.name: rng.normal(size=(8, s.output_size)) for s in specs}
    labels = {"defect": np.arange(8) % 2, "sharp": (np.arange(8) // 2) % 2, "ink": rng.normal(size=8),
              "size": rng.normal(size=(8, 2))}
    evaluation = evaluate_predictions(specs, logits, labels)
    assert list(evaluation.per_label["defect"]) == ["defect"] and list(evaluation.per_label["sharp"]) == ["sharp"]
    assert list(evaluation.per_label["ink"]) == ["ink"] and list(evaluation.per_label["size"]) == ["size_0", "size_1"]
    assert not [key for key in evaluation.metrics if "_0_" in key and not key.startswith("size_")]

    card = str(create_model_card(model, metrics={f"eval_{k}": v for k, v in evaluation.metrics.items()},
                                 per_label_metrics=evaluation.per_label))
    assert "not_defect" in card and "not_sharp" in card  # the task sections list both outcomes
    assert "**Thresholds:** `defect` 0.5" in card and "**Thresholds:** `sharp` 0.5" in card
    assert "defect_0" not in card and "ink_0" not in card

    images = sample_images(4)
    torch_out = model.predict(images)
    pipe_out = pipeline("multi-task-classification", model=model)(images)
    for decoded in torch_out:
        p = decoded["defect"]["positive_score"]
        expected = "defect" if p >= 0.5 else "not_defect"
        assert decoded["defect"] == {"label": expected, "score": pytest.approx(p if p >= 0.5 else 1 - p),
                                     "positive_score": p}
        assert decoded["sharp"]["label"] in ("sharp", "not_sharp") and decoded["sharp"]["score"] >= 0.5
        assert set(decoded["ink"]) == {"value"} and set(decoded["size"]["values"]) == {"size_0", "size_1"}
    for a, b in zip(pipe_out, torch_out):
        assert a["defect"] == pytest.approx(b["defect"], abs=1e-5) and a["ink"] == pytest.approx(b["ink"], abs=1e-5)

    report = export_onnx(model, folder / "model.onnx", processor=processor)
    assert report["max_abs_diff"] <= 1e-4
    onnx_out = OnnxMultiTaskModel.from_pretrained(folder).predict(images)
    for a, b in zip(onnx_out, torch_out):
        assert a["defect"]["label"] == b["defect"]["label"] and set(a["defect"]) == set(b["defect"])
        assert a["defect"]["score"] == pytest.approx(b["defect"]["score"], abs=1e-4)
        assert set(a["size"]["values"]) == set(b["size"]["values"])

    image = tmp_path / "x.png"
    images[0].save(image)
    for extra in ([], ["--onnx"]):
        code, out = run_main("predict", str(folder), str(image), *extra)
        line = json.loads(out.strip().splitlines()[-1])
        assert code == 0 and line["defect"]["label"] == torch_out[0]["defect"]["label"]
        assert set(line["defect"]) == {"label", "score", "positive_score"}

    decoded = torch_out[0]["defect"]
    text = describe(specs[0], decoded)
    assert f"{decoded['label']} ({decoded['score']:.3f})" in text and "thresholds: defect 0.50" in text
