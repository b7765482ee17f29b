"""LoRA through PEFT: adapters on the backbone, heads fully trained; save adapter + heads, load, merge to a plain model."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors import safe_open

from hf_mtl import MultiTaskModel, MultiTaskTrainer, MultiTaskTrainingArguments, UnsafeWeightsError
from hf_mtl.transfer import apply_lora, load_lora, lora_target_modules, merge_lora
from tests.tiny_models import bert_model, images, synthetic_dataset, timm_model


def _train(model, tmp_path, dataset):
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path / "run"), report_to=[], use_cpu=True, save_strategy="no",
                                      max_steps=3, learning_rate=2e-2, per_device_train_batch_size=4, disable_tqdm=True,
                                      logging_strategy="no", seed=0)
    MultiTaskTrainer(model=model, args=args, train_dataset=dataset).train()


def _text_dataset(n: int = 12):
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(1, 64, (5,), generator=g), "kind": i % 3, "tags": [1.0, 0.0, float(i % 2)],
             "score": float(i), "flag": "yes" if i % 2 else "no"} for i in range(n)]


CASES = {
    "bert": (bert_model, lambda: {"input_ids": torch.randint(1, 64, (3, 5), generator=torch.Generator().manual_seed(1))},
             _text_dataset),
    "timm": (timm_model, lambda: {"pixel_values": images(3, seed=1)}, lambda: synthetic_dataset(12)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lora_trains_adapters_and_heads_then_saves_loads_and_merges(tmp_path, case):
    build, make_inputs, make_data = CASES[case]
    base = build()
    before = {n: t.clone() for n, t in base.state_dict().items()}
    peft_model = apply_lora(base, r=4)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or ".heads." in n for n in trainable)
    assert {n.split(".")[3] for n in trainable if ".heads." in n} == set(base.config.task_names)

    _train(peft_model, tmp_path, make_data())
    state = peft_model.base_model.model.state_dict()
    for name, tensor in before.items():  # frozen weights and BN statistics untouched
        if name.startswith("backbone."):
            key = name if name in state else name.replace(".weight", ".base_layer.weight").replace(
                ".bias", ".base_layer.bias")
            assert torch.equal(state[key], tensor), name
    assert any(state[n].abs().sum() > 0 for n in state if "lora_B" in n), "adapters trained"
    head_keys = [n for n in state if n.startswith("heads.") and "modules_to_save" in n]
    assert head_keys and any(not torch.equal(state[n], before[n.replace("modules_to_save.default.", "")])
                             for n in head_keys), "heads trained"

    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    files = set(os.listdir(adapter_dir))
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    with safe_open(adapter_dir / "adapter_model.safetensors", "pt") as saved:
        keys = list(saved.keys())
    assert any(".heads." in k for k in keys) and any("lora_A" in k for k in keys)
    assert not any("base_layer" in k for k in keys), "the frozen backbone is not duplicated into the adapter"

    inputs = make_inputs()
    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(**inputs).logits
        reloaded = load_lora(adapter_dir, build())
        reloaded.eval()
        got = reloaded(**inputs).logits
    for task in expected:
        torch.testing.assert_close(got[task], expected[task], rtol=0, atol=1e-6)  # another instance: last-bit kernel noise

    merged = merge_lora(reloaded)
    assert type(merged) is MultiTaskModel
    assert not any("lora_" in n or "base_layer" in n or "modules_to_save" in n for n in merged.state_dict())
    merged.eval()
    with torch.no_grad():
        got = merged(**inputs).logits
    for task in expected:
        torch.testing.assert_close(got[task], expected[task], rtol=1e-5, atol=1e-6)

    merged.save_pretrained(tmp_path / "merged")
    assert (tmp_path / "merged" / "model.safetensors").exists()
    again = MultiTaskModel.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        got = again(**inputs).logits
    for task in expected:
        torch.testing.assert_close(got[task], expected[task], rtol=1e-5, atol=1e-6)


def test_lora_loads_onto_a_saved_base_folder(tmp_path):
    base = bert_model()
    base.save_pretrained(tmp_path / "base")
    assert {n.rsplit(".", 1)[-1] for n in lora_target_modules(base, ["query", "value"])} == {"query", "value"}
    peft_model = apply_lora(base, r=2, target_modules=["query", "value"])
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    peft_model.save_pretrained(tmp_path / "adapter")
    inputs = {"input_ids": torch.randint(1, 64, (2, 5))}
    reloaded = load_lora(tmp_path / "adapter", str(tmp_path / "base")).eval()
    with torch.no_grad():
        expected, got = peft_model.eval()(**inputs).logits, reloaded(**inputs).logits
    for task in expected:
        torch.testing.assert_close(got[task], expected[task], rtol=0, atol=1e-6)  # another instance: last-bit kernel noise
    with pytest.raises(ValueError, match="no backbone layer matches"):
        apply_lora(bert_model(), target_modules=["not_a_layer"])
    # a pickled adapter (which PEFT would fall back to) is refused before anything is read
    pickled = tmp_path / "adapter_bin"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_bytes((tmp_path / "adapter" / "adapter_config.json").read_bytes())
    torch.save({}, pickled / "adapter_model.bin")
    with pytest.raises(UnsafeWeightsError, match=r"adapter_bin.*no adapter_model.safetensors.*adapter_model.bin"):
        load_lora(pickled, str(tmp_path / "base"))


def test_lora_parameters_follow_their_block_in_layer_decay(tmp_path):
    from hf_mtl.transfer import backbone_blocks, param_groups

    peft_model = apply_lora(bert_model(), r=2)
    blocks = backbone_blocks(peft_model)
    groups = param_groups(peft_model, lr=1.0, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(peft_model.base_model.model.named_parameters())
    for index, block in enumerate(blocks):
        for name in block:
            if named[name].requires_grad:
                assert "lora_" in name and lr_of[id(named[name])] == 0.5 ** (len(blocks) - index)
    heads = [p for n, p in named.items() if n.startswith("heads.") and p.requires_grad]
    assert heads and all(lr_of[id(p)] == 1.0 for p in heads)
    assert len(lr_of) == sum(p.requires_grad for p in peft_model.parameters())
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, freeze_policy="heads")
    with pytest.raises(ValueError, match="PEFT-wrapped"):
        MultiTaskTrainer(model=peft_model, args=args, train_dataset=_text_dataset(4))


def test_lora_from_training_arguments(tmp_path):
    """One line of configuration: `lora_r` wraps the model; `save_model` writes the adapter and the heads."""
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no",
                                      max_steps=2, learning_rate=2e-2, per_device_train_batch_size=4, disable_tqdm=True,
                                      logging_strategy="no", lora_r=2, lora_target_modules=["query", "value"])
    trainer = MultiTaskTrainer(model=bert_model(), args=args, train_dataset=_text_dataset(8))
    assert hasattr(trainer.model, "peft_config")
    trainer.train()
    trainer.save_model()
    assert (tmp_path / "adapter_model.safetensors").exists()
    inputs = {"input_ids": torch.randint(1, 64, (2, 5))}
    reloaded = load_lora(tmp_path, bert_model()).eval()
    with torch.no_grad():
        expected, got = trainer.model.eval()(**inputs).logits, reloaded(**inputs).logits
    for task in expected:
        torch.testing.assert_close(got[task], expected[task], rtol=0, atol=1e-6)  # another instance: last-bit kernel noise
