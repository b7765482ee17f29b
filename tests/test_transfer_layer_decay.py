"""Layer-wise LR decay: the scale is really applied under stock transformers schedulers; no weight decay on norms/biases."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerCallback, get_linear_schedule_with_warmup

from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
from hf_mtl.transfer import DEFAULT_LAYER_DECAY, backbone_blocks, layer_depths, no_weight_decay_names, param_groups
from tests.tiny_models import bert_model, synthetic_dataset, timm_model

LR, DECAY, WARMUP, STEPS = 1e-3, 0.5, 2, 6


def _linear_factor(step: int) -> float:
    """What get_linear_schedule_with_warmup multiplies every group's initial LR by at `step` (its documented rule)."""
    if step < WARMUP:
        return step / WARMUP
    return max(0.0, (STEPS - step) / (STEPS - WARMUP))


@pytest.mark.parametrize("build", [timm_model, bert_model])
def test_depths_follow_blocks(build):
    model = build()
    blocks = backbone_blocks(model, fine=True)
    depths = layer_depths(model)
    assert all(depths[n] == 0 for n, _ in model.named_parameters() if n.startswith("heads."))
    for index, block in enumerate(blocks):
        assert {depths[n] for n in block} == {len(blocks) - index}


@pytest.mark.parametrize("build", [timm_model, bert_model])
def test_scaled_lr_under_stock_linear_schedule(build):
    model = build()
    groups = param_groups(model, lr=LR, weight_decay=0.1, layer_decay=DECAY)
    optimizer = torch.optim.AdamW(groups)
    scheduler = get_linear_schedule_with_warmup(optimizer, WARMUP, STEPS)
    names = {id(p): n for n, p in model.named_parameters()}
    depths = layer_depths(model)
    for step in range(STEPS):
        for group in optimizer.param_groups:
            depth = {depths[names[id(p)]] for p in group["params"]}
            assert len(depth) == 1
            expected = LR * DECAY ** depth.pop() * _linear_factor(step)
            assert group["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        optimizer.step()
        scheduler.step()
    assert max(g["layer_depth"] for g in optimizer.param_groups) == len(backbone_blocks(model, fine=True))


def test_no_weight_decay_on_norms_and_biases():
    model = bert_model()
    groups = param_groups(model, lr=LR, weight_decay=0.1, layer_decay=DECAY)
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = no_weight_decay_names(model)
    for group in groups:
        for param in group["params"]:
            name = names[id(param)]
            norm_or_bias = name.endswith("bias") or "LayerNorm" in name
            assert (group["weight_decay"] == 0.0) == norm_or_bias == (name in skipped), name
    timm_names = no_weight_decay_names(timm_model())
    assert "backbone.model.bn1.weight" in timm_names and "backbone.model.conv_stem.weight" not in timm_names
    with pytest.raises(ValueError, match="layer_decay must be in"):
        param_groups(model, lr=LR, layer_decay=1.5)


def test_trainer_uses_layer_decay_with_its_scheduler(tmp_path):
    model = timm_model()
    args = MultiTaskTrainingArguments(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no", learning_rate=LR,
        layer_decay=DECAY, warmup_steps=WARMUP, max_steps=STEPS, lr_scheduler_type="linear", weight_decay=0.05,
        per_device_train_batch_size=4, disable_tqdm=True, logging_strategy="no",
    )
    seen: list[list[float]] = []

    class RecordLR(TrainerCallback):
        def on_step_end(self, args, state, control, optimizer=None, **kwargs):
            seen.append([group["lr"] for group in optimizer.param_groups])

    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=synthetic_dataset(8), callbacks=[RecordLR()])
    trainer.train()
    depths = layer_depths(model)
    names = {id(p): n for n, p in model.named_parameters()}
    group_depths = [depths[names[id(group["params"][0])]] for group in trainer.optimizer.param_groups]
    assert len(seen) == STEPS
    for step, lrs in enumerate(seen, start=1):  # on_step_end comes after the scheduler stepped
        assert lrs == pytest.approx([LR * DECAY**d * _linear_factor(step) for d in group_depths])
    for group, depth in zip(trainer.optimizer.param_groups, group_depths):
        assert group["initial_lr"] == pytest.approx(LR * DECAY**depth)
        assert group["weight_decay"] in (0.0, 0.05)
    assert {g["layer_depth"] for g in trainer.optimizer.param_groups} == set(range(len(backbone_blocks(model, True)) + 1))
    # The scheduler's own view: last LRs are the decayed ones, not one shared LR.
    assert len(set(trainer.lr_scheduler.base_lrs)) == len(backbone_blocks(model, True)) + 1


