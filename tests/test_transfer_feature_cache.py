"""Frozen-backbone feature cache: cached == uncached training, cache hits, invalidation, refusal of augmented inputs."""

from __future__ import annotations

import pytest
import torch

from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
from hf_mtl.transfer import backbone_fingerprint, cache_features, set_trainable_blocks
from tests.tiny_models import synthetic_dataset, timm_model


class ForwardCounter:
    """Counts real backbone forward passes (a forward hook, the backbone itself runs normally)."""

    def __init__(self, model):
        self.calls = 0
        model.backbone.register_forward_hook(self._count)

    def _count(self, module, args, output):
        self.calls += 1


def _features(dataset) -> torch.Tensor:
    return dataset[: len(dataset)]["features"]


def _args(tmp_path, **kwargs):
    return MultiTaskTrainingArguments(
        output_dir=str(tmp_path / "run"), report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True,
        logging_strategy="no", seed=0, data_seed=0, max_steps=6, per_device_train_batch_size=4,
        per_device_eval_batch_size=4, learning_rate=1e-2, freeze_policy="heads", **kwargs,
    )


def test_cached_training_equals_uncached(tmp_path):
    data = synthetic_dataset(16)
    uncached = timm_model(seed=3)
    MultiTaskTrainer(model=uncached, args=_args(tmp_path), train_dataset=data).train()

    cached = timm_model(seed=3)
    counter = ForwardCounter(cached)
    trainer = MultiTaskTrainer(model=cached, args=_args(tmp_path, feature_cache=True,
                                                        feature_cache_dir=str(tmp_path / "cache")),
                               train_dataset=data, eval_dataset=synthetic_dataset(8, seed=1))
    assert "features" in trainer.train_dataset.column_names and "pixel_values" not in trainer.train_dataset.column_names
    assert len(trainer.train_dataset) == 16
    calls_while_caching = counter.calls
    trainer.train()
    assert counter.calls == calls_while_caching, "training on cached features never runs the backbone"
    reference = uncached.state_dict()
    initial = timm_model(seed=3).state_dict()
    assert not torch.equal(reference["heads.kind.layers.1.weight"], initial["heads.kind.layers.1.weight"])
    for name, tensor in cached.state_dict().items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-5, atol=1e-6, msg=name)
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] > 0


def test_cache_hit_and_invalidation(tmp_path):
    model = timm_model()
    set_trainable_blocks(model, 0)
    data = synthetic_dataset(10)
    counter = ForwardCounter(model)
    rng = torch.get_rng_state()
    first = cache_features(model, data, cache_dir=tmp_path, batch_size=4)
    assert counter.calls == 3 + 0  # three batches, the augmentation check runs no backbone
    # computing the cache draws nothing from the global RNG: a run that finds it trains like one that computed it
    assert torch.equal(torch.get_rng_state(), rng)
    again = cache_features(model, data, cache_dir=tmp_path, batch_size=4)
    assert counter.calls == 3, "a second call with the same backbone and preprocessing reads the cache"
    torch.testing.assert_close(_features(again), _features(first), rtol=0, atol=0)
    assert again[0]["kind"] == data[0]["kind"] and again[0]["tags"] == data[0]["tags"]
    with torch.no_grad():
        direct = model.eval().backbone(pixel_values=data[0:3]["pixel_values"])
    torch.testing.assert_close(_features(first)[:3], direct, rtol=1e-5, atol=1e-6)
    counter.calls = 0

    # Another backbone weight: a new key, recomputed features.
    fingerprint = backbone_fingerprint(model)
    with torch.no_grad():
        model.backbone.model.conv_head.weight.mul_(1.5)
    assert backbone_fingerprint(model) != fingerprint
    changed_backbone = cache_features(model, data, cache_dir=tmp_path, batch_size=4)
    assert counter.calls == 3
    assert not torch.allclose(_features(changed_backbone), _features(first))

    # Other preprocessing (a transform on the inputs): a new key too.
    def halve(batch):
        return {**batch, "pixel_values": [torch.as_tensor(x) * 0.5 for x in batch["pixel_values"]]}

    changed_inputs = cache_features(model, data.with_transform(halve), cache_dir=tmp_path, batch_size=4)
    assert counter.calls == 6
    assert not torch.allclose(_features(changed_inputs), _features(changed_backbone))
    # Yet another different batch of rows gives another key.
    cache_features(model, data.select(range(5)), cache_dir=tmp_path, batch_size=5)
    assert counter.calls == 7
    assert len(list(tmp_path.glob("features-*"))) == 4


