"""The model: forward shapes on every backbone kind, pretrained loading after post_init, save/load round trips."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel, BertModel, ViTConfig, Wav2Vec2Config

from hf_mtl import MultiTaskConfig, MultiTaskModel, MultiTaskOutput
from tests.multiprocess import TIMEOUT
from tests.tiny_models import IMAGE_SIZE, MIXED_TASKS, bert_model, images, random_labels, timm_model, tiny_bert_config

EXPECTED_SHAPES = {"tags": (5, 3), "kind": (5, 3), "score": (5, 1), "flag": (5, 1)}


def _shapes(output: MultiTaskOutput) -> dict[str, tuple[int, ...]]:
    return {name: tuple(value.shape) for name, value in output.logits.items()}


def _text_batch(batch: int = 5, length: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 4:] = 0
    return {"input_ids": torch.randint(1, 64, (batch, length), generator=g), "attention_mask": mask}


def test_timm_forward_shapes_and_loss():
    model = timm_model()
    out = model(pixel_values=images(5), labels=random_labels(model.task_specs, 5))
    assert isinstance(out, MultiTaskOutput)
    assert _shapes(out) == EXPECTED_SHAPES
    assert list(out.logits) == ["tags", "kind", "score", "flag"], "task results follow config order"
    assert out.pooled_features.shape == (5, model.backbone.num_features)
    assert set(out.task_losses) == set(EXPECTED_SHAPES) and torch.isfinite(out.loss)
    assert model(pixel_values=images(5)).loss is None


@pytest.mark.parametrize("pooling", ["cls", "mean", "pooler", "auto"])
def test_text_encoder_forward_for_each_pooling(pooling):
    model = bert_model(pooling=pooling).eval()
    batch = _text_batch()
    out = model(**batch, labels=random_labels(model.task_specs, 5))
    assert _shapes(out) == EXPECTED_SHAPES and torch.isfinite(out.loss)
    hidden = model.backbone.model(**batch).last_hidden_state
    if pooling == "cls":
        assert torch.allclose(out.pooled_features, hidden[:, 0])
    elif pooling in ("mean", "auto"):
        # Padding tokens are excluded from the mean.
        assert torch.allclose(out.pooled_features[0], hidden[0, :4].mean(0), atol=1e-6)


def test_vision_and_audio_transformers_work_the_same_way():
    vit = ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32)
    model = MultiTaskModel(MultiTaskConfig(backbone="tiny-vit", backbone_library="transformers",
                                           backbone_config=vit.to_dict(), tasks=MIXED_TASKS))
    assert _shapes(model(pixel_values=torch.randn(5, 3, 16, 16))) == EXPECTED_SHAPES

    w2v = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
                         num_conv_pos_embedding_groups=2)
    model = MultiTaskModel(MultiTaskConfig(backbone="tiny-w2v", backbone_library="transformers",
                                           backbone_config=w2v.to_dict(), tasks=MIXED_TASKS))
    assert model.main_input_name == "input_values"
    mask = torch.ones(5, 400, dtype=torch.long)
    mask[1, 200:] = 0
    out = model(input_values=torch.randn(5, 400), attention_mask=mask)
    assert _shapes(out) == EXPECTED_SHAPES and torch.isfinite(out.pooled_features).all()


def test_heads_with_hidden_layers():
    tasks = [{"name": "tags", "type": "multilabel", "labels": ["a", "b"], "hidden_sizes": [12, 6],
              "activation": "relu", "dropout": 0.1}]
    model = timm_model(tasks=tasks)
    linears = [m for m in model.heads["tags"].modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(model.backbone.num_features, 12), (12, 6), (6, 2)]
    with pytest.raises(ValueError, match="task 'tags'.*unknown head activation 'swish2'"):
        timm_model(tasks=[{**tasks[0], "activation": "swish2"}])


def test_from_backbone_loads_transformers_weights_after_post_init(tmp_path):
    torch.manual_seed(123)
    pretrained = BertModel(tiny_bert_config())
    pretrained.save_pretrained(tmp_path / "bert")
    model = MultiTaskModel.from_backbone(str(tmp_path / "bert"), MIXED_TASKS, pooling="cls")
    assert model.config.backbone_library == "transformers"
    reference = pretrained.state_dict()
    for key, value in model.backbone.model.state_dict().items():
        assert torch.equal(value, reference[key]), f"{key} was re-initialised"
    assert model.config.backbone_config["model_type"] == "bert"


def test_from_backbone_loads_a_timm_weights_file(tmp_path):
    import timm

    torch.manual_seed(7)
    source = timm.create_model("test_efficientnet", num_classes=10)  # a classifier: its head must be dropped
    save_file(source.state_dict(), tmp_path / "weights.safetensors")
    model = MultiTaskModel.from_backbone("test_efficientnet", MIXED_TASKS, weights=str(tmp_path / "weights.safetensors"))
    for key, value in model.backbone.model.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), f"{key} was not loaded"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        MultiTaskModel.from_backbone("test_efficientnet", MIXED_TASKS, weights=str(tmp_path / "nope.safetensors"))
    with pytest.raises(ValueError, match="'not_a_model'"):
        MultiTaskModel.from_backbone("not_a_model", MIXED_TASKS, library="timm")


def test_timm_weights_from_another_implementation_match_by_position(tmp_path):
    """Same tensors in the same order under other names (e.g. the original EfficientNet-Lite0 release)."""
    import timm

    source = timm.create_model("test_efficientnet", num_classes=10)
    renamed = {f"orig.{i:03d}": v for i, v in enumerate(source.state_dict().values())}
    torch.save(renamed, tmp_path / "weights.pth")
    model = MultiTaskModel.from_backbone("test_efficientnet", MIXED_TASKS, weights=str(tmp_path / "weights.pth"))
    for (key, value), src in zip(model.backbone.model.state_dict().items(), source.state_dict().values()):
        assert torch.equal(value, src), key


@pytest.mark.parametrize("make", [timm_model, bert_model], ids=["timm", "bert"])
def test_save_load_round_trip_gives_identical_logits(tmp_path, make):
    model = make().eval()
    inputs = {"pixel_values": images(3)} if make is timm_model else _text_batch(3)
    before = model(**inputs).logits
    model.save_pretrained(tmp_path)
    files = sorted(os.listdir(tmp_path))
    assert files == ["config.json", "model.safetensors"], files
    loaded = MultiTaskModel.from_pretrained(tmp_path).eval()
    after = loaded(**inputs).logits
    reference = model.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in loaded.state_dict().items())
    for name in before:
        # Same weights; sdpa kernels may still differ in the last bit between two module instances.
        assert torch.allclose(before[name], after[name], rtol=0, atol=1e-6), name
    assert loaded.config.task_names == model.config.task_names


@pytest.mark.slow
def test_automodel_loads_after_importing_hf_mtl_only(tmp_path):
    model = timm_model().eval()
    model.save_pretrained(tmp_path)
    expected = model(pixel_values=images(2)).logits["tags"]
    torch.save(expected, tmp_path.parent / "expected.pt")
    script = textwrap.dedent(f"""
        import torch, hf_mtl
        from transformers import AutoConfig, AutoModel
        config = AutoConfig.from_pretrained({str(tmp_path)!r})
        assert type(config).__name__ == "MultiTaskConfig", type(config)
        model = AutoModel.from_pretrained({str(tmp_path)!r}).eval()
        assert type(model).__name__ == "MultiTaskModel", type(model)
        x = torch.randn(2, 3, {IMAGE_SIZE}, {IMAGE_SIZE}, generator=torch.Generator().manual_seed(0))
        got = model(pixel_values=x).logits["tags"]
        # Same weights; another process may pick other CPU kernels, which can differ in the last bit.
        assert torch.allclose(got, torch.load({str(tmp_path.parent / "expected.pt")!r}), rtol=0, atol=1e-6), "logits differ"
        print("ok")
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_saved_folder_has_no_pickle_files(tmp_path):
    bert_model().save_pretrained(tmp_path)
    for name in os.listdir(tmp_path):
        assert not name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")), name
        with open(tmp_path / name, "rb") as handle:
            assert not handle.read(2).startswith(b"\x80"), f"{name} looks like a pickle"


def test_automodel_registration():
    config = AutoConfig.for_model("hf_mtl", backbone="test_efficientnet", tasks=MIXED_TASKS)
    assert isinstance(config, MultiTaskConfig)
    assert isinstance(AutoModel.from_config(config), MultiTaskModel)


def test_model_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="no tasks"):
        MultiTaskModel(MultiTaskConfig(backbone="test_efficientnet", tasks=[]))
    model = timm_model()
    with pytest.raises(ValueError, match="unknown tasks \\['colour'\\]"):
        model(pixel_values=images(2), labels={"colour": torch.zeros(2)})
