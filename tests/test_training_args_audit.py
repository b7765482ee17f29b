"""Every stock ``TrainingArguments`` field has a decision (hf_mtl.training_args.STOCK_FIELD_DECISIONS): a field that
transformers adds fails here until someone decides what the masked multi-task loss makes of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainingArguments

from hf_mtl.training_args import ADAPTED, REFUSED, STOCK, STOCK_FIELD_DECISIONS
from tests.test_bad_inputs_round2 import STOCK_FIELDS


def test_every_stock_field_is_decided() -> None:
    names = [f.name for f in dataclasses.fields(TrainingArguments)]
    undecided = [name for name in names if name not in STOCK_FIELD_DECISIONS]
    assert not undecided, (
        f"transformers' TrainingArguments has fields with no decision: {undecided}. Decide for each whether the masked "
        "multi-task loss / MultiTaskTrainer keeps its meaning (stock), gives it one (adapted) or must refuse it "
        "(refused, with a check and a case in tests/test_bad_inputs_round2.py), in hf_mtl/training_args.py"
    )
    stale = sorted(set(STOCK_FIELD_DECISIONS) - set(names))
    assert not stale, f"decisions for fields transformers no longer has: {stale}"
    for name, (decision, why) in STOCK_FIELD_DECISIONS.items():
        assert decision in (STOCK, ADAPTED, REFUSED) and why, name


def test_every_refusal_has_a_bad_input_case() -> None:
    """A REFUSED field is refused for real: tests/test_bad_inputs_round2.py has a case ``stock-<field>`` for it."""
    cases = {case.id for case in STOCK_FIELDS}
    refused = [name for name, (decision, _) in STOCK_FIELD_DECISIONS.items() if decision == REFUSED]
    missing = [name for name in refused if f"stock-{name.replace('_', '-')}" not in cases]
    assert not missing, f"refused fields without a bad-input case: {missing}"
    where = {name: why for name, (decision, why) in STOCK_FIELD_DECISIONS.items() if decision == REFUSED}
    assert all("(args)" in why or "(trainer)" in why for why in where.values()), where


def text_trainer(tmp_path: Path, **overrides: Any) -> Any:
    import datasets

    from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments, dataset_transform
    from tests.test_pipeline import tiny_tokenizer
    from tests.tiny_models import bert_model

    tokenizer = tiny_tokenizer()
    texts = ["the cat sat on the mat", "a big dog", "red blue green", "the small cat is on a mat"]
    rows = datasets.Dataset.from_list([{"text": t, "flag": i % 2} for i, t in enumerate(texts)])
    args = MultiTaskTrainingArguments(str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2, report_to=[],
                                      use_cpu=True, save_strategy="no", disable_tqdm=True, **overrides)
    model = bert_model(tasks=[{"name": "flag", "type": "binary"}])
    return MultiTaskTrainer(model=model, args=args, train_dataset=rows.with_transform(dataset_transform(tokenizer, "text")),
                            processing_class=tokenizer)


def test_neftune_noise_reaches_a_text_backbones_token_embeddings_while_training(tmp_path: Path) -> None:
    """The stock Trainer would ask the MultiTaskModel for input embeddings it does not have and fail at train();
    hf_mtl puts NEFTune's hook on the backbone's token embeddings for the run, and removes it after."""
    from transformers import TrainerCallback

    trainer = text_trainer(tmp_path, neftune_noise_alpha=5.0)
    embeddings = trainer.model.backbone.model.get_input_embeddings()
    ids = torch.tensor([[5, 6, 7, 8]])
    noisy: list[bool] = []

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            with torch.no_grad():
                noisy.append(not torch.equal(embeddings(ids), embeddings(ids)))  # train mode: fresh noise each call

    trainer.add_callback(Probe())
    trainer.train()
    assert noisy == [True, True]
    assert not embeddings._forward_hooks and not hasattr(embeddings, "neftune_noise_alpha")
    with torch.no_grad():
        assert torch.equal(embeddings(ids), embeddings(ids))


def test_greater_is_better_follows_the_metric() -> None:
    """The stock rule (only '*loss' is lower-is-better) would keep the checkpoint with the worst MAE."""
    from hf_mtl import MultiTaskTrainingArguments

    def derived(metric: str) -> bool:
        return MultiTaskTrainingArguments("out", report_to=[], use_cpu=True, metric_for_best_model=metric).greater_is_better

    assert derived("eval_score_mae") is False and derived("eval_score_rmse") is False and derived("eval_loss") is False
    assert derived("eval_main_score") is True and derived("eval_tags_macro_roc_auc") is True
    assert TrainingArguments("out", report_to=[], use_cpu=True, metric_for_best_model="eval_score_mae").greater_is_better


@pytest.mark.parametrize("strategy", ["group_by_length", "batch_rebalance"])
def test_length_grouping_keeps_its_meaning_for_text(tmp_path: Path, strategy: str) -> None:
    trainer = text_trainer(tmp_path, train_sampling_strategy=strategy)
    trainer.train()
    assert trainer.state.global_step == 2


def test_readme_counts_the_decisions() -> None:
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    count = {d: sum(1 for decision, _ in STOCK_FIELD_DECISIONS.values() if decision == d) for d in (STOCK, ADAPTED, REFUSED)}
    expected = (f"{len(STOCK_FIELD_DECISIONS)} fields: {count[STOCK]} keep their stock meaning, {count[ADAPTED]} are "
                f"adapted, {count[REFUSED]} refuse")
    assert expected in readme, f"README's reliability section must say '{expected}'"
