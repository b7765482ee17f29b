"""Preprocessing from the backbone: timm transforms as a savable processor, transformers tokenizers, lazy transforms."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, BertTokenizerFast

from hf_mtl import TimmImageProcessor, build_processor, dataset_transform, preprocess
from hf_mtl.data import MultiTaskDataCollator
from tests.tiny_models import IMAGE_SIZE, bert_model, timm_model


def _images(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)),  # grayscale PIL, like Fashion-MNIST
        rng.random((40, 30, 3)).astype(np.float32),  # float HWC array in [0, 1]
        rng.integers(0, 255, (3, 20, 20), dtype=np.uint8),  # CHW array
    ]


def test_timm_processor_uses_timm_data_config_and_round_trips(tmp_path):
    model = timm_model()
    processor = build_processor(model, image_size=IMAGE_SIZE)
    assert isinstance(processor, TimmImageProcessor)
    import timm

    expected = timm.data.resolve_data_config(model=model.backbone.model)
    assert processor.mean == pytest.approx(list(expected["mean"]))
    assert processor.crop_pct == pytest.approx(expected["crop_pct"])
    assert processor.input_size == [3, IMAGE_SIZE, IMAGE_SIZE]

    path = tmp_path / "img.png"
    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8)).save(path)
    batch = preprocess(processor, [*_images(), str(path)])
    assert batch["pixel_values"].shape == (4, 3, IMAGE_SIZE, IMAGE_SIZE)
    # eval transform is deterministic and matches timm's own create_transform output
    eval_tf = timm.data.create_transform(**{**expected, "input_size": (3, IMAGE_SIZE, IMAGE_SIZE)})
    first = eval_tf(_images()[0].convert("RGB"))
    torch.testing.assert_close(batch["pixel_values"][0], first)

    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    for reloaded in (AutoImageProcessor.from_pretrained(tmp_path / "model"), build_processor(tmp_path / "model")):
        assert isinstance(reloaded, TimmImageProcessor)
        torch.testing.assert_close(preprocess(reloaded, _images())["pixel_values"], preprocess(processor, _images())["pixel_values"])
    # model output on preprocessed input runs end to end
    out = model(**preprocess(processor, _images()))
    assert out.logits["tags"].shape == (3, 3)


def test_train_transform_augments_eval_does_not():
    processor = build_processor(timm_model().config, image_size=IMAGE_SIZE)
    image = _images()[1]
    eval_a, eval_b = (preprocess(processor, [image])["pixel_values"] for _ in range(2))
    torch.testing.assert_close(eval_a, eval_b)
    torch.manual_seed(0)
    train = [preprocess(processor, [image], train=True)["pixel_values"] for _ in range(4)]
    assert any(not torch.allclose(train[0], t) for t in train[1:])


def test_timm_processor_follows_in_chans():
    from hf_mtl import MultiTaskConfig

    config = MultiTaskConfig(
        backbone="test_efficientnet", backbone_kwargs={"in_chans": 1}, tasks=[{"name": "t", "type": "regression"}]
    )
    processor = build_processor(config, image_size=16)
    assert preprocess(processor, _images())["pixel_values"].shape == (3, 1, 16, 16)


def _tokenizer_folder(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz", "the", "cat", "dog", "sat"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path / "tok")
    return tmp_path / "tok"


def test_transformers_text_backbone_gets_its_tokenizer_and_collator_pads(tmp_path):
    folder = _tokenizer_folder(tmp_path)
    model = bert_model()
    tokenizer = build_processor(model, source=folder)
    assert isinstance(tokenizer, type(AutoTokenizer.from_pretrained(folder)))
    with pytest.raises(ValueError, match="text processor.*AutoTokenizer.*tiny-bert.*source="):
        build_processor(model, source=tmp_path / "no_such_folder")  # the error names the backbone and what to pass

    batch = preprocess(tokenizer, ["the cat sat", "dog"])
    assert batch["input_ids"].shape[0] == 2 and batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()

    ds = datasets.Dataset.from_dict({"text": ["the cat sat", "dog", "the dog sat the cat"], "score": [1.0, None, 2.0]})
    ds = ds.with_transform(dataset_transform(tokenizer, "text"))
    rows = [ds[i] for i in range(3)]
    assert "text" not in rows[0] and len(rows[0]["input_ids"]) != len(rows[1]["input_ids"])  # unpadded rows
    collator = MultiTaskDataCollator(model.task_specs, tokenizer=tokenizer)
    collated = collator(rows)
    assert collated["input_ids"].shape[0] == 3
    assert collated["labels"]["score"].tolist() == [1.0, -100.0, 2.0]
    out = model(**{k: v for k, v in collated.items() if k != "labels"})
    assert out.logits["score"].shape == (3, 1)


def test_image_dataset_transform_is_lazy_and_keeps_label_columns():
    processor = build_processor(timm_model().config, image_size=IMAGE_SIZE)
    ds = datasets.Dataset.from_dict({"image": [_images()[0]] * 4, "tags": [[1, 0, None]] * 4})
    ds = ds.with_transform(dataset_transform(processor, "image", train=True))
    row = ds[0]
    assert set(row) == {"tags", "pixel_values"} and row["pixel_values"].shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    with pytest.raises(KeyError, match="no input column 'img'"):
        datasets.Dataset.from_dict({"image": [_images()[0]]}).with_transform(dataset_transform(processor, "img"))[0]


def _transformers_config(model_config):
    from hf_mtl import MultiTaskConfig

    return MultiTaskConfig(
        backbone="local-backbone", backbone_library="transformers", backbone_config=model_config.to_dict(),
        tasks=[{"name": "t", "type": "regression"}],
    )


def test_transformers_vision_backbone_uses_its_image_processor(tmp_path):
    from transformers import ViTConfig, ViTImageProcessor

    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path / "vit")
    config = _transformers_config(ViTConfig(image_size=16, patch_size=8, hidden_size=8, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=8))
    processor = build_processor(config, source=tmp_path / "vit")
    assert isinstance(processor, ViTImageProcessor)
    eval_a = preprocess(processor, _images())["pixel_values"]
    assert eval_a.shape == (3, 3, 16, 16)
    torch.testing.assert_close(eval_a, preprocess(processor, _images())["pixel_values"])
    torch.manual_seed(0)
    train = [preprocess(processor, _images()[1:2], train=True)["pixel_values"] for _ in range(4)]
    assert any(not torch.allclose(train[0], t) for t in train[1:])  # random crop / flip before the processor


def test_transformers_audio_backbone_uses_its_feature_extractor(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor

    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(tmp_path / "w2v")
    config = _transformers_config(Wav2Vec2Config(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                 intermediate_size=8, conv_dim=(8,), conv_stride=(5,), conv_kernel=(10,),
                                                 num_feat_extract_layers=1))
    extractor = build_processor(config, source=tmp_path / "w2v")
    assert isinstance(extractor, Wav2Vec2FeatureExtractor)
    waves = [np.sin(np.linspace(0, 20, 1600)), {"array": np.zeros(800), "sampling_rate": 16000}]
    batch = preprocess(extractor, waves)
    assert batch["input_values"].shape == (2, 1600) and batch["attention_mask"][1].sum() == 800
    with pytest.raises(ValueError, match="audio at 8000 Hz but the feature extractor expects 16000 Hz"):
        preprocess(extractor, [{"array": np.zeros(800), "sampling_rate": 8000}])
