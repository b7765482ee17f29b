"""The feature cache at scale: 2 processes (a real `accelerate launch`) each compute half of the rows into their own
Arrow part and read the cache back as one, equal to the cache one process writes; a stream is cached once (one pass)
and read back memory-mapped."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from hf_mtl.data import TrainingStream, split_stream, stream_files
from hf_mtl.preprocessing import dataset_transform
from hf_mtl.transfer import apply_freeze_policy, cache_features
from hf_mtl.transfer.feature_cache import FEATURES_COLUMN, PARTS_FILE
from tests.multiprocess import accelerate_launch, requires_accelerate
from tests.test_streaming import write_parquet_shards
from tests.tiny_models import synthetic_dataset, timm_model

SCRIPT = """
import sys
import datasets
from accelerate import PartialState
from hf_mtl.transfer import apply_freeze_policy, cache_features
from tests.tiny_models import synthetic_dataset, timm_model

state = PartialState(cpu=True)  # one gloo group of the launched CPU processes
model = timm_model(seed=0)
apply_freeze_policy(model, "heads")
data = synthetic_dataset(22, seed=3)
cached = cache_features(model, data, cache_dir=sys.argv[1], batch_size=4, process_index=state.process_index,
                        num_processes=state.num_processes, wait_for_everyone=state.wait_for_everyone)
assert len(cached) == 22, len(cached)
print("rows", len(cached), "rank", state.process_index)
"""


def _frozen_model():
    model = timm_model(seed=0)
    apply_freeze_policy(model, "heads")
    return model


@requires_accelerate
@pytest.mark.slow
def test_two_processes_write_one_cache_equal_to_one_process(tmp_path):
    script = tmp_path / "cache_script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    accelerate_launch([str(script), str(tmp_path / "two")], tmp_path, num_processes=2).check()
    folders = list((tmp_path / "two").glob("features-*"))
    assert len(folders) == 1 and not list((tmp_path / "two").glob(".tmp-*"))  # published once, no staging left
    assert sorted(p.name for p in folders[0].glob("*.arrow")) == [
        "part-00000-of-00002.arrow", "part-00001-of-00002.arrow"]
    two = cache_features(_frozen_model(), synthetic_dataset(22, seed=3), cache_dir=tmp_path / "two",
                         num_processes=2, batch_size=4)  # a hit: read back as one
    one = cache_features(_frozen_model(), synthetic_dataset(22, seed=3), cache_dir=tmp_path / "one", batch_size=4)
    assert len(two) == len(one) == 22
    torch.testing.assert_close(two[:][FEATURES_COLUMN], one[:][FEATURES_COLUMN], rtol=0, atol=1e-6)
    assert two.with_format(None)["kind"] == one.with_format(None)["kind"]  # labels in the same row order


@pytest.mark.slow
def test_stream_cached_once_then_memory_mapped(tmp_path):
    folder = write_parquet_shards(tmp_path / "d", 12, shards=2)
    raw = split_stream(stream_files(sorted(folder.glob("*.parquet")), "parquet", path_columns=["image"]))
    model = _frozen_model()
    stream = TrainingStream(raw, transform=dataset_transform(model.get_processor(), "image"), description="12 rows")
    cached = cache_features(model, stream, cache_dir=tmp_path / "cache", batch_size=5)
    assert len(cached) == 12 and cached[0][FEATURES_COLUMN].ndim == 1
    folder_ = next((tmp_path / "cache").glob("features-*"))
    assert (folder_ / PARTS_FILE).is_file() and all(c["filename"].startswith(str(folder_)) for c in cached.cache_files)
    # the features are the backbone's on those rows, in stream order
    rows = list(stream.one_pass())
    batch = model.backbone(pixel_values=torch.stack([torch.as_tensor(r["pixel_values"]) for r in rows]))
    torch.testing.assert_close(cached[:][FEATURES_COLUMN], batch.float().detach(), rtol=1e-5, atol=1e-5)
    assert cached.with_format(None)["kind"] == [r["kind"] for r in rows]
    stamp = folder_.stat().st_mtime_ns
    again = cache_features(model, stream, cache_dir=tmp_path / "cache", batch_size=5)  # a hit: no second pass
    assert len(again) == 12 and folder_.stat().st_mtime_ns == stamp
    assert np.isfinite(np.asarray(again[:][FEATURES_COLUMN])).all()
