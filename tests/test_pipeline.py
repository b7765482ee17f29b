"""`MultiTaskModel.predict` and the `multi-task-classification` pipeline on images and texts (tiny random backbones)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import BertTokenizer, pipeline

import hf_mtl
from hf_mtl.pipeline import decode_logits
from tests.tiny_models import IMAGE_SIZE, MIXED_TASKS, bert_model, timm_model

WORDS = "a the cat dog red blue green is on mat big small sat".split()


def tiny_tokenizer() -> BertTokenizer:
    """A real WordPiece tokenizer over a 19-token vocabulary (fits the tiny BERT's 64 embeddings)."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)})


def sample_images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture
def image_model():
    model = timm_model(tasks=[dict(MIXED_TASKS[0]), dict(MIXED_TASKS[1], dropout=0.5), *MIXED_TASKS[2:]])
    model.set_processor(hf_mtl.build_processor(model, image_size=IMAGE_SIZE))
    return model


def assert_same(a, b, tol: float = 1e-5) -> None:
    """Predictions equal up to float noise (batch composition changes the last bits of conv outputs)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key], tol)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y, tol)
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=tol)
    else:
        assert a == b


def check_structure(prediction: dict, model, top_k: int = 1) -> None:
    assert list(prediction) == model.config.task_names
    tags, kind, score, flag = (prediction[name] for name in ("tags", "kind", "score", "flag"))
    assert set(tags) == {"labels", "scores"} and list(tags["scores"]) == ["a", "b", "c"]
    assert all(0.0 <= p <= 1.0 for p in tags["scores"].values())
    assert set(tags["labels"]) <= {"a", "b", "c"}
    assert len(kind["top_k"]) == top_k and kind["label"] == kind["top_k"][0]["label"]
    assert [t["score"] for t in kind["top_k"]] == sorted((t["score"] for t in kind["top_k"]), reverse=True)
    assert kind["label"] in ("x", "y", "z")
    assert set(score) == {"value"} and math.isfinite(score["value"])
    assert flag["label"] in ("no", "yes") and 0.0 <= flag["score"] <= 1.0


def test_predict_images_pil_array_path_agree_and_match_forward(image_model, tmp_path) -> None:
    image = sample_images(1)[0]
    path = tmp_path / "image.png"
    image.save(path)
    by_kind = image_model.predict([image, np.asarray(image), str(path), path], top_k=2)
    assert len(by_kind) == 4
    for prediction in by_kind:
        check_structure(prediction, image_model, top_k=2)
        assert prediction == by_kind[0]  # same pixels, whatever the container

    # Same numbers as a plain forward pass through the activations.
    image_model.eval()
    pixel_values = hf_mtl.preprocess(image_model.get_processor(), [image])["pixel_values"]
    with torch.no_grad():
        logits = image_model(pixel_values=pixel_values).logits
    assert by_kind[0]["score"]["value"] == pytest.approx(float(logits["score"][0, 0]), abs=1e-5)
    probs = torch.softmax(logits["kind"][0], dim=-1)
    assert by_kind[0]["kind"]["top_k"][0]["score"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert by_kind[0]["tags"]["scores"]["a"] == pytest.approx(float(torch.sigmoid(logits["tags"][0, 0])), abs=1e-5)

    single = image_model.predict(image, top_k=2)  # one input → one dict
    assert_same(single, by_kind[0])


def test_thresholds_from_the_config_are_applied(image_model) -> None:
    image = sample_images(1)[0]
    before = image_model.predict(image)
    p = before["tags"]["scores"]
    flag = before["flag"]["positive_score"]  # P(yes); `score` is the probability of the predicted label
    # Just below a's and c's probability, just above b's: exactly a and c are predicted.
    thresholds = [p["a"] - 1e-3, p["b"] + 1e-3, p["c"] - 1e-3]
    specs = image_model.config.task_specs
    specs[0].thresholds = thresholds
    specs[3].thresholds = [flag + 1e-3]
    image_model.config.set_tasks(specs)
    after = image_model.predict(image)
    assert after["tags"]["labels"] == ["a", "c"]
    assert after["tags"]["scores"] == p
    assert after["flag"] == {"label": "no", "score": pytest.approx(1 - flag), "positive_score": flag}
    specs[3].thresholds = [flag - 1e-3]
    image_model.config.set_tasks(specs)
    assert image_model.predict(image)["flag"] == {"label": "yes", "score": flag, "positive_score": flag}


def test_predict_is_batched_no_grad_in_eval_mode_and_restores_training(image_model) -> None:
    images = sample_images(5)
    seen = []

    def hook(module, args, kwargs, output):
        seen.append((module.training, torch.is_grad_enabled(), len(kwargs["pixel_values"])))

    handle = image_model.register_forward_hook(hook, with_kwargs=True)
    image_model.train()
    first = image_model.predict(images, batch_size=2)
    handle.remove()
    assert seen == [(False, False, 2), (False, False, 2), (False, False, 1)]
    assert image_model.training  # the caller's mode is restored
    again = image_model.predict(images, batch_size=5)  # dropout is off: deterministic, batch size does not matter
    assert_same(first, again)


def test_predict_texts_with_the_tokenizer() -> None:
    model = bert_model()
    model.set_processor(tiny_tokenizer())
    texts = ["a red cat sat on the mat", "the big dog", "blue"]
    predictions = model.predict(texts, top_k=3, batch_size=2)
    assert len(predictions) == 3
    for prediction in predictions:
        check_structure(prediction, model, top_k=3)
        assert sum(t["score"] for t in prediction["kind"]["top_k"]) == pytest.approx(1.0, abs=1e-5)
    assert_same(model.predict("the big dog", top_k=3), predictions[1])  # unpadded = inside a padded batch


def test_pipeline_returns_what_predict_returns_on_images_and_texts(image_model, tmp_path) -> None:
    images = sample_images(2)
    classifier = pipeline("multi-task-classification", model=image_model)
    assert isinstance(classifier, hf_mtl.MultiTaskClassificationPipeline)
    expected = image_model.predict(images, top_k=2)
    assert_same(classifier(images[0], top_k=2), expected[0])
    assert_same(classifier(images, top_k=2, batch_size=2), expected)

    text_model = bert_model()
    tokenizer = tiny_tokenizer()
    text_model.save_pretrained(tmp_path / "text-model")
    tokenizer.save_pretrained(tmp_path / "text-model")
    # From a folder: the pipeline loads the model through AutoModel and the tokenizer saved beside it.
    from_folder = pipeline("multi-task-classification", model=str(tmp_path / "text-model"))
    text_model.set_processor(tokenizer)
    texts = ["a red cat", "the dog sat on a big blue mat"]
    expected = text_model.predict(texts)
    assert_same(from_folder(texts, batch_size=2), expected)
    assert_same(from_folder(texts[0]), expected[0])


def test_decode_logits_and_bad_input_errors(image_model) -> None:
    specs = image_model.task_specs
    logits = {
        "tags": torch.tensor([[10.0, -10.0, 0.0]]),
        "kind": torch.tensor([[0.0, 5.0, 1.0]]),
        "score": torch.tensor([[2.5]]),
        "flag": torch.tensor([[3.0]]),
    }
    (decoded,) = decode_logits(specs, logits, top_k=2)
    assert decoded["tags"]["labels"] == ["a", "c"]  # sigmoid(0) = 0.5 reaches the default threshold
    assert [t["label"] for t in decoded["kind"]["top_k"]] == ["y", "z"]
    assert decoded["score"] == {"value": 2.5}
    assert decoded["flag"]["label"] == "yes"
    with pytest.raises(ValueError, match="top_k"):
        decode_logits(specs, logits, top_k=0)
    with pytest.raises(ValueError, match="flag"):
        decode_logits(specs, {k: v for k, v in logits.items() if k != "flag"})
    with pytest.raises(FileNotFoundError, match="nope.png"):
        image_model.predict(["nope.png"])


def test_predict_follows_the_model_dtype(image_model) -> None:
    image = sample_images(1)[0]
    expected = image_model.predict(image)
    image_model.to(torch.bfloat16)
    got = image_model.predict(image)
    assert list(got) == list(expected) and got["kind"]["label"] in ("x", "y", "z")
    assert got["score"]["value"] == pytest.approx(expected["score"]["value"], abs=0.1)
    assert_same(pipeline("multi-task-classification", model=image_model)(image), got)

