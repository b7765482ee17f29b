"""Never worse than where fine-tuning started: the final model is the better of the heads-only and fine-tuned stages."""

from __future__ import annotations

import json

import pytest

from hf_mtl.scripts.train import STAGE_SELECTION_FILE, compare_stages, main
from hf_mtl.tasks import TaskSpec
from tests.recipe_helpers import tiny_recipe, write_image_dataset, write_recipe

SPECS = [TaskSpec("tags", "multilabel", labels=["a", "b"]), TaskSpec("score", "regression")]
HEADS = {"eval_tags_macro_roc_auc": 0.80, "eval_score_mae": 0.30, "eval_main_score": 0.60}


@pytest.mark.parametrize(
    ("tuned", "rule", "kept"),
    [
        ({"eval_tags_macro_roc_auc": 0.85, "eval_score_mae": 0.25, "eval_main_score": 0.7}, "best_stage", True),
        ({"eval_tags_macro_roc_auc": 0.90, "eval_score_mae": 0.35, "eval_main_score": 0.7}, "best_stage", False),
        ({"eval_tags_macro_roc_auc": 0.90, "eval_score_mae": 0.35, "eval_main_score": 0.7}, "best_mean", True),
        ({"eval_tags_macro_roc_auc": 0.70, "eval_score_mae": 0.25, "eval_main_score": 0.5}, "best_mean", False),
        ({"eval_tags_macro_roc_auc": 0.10, "eval_score_mae": 9.00, "eval_main_score": -1.0}, "last", True),
    ],
)
def test_compare_stages_uses_each_tasks_main_metric_and_direction(tuned, rule, kept):
    keep, reason, table = compare_stages(HEADS, tuned, SPECS, rule)
    assert keep is kept
    assert [row["task"] for row in table] == ["tags", "score", "(mean)"]
    if rule == "best_stage" and not kept:
        assert "score mae 0.3500 vs 0.3000" in reason and "tags" not in reason  # only the task that got worse


def test_a_fine_tuning_stage_that_hurts_is_replaced_by_the_heads_only_stage(tmp_path, capsys):
    data = write_image_dataset(tmp_path / "data", 32)
    out = tmp_path / "out"
    recipe = tiny_recipe(data, out, heads_only_epochs=2, heads_only_learning_rate=0.01, freeze_policy="full",
                         learning_rate=1.0, max_steps=4)  # a learning rate that wrecks the backbone
    metrics = main([str(write_recipe(tmp_path / "r.yaml", recipe))])
    printed = capsys.readouterr().out
    decision = json.loads((out / STAGE_SELECTION_FILE).read_text())
    assert decision["kept"] == "heads-only" and "worse than the heads-only stage" in decision["reason"]
    assert "== final model: the heads-only stage" in printed
    for row in decision["table"][:-1]:  # the saved model's evaluation is the heads-only stage's
        if row["heads_only"] is not None:
            assert metrics[f"eval_{row['task']}_{row['metric']}"] == pytest.approx(row["heads_only"], abs=1e-4)
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["eval_main_score"] == pytest.approx(metrics["eval_main_score"])


def test_auto_freeze_policy_is_decided_by_measured_trials(tmp_path, capsys):
    from transformers import TrainerCallback

    from hf_mtl.scripts.train import AUTO_POLICY_FILE

    seen: dict[str, str] = {}

    class RecordPolicy(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            seen["policy"] = args.freeze_policy

    data = write_image_dataset(tmp_path / "data", 32)
    out = tmp_path / "out"
    recipe = tiny_recipe(data, out, heads_only_epochs=1, freeze_policy="auto", auto_trial_steps=2, max_steps=2)
    main([str(write_recipe(tmp_path / "r.yaml", recipe))], callbacks=[RecordPolicy()])
    decision = json.loads((out / AUTO_POLICY_FILE).read_text())
    assert [row["policy"] for row in decision["table"]] == ["heads", "top_n", "full"]
    assert [row["steps"] for row in decision["table"]] == [0, 2, 2] and decision["seed"] == 0
    # With best_stage the trials choose how much trains; the heads-only stage is weighed against the trained model
    best = max(decision["table"][1:], key=lambda row: row["main_score"])
    assert decision["policy"] == best["policy"] == seen["policy"]  # the main stage trains with the winner
    printed = capsys.readouterr().out
    assert f"== freeze_policy auto: {decision['policy']} ==" in printed and "== final model: the " in printed
    assert not (out / "auto_trial_top_n").exists() and not (out / "auto_trial_full").exists()


def test_auto_with_final_model_last_may_pick_the_heads_only_stage_from_the_trials(tmp_path):
    from hf_mtl.scripts.train import AUTO_POLICY_FILE

    data = write_image_dataset(tmp_path / "data", 32)
    out = tmp_path / "out"
    recipe = tiny_recipe(data, out, heads_only_epochs=1, freeze_policy="auto", auto_trial_steps=2, max_steps=2,
                         final_model="last")
    main([str(write_recipe(tmp_path / "r.yaml", recipe))])
    decision = json.loads((out / AUTO_POLICY_FILE).read_text())
    best = max(decision["table"], key=lambda row: (row["main_score"], -["heads", "top_n", "full"].index(row["policy"])))
    assert decision["policy"] == best["policy"]  # no later comparison: the trials decide among all three
