"""Freeze policies: which tensors train, frozen BatchNorm statistics, the `auto` choice, gradual unfreezing."""

from __future__ import annotations

import logging

import pytest
import torch

from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
from hf_mtl.transfer import (
    GradualUnfreezingCallback,
    apply_freeze_policy,
    backbone_blocks,
    choose_freeze_policy,
    count_trainable_blocks,
    find_layer_list,
    set_trainable_blocks,
)
from tests.tiny_models import bert_model, synthetic_dataset, timm_model


def _args(tmp_path, **kwargs) -> MultiTaskTrainingArguments:
    defaults = dict(output_dir=str(tmp_path), report_to=[], disable_tqdm=True, save_strategy="no", use_cpu=True,
                    seed=0, data_seed=0, per_device_train_batch_size=8, learning_rate=1e-2, logging_strategy="no")
    return MultiTaskTrainingArguments(**{**defaults, **kwargs})


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _changed(before, model) -> set[str]:
    after = model.state_dict()
    return {name for name, tensor in before.items() if not torch.equal(tensor, after[name])}


def test_blocks_come_from_the_libraries():
    """timm: group_matcher groups (stem first, conv_head/bn2 merged into the top); transformers: the layer list."""
    model = timm_model()
    blocks = backbone_blocks(model)
    assert blocks[0][0] == "backbone.model.conv_stem.weight"
    assert "backbone.model.conv_head.weight" in blocks[-1]
    assert len(blocks) == 1 + len(model.backbone.model.blocks)
    assert sorted(n for b in blocks for n in b) == sorted(n for n, _ in model.backbone.named_parameters(prefix="backbone"))

    bert = bert_model()
    assert find_layer_list(bert.backbone.model) == ("encoder.layer", 2)
    blocks = backbone_blocks(bert)
    assert len(blocks) == 3
    assert all(n.startswith("backbone.model.embeddings.") for n in blocks[0])
    assert all(".encoder.layer.0." in n for n in blocks[1])
    assert any(".pooler." in n for n in blocks[2])


def test_heads_policy_leaves_every_backbone_tensor_bit_identical(tmp_path):
    model = timm_model()
    before = _snapshot(model)
    trainer = MultiTaskTrainer(model=model, args=_args(tmp_path, max_steps=3, freeze_policy="heads"),
                               train_dataset=synthetic_dataset(16))
    assert trainer.freeze_choice.policy == "heads"
    assert all(p.requires_grad == n.startswith("heads.") for n, p in model.named_parameters())
    trainer.train()
    changed = _changed(before, model)
    assert not {n for n in changed if n.startswith("backbone.")}, "backbone weights or BN statistics moved"
    assert {n for n in before if "running_mean" in n}, "the tiny backbone has BatchNorm statistics to check"
    assert {n for n in before if n.startswith("heads.")} == {n for n in changed if n.startswith("heads.")}


@pytest.mark.parametrize("policy,top_n", [("top_n", 2), ("full", None)])
def test_top_n_and_full_train_exactly_their_blocks(tmp_path, policy, top_n):
    model = timm_model()
    blocks = backbone_blocks(model)
    trained_blocks = blocks[-top_n:] if top_n else blocks
    should_train = {n for b in trained_blocks for n in b} | {n for n, _ in model.named_parameters() if "heads." in n}
    before = _snapshot(model)
    trainer = MultiTaskTrainer(model=model, args=_args(tmp_path, max_steps=2, freeze_policy=policy,
                                                       freeze_top_n=top_n or 1), train_dataset=synthetic_dataset(16))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == should_train
    trainer.train()
    changed = _changed(before, model)
    params = {n for n, _ in model.named_parameters()}
    assert changed & params == should_train
    # BatchNorm statistics: frozen blocks keep theirs, trained blocks update theirs.
    stats = {n for n in before if n.endswith("running_mean")}
    frozen_modules = {n.rsplit(".", 1)[0] for b in blocks[: len(blocks) - len(trained_blocks)] for n in b}
    for name in stats:
        assert (name in changed) == (name.rsplit(".", 1)[0] not in frozen_modules), name