def test_vit_position_embeddings_get_no_weight_decay():
    from hf_mtl import MultiTaskConfig, MultiTaskModel

    model = MultiTaskModel(MultiTaskConfig(backbone="test_vit", backbone_library="timm",
                                           tasks=[{"name": "kind", "type": "multiclass", "labels": ["a", "b"]}]))
    skipped = no_weight_decay_names(model)
    assert {"backbone.model.pos_embed", "backbone.model.cls_token"} <= skipped
    assert "backbone.model.blocks.0.attn.qkv.weight" not in skipped
    depths = layer_depths(model)
    blocks = backbone_blocks(model, fine=True)
    assert depths["backbone.model.patch_embed.proj.weight"] == len(blocks) == len(model.backbone.model.blocks) + 1
    assert depths["backbone.model.blocks.0.attn.qkv.weight"] == len(blocks) - 1


def _pretrained_statistics(model) -> None:
    """BatchNorm running statistics estimated from data, as a pretrained CNN has them (one train-mode pass)."""
    model.train()
    with torch.no_grad():
        model.backbone(pixel_values=torch.randn(8, *synthetic_dataset(1)[0]["pixel_values"].shape))
    model.eval()


@pytest.mark.parametrize(
    ("pretrained", "settings", "expected"),
    [
        (True, {"freeze_policy": "full"}, DEFAULT_LAYER_DECAY),  # 5f: kept statistics go with a lower backbone LR
        (True, {"freeze_policy": "top_n", "freeze_top_n": 1}, DEFAULT_LAYER_DECAY),
        (True, {}, DEFAULT_LAYER_DECAY),  # no policy: everything trains
        (True, {"freeze_policy": "heads", "unfreeze_every": 1}, DEFAULT_LAYER_DECAY),  # blocks will train
        (True, {"freeze_policy": "heads"}, None),  # nothing of the backbone trains
        (True, {"freeze_policy": "full", "norm_statistics": "train"}, None),  # stock BatchNorm: stock LR
        (True, {"freeze_policy": "full", "layer_decay": 1.0}, 1.0),  # explicitly off
        (True, {"freeze_policy": "full", "layer_decay": 0.8}, 0.8),
        (False, {"freeze_policy": "full"}, None),  # fresh statistics train: nothing pretrained to keep
    ],
)
def test_default_layer_decay_goes_with_kept_pretrained_statistics(tmp_path, pretrained, settings, expected):
    model = timm_model()
    if pretrained:
        _pretrained_statistics(model)
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no",
                                      learning_rate=LR, max_steps=1, per_device_train_batch_size=4, disable_tqdm=True,
                                      logging_strategy="no", **settings)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=synthetic_dataset(8))
    assert trainer.layer_decay == expected
    trainer.train()
    lrs = {group["layer_depth"]: group["initial_lr"] for group in trainer.optimizer.param_groups
           if "layer_depth" in group}
    if expected in (None, 1.0):
        assert set(lrs.values()) <= {LR} and {g["initial_lr"] for g in trainer.optimizer.param_groups} == {LR}
    else:
        assert lrs == {d: pytest.approx(LR * expected**d) for d in lrs} and max(lrs) > 0


def test_default_layer_decay_is_off_without_batchnorm(tmp_path):
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no",
                                      freeze_policy="full", max_steps=1)
    model = bert_model()
    rows = [{"input_ids": [1, 2, 3], **{spec.name: None for spec in model.task_specs}}]
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=rows)
    assert trainer.layer_decay is None


def test_default_layer_decay_survives_an_earlier_stage_on_the_same_model(tmp_path):
    """The recipe's two stages (and `auto`'s trials) train one model object: the heads-only stage already keeps the
    pretrained BatchNorm statistics, and the fine-tuning stage after it must still get the default layer decay (it
    once saw no newly kept layer and trained at one LR: 5f's worst variant)."""
    model = timm_model()
    _pretrained_statistics(model)

    def stage(**settings) -> MultiTaskTrainer:
        args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no",
                                          learning_rate=LR, max_steps=1, per_device_train_batch_size=4,
                                          disable_tqdm=True, logging_strategy="no", **settings)
        trainer = MultiTaskTrainer(model=model, args=args, train_dataset=synthetic_dataset(8))
        trainer.train()
        return trainer

    assert stage(freeze_policy="heads").layer_decay is None
    for policy in ("top_n", "full"):  # an auto trial, then the main stage, on the same model
        tuned = stage(freeze_policy=policy, freeze_top_n=1)
        assert tuned.layer_decay == DEFAULT_LAYER_DECAY
        assert len({g["initial_lr"] for g in tuned.optimizer.param_groups}) > 1
