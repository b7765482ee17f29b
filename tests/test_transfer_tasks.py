"""Tasks on a trained model: add, replace (new label set), remove; config stays consistent and save/load round-trips."""

from __future__ import annotations

import pytest
import torch

from hf_mtl import MultiTaskModel, MultiTaskTrainer, MultiTaskTrainingArguments
from hf_mtl.transfer import apply_lora
from tests.tiny_models import images, synthetic_dataset, timm_model

COLOR = {"name": "color", "type": "multiclass", "labels": ["red", "green", "blue"], "hidden_sizes": [8, 8]}


def _logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(pixel_values=x).logits


def test_add_replace_remove_then_save_and_load(tmp_path):
    model = timm_model()
    x = images(4)
    before = _logits(model, x)
    backbone = {n: t.clone() for n, t in model.backbone.state_dict().items()}

    model.add_task(COLOR)
    after_add = _logits(model, x)
    assert model.config.task_names == ["tags", "kind", "score", "flag", "color"]
    assert after_add["color"].shape == (4, 3) and len(model.heads["color"].layers) == 8
    for task in before:
        torch.testing.assert_close(after_add[task], before[task], rtol=0, atol=0)

    model.replace_task({"name": "tags", "type": "multilabel", "labels": ["a", "b", "c", "d"]})
    after_replace = _logits(model, x)
    assert model.config.task_names == ["tags", "kind", "score", "flag", "color"], "the order is kept"
    assert model.config.get_task("tags").labels == ["a", "b", "c", "d"] and after_replace["tags"].shape == (4, 4)
    for task in ("kind", "score", "flag", "color"):
        torch.testing.assert_close(after_replace[task], after_add[task], rtol=0, atol=0)

    model.replace_task({"name": "grade", "type": "regression"}, old_name="score")
    model.remove_task("flag")
    assert model.config.task_names == ["tags", "kind", "grade", "color"]
    assert list(model.heads) == model.config.task_names
    assert all(torch.equal(t, backbone[n]) for n, t in model.backbone.state_dict().items())

    model.save_pretrained(tmp_path)
    loaded = MultiTaskModel.from_pretrained(tmp_path)
    assert loaded.config.task_names == model.config.task_names
    reference = model.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in loaded.state_dict().items())
    expected, got = _logits(model, x), _logits(loaded, x)
    assert list(got) == list(expected)
    for task in expected:
        # Same weights (checked exactly above); two module instances may still differ in the last bit on CPU kernels.
        torch.testing.assert_close(got[task], expected[task], rtol=0, atol=1e-6)


def test_editing_errors_name_the_task():
    model = timm_model()
    with pytest.raises(ValueError, match="task 'kind' already exists; use replace_task"):
        model.add_task({"name": "kind", "type": "binary"})
    with pytest.raises(KeyError, match="no task named 'shape' to remove"):
        model.remove_task("shape")
    with pytest.raises(KeyError, match="no task named 'shape' to replace"):
        model.replace_task({"name": "shape", "type": "binary"})
    with pytest.raises(ValueError, match="cannot rename 'kind' to 'score'"):
        model.replace_task({"name": "score", "type": "binary"}, old_name="kind")
    for name in ("tags", "kind", "score"):
        model.remove_task(name)
    with pytest.raises(ValueError, match="cannot remove 'flag': it is the model's only task"):
        model.remove_task("flag")
    peft_model = apply_lora(timm_model(), r=2)
    with pytest.raises(ValueError, match="edit tasks before applying LoRA"):
        from hf_mtl.transfer import add_task

        add_task(peft_model, COLOR)


def test_new_task_trains_on_a_frozen_backbone_with_layer_decay(tmp_path):
    """A new MLP head on a trained model trains under the transfer options (heads policy + layer decay)."""
    model = timm_model()
    model.add_task(COLOR)
    rows = synthetic_dataset(12)
    data = rows.add_column("color", [["red", "green", "blue"][i % 3] for i in range(12)])
    head_before = {n: t.clone() for n, t in model.heads["color"].state_dict().items()}
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no",
                                      max_steps=2, per_device_train_batch_size=4, learning_rate=1e-2,
                                      freeze_policy="heads", layer_decay=0.7, disable_tqdm=True, logging_strategy="no")
    MultiTaskTrainer(model=model, args=args, train_dataset=data).train()
    assert all(not torch.equal(t, head_before[n]) for n, t in model.heads["color"].state_dict().items())


def test_train_only_a_new_task_keeps_every_other_output_exact(tmp_path):
    """Add a task to a trained model and train just its head: even with weight decay, the other tasks' outputs
    stay bit-identical (frozen backbone and heads), while the new head learns."""
    model = timm_model()
    x = images(4)
    before = _logits(model, x)
    model.add_task(COLOR)
    data = synthetic_dataset(12).add_column("color", [["red", "green", "blue"][i % 3] for i in range(12)])
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no",
                                      max_steps=3, per_device_train_batch_size=4, learning_rate=1e-2, weight_decay=0.1,
                                      freeze_policy="heads", trainable_tasks=["color"], unfreeze_every=100,
                                      disable_tqdm=True, logging_strategy="no")
    new_head = {n: t.clone() for n, t in model.heads["color"].state_dict().items()}
    MultiTaskTrainer(model=model, args=args, train_dataset=data).train()
    after = _logits(model, x)
    for task in before:
        torch.testing.assert_close(after[task], before[task], rtol=0, atol=0)
    assert all(not torch.equal(t, new_head[n]) for n, t in model.heads["color"].state_dict().items())
    with pytest.raises(ValueError, match=r"trainable tasks \['shape'\] are not tasks of the model"):
        MultiTaskTrainer(model=model, args=MultiTaskTrainingArguments(
            output_dir=str(tmp_path), report_to=[], use_cpu=True, freeze_policy="heads", trainable_tasks=["shape"]),
            train_dataset=data)