def test_top_n_on_a_transformers_backbone(tmp_path):
    model = bert_model()
    apply_freeze_policy(model, "top_n", top_n=1)
    top = set(backbone_blocks(model)[-1])
    assert {n for n, p in model.backbone.named_parameters(prefix="backbone") if p.requires_grad} == top
    with pytest.raises(ValueError, match="freeze_top_n=5 but the backbone has 3 blocks"):
        apply_freeze_policy(model, "top_n", top_n=5)
    with pytest.raises(ValueError, match="freeze_policy must be one of"):
        apply_freeze_policy(model, "bottom")


def test_frozen_modules_stay_in_eval_mode_under_train():
    model = bert_model()
    set_trainable_blocks(model, 1)
    model.train()
    model(input_ids=torch.randint(1, 64, (2, 5)))
    assert not model.backbone.model.embeddings.training and not model.backbone.model.encoder.layer[0].training
    assert model.backbone.model.encoder.layer[1].training and model.heads.training
    set_trainable_blocks(model, 3)
    model.train()
    model(input_ids=torch.randint(1, 64, (2, 5)))
    assert all(module.training for module in model.modules())


def test_auto_policy_depends_on_data_and_backbone_size(tmp_path, caplog):
    small = choose_freeze_policy(num_train_samples=40, num_labels=8, backbone_params=100_000, num_blocks=6)
    middle = choose_freeze_policy(num_train_samples=4_000, num_labels=8, backbone_params=100_000, num_blocks=6)
    large = choose_freeze_policy(num_train_samples=100_000, num_labels=8, backbone_params=100_000, num_blocks=6)
    assert (small.policy, middle.policy, large.policy) == ("heads", "top_n", "full")
    assert 0 < middle.trainable_blocks < 6 and large.trainable_blocks == 6
    huge_backbone = choose_freeze_policy(num_train_samples=100_000, num_labels=8, backbone_params=300_000_000,
                                         num_blocks=24)
    assert huge_backbone.policy == "top_n", "a bigger backbone needs more data before full fine-tuning"

    model = timm_model()
    with caplog.at_level(logging.INFO, logger="hf_mtl.transfer.freezing"):
        trainer = MultiTaskTrainer(model=model, args=_args(tmp_path, freeze_policy="auto"),
                                   train_dataset=synthetic_dataset(16))
    assert trainer.freeze_choice.policy == "heads"
    assert "freeze policy 'auto' -> heads" in caplog.text and "per label" in caplog.text
    choice = apply_freeze_policy(model, "auto", num_train_samples=1_000_000)
    assert choice.policy == "full" and all(p.requires_grad for p in model.parameters())


def test_gradual_unfreezing_by_step_keeps_optimizer_state_consistent(tmp_path):
    model = timm_model()
    blocks = backbone_blocks(model)
    before = _snapshot(model)
    args = _args(tmp_path, max_steps=4, freeze_policy="heads", unfreeze_every=1, unfreeze_unit="step",
                 per_device_train_batch_size=4)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=synthetic_dataset(16))
    callback = trainer._unfreezing_callback()
    trainer.train()
    # At the start of steps 1, 2, 3 (0-based global step) one more block unfreezes: three blocks trained at the end.
    assert callback.history == [(1, 1), (2, 2), (3, 3)]
    assert count_trainable_blocks(model) == 3
    changed = _changed(before, model)
    for index, block in enumerate(blocks):
        assert bool(set(block) & changed) == (index >= len(blocks) - 3), f"block {index}"
    # Every parameter sat in the optimizer from the start; Adam state counts exactly the steps it trained.
    held = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert held == {id(p) for p in model.parameters()}
    params = dict(model.named_parameters())
    state = trainer.optimizer.state
    assert int(state[params["heads.tags.layers.1.weight"]]["step"]) == 4
    for offset, steps in ((1, 3), (2, 2), (3, 1)):
        assert int(state[params[blocks[-offset][0]]]["step"]) == steps
    assert params[blocks[0][0]] not in state