def test_cache_refuses_augmented_inputs_and_trainable_backbones(tmp_path):
    model = timm_model()
    set_trainable_blocks(model, 0)
    data = synthetic_dataset(6)

    def jitter(batch):
        return {**batch, "pixel_values": [torch.as_tensor(x) + torch.randn(3, 32, 32) for x in batch["pixel_values"]]}

    with pytest.raises(ValueError, match="randomly augmented"):
        cache_features(model, data.with_transform(jitter), cache_dir=tmp_path)
    set_trainable_blocks(model, 1)
    with pytest.raises(ValueError, match="cannot cache features of a backbone that trains"):
        cache_features(model, data, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="cannot cache features of a backbone that trains"):
        args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, feature_cache=True,
                                          freeze_policy="full")
        MultiTaskTrainer(model=timm_model(), args=args, train_dataset=data)


def test_cache_of_a_transformers_backbone_matches_its_pooled_output(tmp_path):
    from datasets import Dataset

    from tests.tiny_models import bert_model

    model = bert_model()
    set_trainable_blocks(model, 0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 64, (6, 7), generator=g)
    data = Dataset.from_dict({"input_ids": ids.tolist(), "kind": [0, 1, 2, None, 1, 0], "note": list("abcdef")})
    cached = cache_features(model, data, cache_dir=tmp_path, batch_size=4)
    assert sorted(cached.column_names) == ["features", "kind"], "inputs and unrelated columns are dropped"
    with torch.no_grad():
        expected = model.eval().backbone(input_ids=ids)
    torch.testing.assert_close(_features(cached), expected, rtol=1e-5, atol=1e-6)
    batch = model(features=_features(cached)[:2])
    assert batch.logits["kind"].shape == (2, 3)


def test_key_ignores_whether_the_processor_has_run(tmp_path):
    """The image processor builds its transforms on first use: that cache is not part of the preprocessing key."""
    from PIL import Image

    from hf_mtl.preprocessing import TimmImageProcessor, dataset_transform
    from hf_mtl.transfer.feature_cache import preprocessing_fingerprint

    Image.new("RGB", (20, 20), (200, 10, 10)).save(tmp_path / "red.png")
    from datasets import Dataset

    raw = Dataset.from_dict({"image": [str(tmp_path / "red.png")] * 2, "kind": [0, 1]})
    processor = TimmImageProcessor(input_size=(3, 16, 16))
    before = preprocessing_fingerprint(raw.with_transform(dataset_transform(processor, "image")), None)
    processor([str(tmp_path / "red.png")])
    assert processor._transforms, "the processor built (and kept) its transform"
    after = preprocessing_fingerprint(raw.with_transform(dataset_transform(processor, "image")), None)
    assert after == before
    smaller = TimmImageProcessor(input_size=(3, 12, 12))
    assert preprocessing_fingerprint(raw.with_transform(dataset_transform(smaller, "image")), None) != before


@pytest.mark.slow  # fresh interpreters (CLI / app server)
def test_recipe_runs_reuse_the_cache_unless_preprocessing_changes(tmp_path):
    """Fresh processes: runs differing only in output_dir, logging and learning rates read the features written by the
    first run (no file rewritten); another image size (a changed transform) computes new ones."""
    from tests.recipe_helpers import run_cli, tiny_recipe, write_image_dataset, write_recipe

    data = write_image_dataset(tmp_path / "data", 24)
    cache = tmp_path / "cache"

    def train(name: str, **overrides) -> str:
        recipe = tiny_recipe(data, tmp_path / name, heads_only_epochs=1, heads_only_feature_cache=True,
                             feature_cache_dir=str(cache), max_steps=1, **overrides)
        result = run_cli("train", str(write_recipe(tmp_path / f"{name}.yaml", recipe)))
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stderr

    def snapshot() -> dict[str, int]:
        return {str(p.relative_to(cache)): p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}

    first = train("a")
    assert first.count("feature cache written") == 2 and "feature cache hit" not in first  # train and eval splits
    written = snapshot()
    second = train("b", logging_steps=2, learning_rate=0.05, heads_only_learning_rate=0.1,
                   logging_first_step=True)
    assert second.count("feature cache hit") == 2 and "feature cache written" not in second
    assert snapshot() == written, "the second run rewrote cache files"
    third = train("c", image_size=24)
    assert third.count("feature cache written") == 2
    assert len(list(cache.glob("features-*"))) == 4
