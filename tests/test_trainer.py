"""MultiTaskTrainer: exact normalisation under gradient accumulation, per-task loss logs, and real learning."""

from __future__ import annotations

import pytest
import torch

from hf_mtl import MISSING, MultiTaskTrainer, MultiTaskTrainingArguments
from hf_mtl.data import MultiTaskDataCollator
from tests.tiny_models import bert_model, random_labels, synthetic_rows, timm_model

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _args(tmp_path, **kwargs) -> MultiTaskTrainingArguments:
    defaults = dict(output_dir=str(tmp_path), report_to=[], disable_tqdm=True, save_strategy="no", use_cpu=True,
                    seed=0, data_seed=0)
    return MultiTaskTrainingArguments(**{**defaults, **kwargs})


def _text_rows(n: int, seed: int = 0) -> list[dict]:
    """Rows with token ids and labels whose share of missing entries differs from row to row."""
    g = torch.Generator().manual_seed(seed)
    specs = bert_model(**NO_DROPOUT).task_specs
    rows = []
    for i in range(n):
        labels = random_labels(specs, 1, missing=[0.0, 0.9, 0.3, 0.6][i % 4], generator=g)
        row = {"input_ids": torch.randint(1, 64, (6,), generator=g), "attention_mask": torch.ones(6, dtype=torch.long)}
        for name, value in labels.items():
            value = value[0]
            if value.dim() == 0:  # multiclass, binary, single-output regression
                row[name] = None if value.item() == MISSING else value.item()
            else:
                row[name] = [None if v == MISSING else v for v in value.tolist()]
        rows.append(row)
    return rows


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    """k=4 micro-batches with uneven present-label counts give the gradient of one batch of the same samples."""
    model = bert_model(**NO_DROPOUT)
    trainer = MultiTaskTrainer(model=model, args=_args(tmp_path, gradient_accumulation_steps=4))
    collate = trainer.data_collator
    rows = _text_rows(16)
    micro = [collate(rows[i : i + 4]) for i in range(0, 16, 4)]
    counts = [int(b["labels"]["tags"].ne(MISSING).sum()) for b in micro]
    assert len(set(counts)) > 1, "the micro-batches must hold different numbers of present labels"

    num_items = trainer._get_num_items_in_batch(micro, torch.device("cpu"))
    model.zero_grad()
    for batch in micro:
        trainer.compute_loss(model, dict(batch), num_items_in_batch=num_items).backward()
    accumulated = _grads(model)

    full = collate(rows)
    model.zero_grad()
    trainer.compute_loss(model, dict(full), num_items_in_batch=trainer._get_num_items_in_batch([full], "cpu")).backward()
    single = _grads(model)
    model.zero_grad()
    model(**full).loss.backward()  # the model's own per-batch normalisation agrees too
    plain = _grads(model)

    assert accumulated.keys() == single.keys() and len(single) > 10
    for name in single:
        assert torch.allclose(accumulated[name], single[name], rtol=1e-5, atol=1e-6), name
        assert torch.allclose(plain[name], single[name], rtol=1e-5, atol=1e-6), name


def test_trainer_step_with_accumulation_equals_one_batch_step(tmp_path):
    """Through the real training loop: 4 x 2 accumulated equals 1 x 8 after one SGD step."""
    rows = _text_rows(8, seed=3)
    weights = []
    for batch, accumulation in ((8, 1), (2, 4)):
        model = bert_model(**NO_DROPOUT)
        args = _args(tmp_path / f"ga{accumulation}", per_device_train_batch_size=batch,
                     gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=0.5, optim="sgd",
                     lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0)
        MultiTaskTrainer(model=model, args=args, train_dataset=rows).train()
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    start = bert_model(**NO_DROPOUT).state_dict()
    moved = [k for k in start if not torch.equal(start[k], weights[0][k])]
    assert len(moved) > 10
    for key in weights[0]:
        assert torch.allclose(weights[0][key], weights[1][key], rtol=1e-5, atol=1e-6), key


def test_per_task_losses_are_logged(tmp_path):
    model = timm_model()
    rows = synthetic_rows(32)
    args = _args(tmp_path, per_device_train_batch_size=8, max_steps=4, logging_steps=2)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged
    for entry in logged:
        for task in ("tags", "kind", "score", "flag"):
            assert f"loss_{task}" in entry and entry[f"loss_{task}"] >= 0


def test_trainer_without_labels_says_what_is_missing(tmp_path):
    model = timm_model()
    trainer = MultiTaskTrainer(model=model, args=_args(tmp_path))
    batch = MultiTaskDataCollator(model.task_specs)([{"pixel_values": torch.zeros(3, 32, 32)}])
    with pytest.raises(ValueError, match="no `labels`"):
        trainer.compute_loss(model, batch)


def test_short_training_beats_chance_on_every_task(tmp_path):
    torch.manual_seed(0)
    model = timm_model()
    train, test = synthetic_rows(384, seed=1), synthetic_rows(128, seed=2, missing=0.0)
    args = _args(tmp_path, per_device_train_batch_size=32, num_train_epochs=12, learning_rate=3e-3,
                 lr_scheduler_type="constant", per_device_eval_batch_size=64)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=train)
    trainer.train()
    predictions = trainer.predict(test)
    logits, labels = predictions.predictions, predictions.label_ids

    tags_acc = ((logits["tags"] > 0) == (labels["tags"] > 0.5)).mean()
    kind_acc = (logits["kind"].argmax(-1) == labels["kind"]).mean()
    flag_acc = ((logits["flag"][:, 0] > 0) == (labels["flag"] > 0.5)).mean()
    score_mse = ((logits["score"][:, 0] - labels["score"]) ** 2).mean()
    baseline_mse = ((labels["score"] - labels["score"].mean()) ** 2).mean()
    assert tags_acc > 0.75, tags_acc  # chance: 0.5
    assert kind_acc > 0.6, kind_acc  # chance: 1/3
    assert flag_acc > 0.7, flag_acc  # chance: 0.5
    assert score_mse < 0.5 * baseline_mse, (score_mse, baseline_mse)  # predicting the mean: ratio 1
