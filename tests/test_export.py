"""ONNX export: one named output per task, dynamic batch (and text length), onnxruntime == PyTorch, predict from it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import hf_mtl
from hf_mtl.export import OnnxMultiTaskModel, example_inputs, export_onnx
from tests.recipe_helpers import run_cli
from tests.test_pipeline import assert_same, sample_images, tiny_tokenizer
from tests.tiny_models import IMAGE_SIZE, bert_model, timm_model

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.mark.slow  # fresh interpreters (CLI / app server)
def test_export_image_model_cli_and_predict_from_the_graph(tmp_path):
    model = timm_model(seed=1)
    processor = hf_mtl.build_processor(model, image_size=IMAGE_SIZE)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)

    result = run_cli("export", "onnx", str(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max abs diff" in result.stdout
    report = json.loads((folder / "model.onnx.json").read_text())
    assert report["outputs"] == ["tags", "kind", "score", "flag"] and report["inputs"] == ["pixel_values"]
    assert report["exporter"] == "dynamo" and report["max_abs_diff"] <= 1e-4

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["tags", "kind", "score", "flag"]
    pixels = example_inputs(model, processor, batch_size=5)["pixel_values"]
    outputs = dict(zip(["tags", "kind", "score", "flag"], session.run(None, {"pixel_values": pixels.numpy()})))
    assert outputs["tags"].shape == (5, 3) and outputs["kind"].shape == (5, 3) and outputs["flag"].shape[0] == 5
    expected = model.eval()(pixel_values=pixels).logits
    for name, value in outputs.items():
        np.testing.assert_allclose(value, expected[name].detach().numpy(), atol=1e-4, rtol=0)

    images = []
    for i, image in enumerate(sample_images(3)):
        image.save(tmp_path / f"{i}.png")
        images.append(str(tmp_path / f"{i}.png"))
    from_graph = OnnxMultiTaskModel.from_pretrained(folder).predict(images, top_k=2, batch_size=2)
    model.set_processor(processor)
    assert_same(from_graph, model.predict(images, top_k=2), tol=1e-4)
    torch_lines = run_cli("predict", str(folder), *images, "--top_k", "2")
    onnx_lines = run_cli("predict", str(folder), *images, "--top_k", "2", "--onnx")
    assert onnx_lines.returncode == 0, onnx_lines.stderr[-3000:]
    assert_same([json.loads(line) for line in onnx_lines.stdout.splitlines()],
                [json.loads(line) for line in torch_lines.stdout.splitlines()], tol=1e-4)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_export_text_model_has_dynamic_batch_and_length(tmp_path, exporter):
    model = bert_model(seed=2)
    report = export_onnx(model, tmp_path / "text.onnx", exporter=exporter)
    assert report["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert report["max_abs_diff"] <= 1e-4, report  # checked at another batch size and length than traced
    graph = OnnxMultiTaskModel(tmp_path / "text.onnx", model.config, tiny_tokenizer())
    model.set_processor(tiny_tokenizer())
    texts = ["a red cat sat on the mat", "the big dog", "blue", "a small green dog is on the big red mat"]
    assert_same(graph.predict(texts, top_k=3, batch_size=3), model.predict(texts, top_k=3), tol=1e-4)
    assert_same(graph.predict("the big dog"), model.predict("the big dog"), tol=1e-4)


@pytest.mark.slow  # fresh interpreters (CLI / app server)
def test_predict_from_a_missing_graph_is_a_clear_error(tmp_path):
    model = timm_model()
    model.save_pretrained(tmp_path / "model")
    result = run_cli("predict", str(tmp_path / "model"), "x.png", "--onnx")
    assert result.returncode == 2
    assert "hf-mtl export onnx" in result.stderr and len(result.stderr.strip().splitlines()) == 1