def test_gradual_unfreezing_by_epoch(tmp_path):
    model = bert_model()
    args = _args(tmp_path, num_train_epochs=3, freeze_policy="heads", unfreeze_every=1, layer_decay=0.5)
    rows = [{"input_ids": torch.randint(1, 64, (5,)), "kind": i % 3, "tags": None, "score": None, "flag": None}
            for i in range(16)]
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    assert trainer._unfreezing_callback().history == [(1.0, 1), (2.0, 2)]
    assert count_trainable_blocks(model) == 2


def test_unfreezing_refuses_an_optimizer_without_the_frozen_parameters(tmp_path):
    from transformers import TrainerControl, TrainerState

    model = timm_model()
    set_trainable_blocks(model, 0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    callback = GradualUnfreezingCallback(every=1)
    with pytest.raises(ValueError, match="the optimizer lacks .* frozen backbone parameters"):
        callback.on_train_begin(_args(tmp_path), TrainerState(), TrainerControl(), model=model, optimizer=optimizer)
    with pytest.raises(ValueError, match="unfreeze unit must be one of"):
        GradualUnfreezingCallback(every=1, unit="batch")


@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet", "test_vit"])
def test_feature_info_stages_agree_with_group_matcher(name):
    """The fallback for timm models without group_matcher groups parameters as group_matcher does."""
    import timm

    from hf_mtl.transfer.blocks import feature_info_groups

    inner = timm.create_model(name, num_classes=0)
    names = [n for n, _ in inner.named_parameters()]
    from timm.models import group_parameters

    grouped = group_parameters(inner, inner.group_matcher(coarse=True))
    assert feature_info_groups(inner, names) == [grouped[k] for k in sorted(grouped)]


def test_gradual_unfreezing_resumes_from_a_checkpoint_exactly(tmp_path):
    """Checkpoint at step 2 and resume: the same blocks unfreeze and the weights end as in the uninterrupted run."""
    data = synthetic_dataset(16)
    common = dict(max_steps=4, freeze_policy="heads", unfreeze_every=1, unfreeze_unit="step", layer_decay=0.8,
                  per_device_train_batch_size=4, save_strategy="steps", save_steps=2)
    straight = timm_model()
    MultiTaskTrainer(model=straight, args=_args(tmp_path / "a", **common), train_dataset=data).train()

    resumed = timm_model(seed=1)  # different init: everything must come from the checkpoint
    trainer = MultiTaskTrainer(model=resumed, args=_args(tmp_path / "b", **common), train_dataset=data)
    trainer.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-2"))
    assert trainer._unfreezing_callback().history == [(2, 2), (3, 3)]
    expected = straight.state_dict()
    for name, tensor in resumed.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=1e-6, atol=1e-7, msg=name)


def _tiny_transformers(kind: str):
    from transformers import AutoModel, ConvNextConfig, DistilBertConfig, ViTConfig, Wav2Vec2Config

    configs = {
        "vit": ViTConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=16,
                         image_size=16, patch_size=8),
        "convnext": ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1]),
        "wav2vec2": Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                                   conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3), num_feat_extract_layers=2,
                                   num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2),
        "distilbert": DistilBertConfig(dim=16, n_layers=3, n_heads=2, hidden_dim=16, vocab_size=50),
    }
    return AutoModel.from_config(configs[kind])


@pytest.mark.parametrize("kind,expected", [("vit", ("layers", 3)), ("convnext", ("encoder.stages", 4)),
                                           ("wav2vec2", ("encoder.layers", 2)),
                                           ("distilbert", ("transformer.layer", 3))])
def test_layer_list_of_other_transformers_architectures(kind, expected):
    """The layer stack is found structurally, whatever the architecture calls it."""
    assert find_layer_list(_tiny_transformers(kind)) == expected


def test_auto_with_a_single_block_backbone():
    assert choose_freeze_policy(20, 1, 1000, num_blocks=1).policy == "heads"
    assert choose_freeze_policy(500, 1, 1000, num_blocks=1).policy == "full"
