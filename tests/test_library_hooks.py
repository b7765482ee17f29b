"""The library helpers hf_mtl builds on (timm's checkpoint remapping, accelerate's unwrapping) and what its remaining
private override relies on in transformers, pinned so an upgrade that changes it fails here.

`MultiTaskModel._load_pretrained_model` wraps transformers' private loader: transformers raises a generic
`RuntimeError` (or re-initialises a head silently) after its own load report, before `from_pretrained` could hand the
loading info to a public hook, so the named-task error has to be raised between loading and that report.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from safetensors.torch import save_file
from transformers import PreTrainedModel
from transformers.utils.loading_report import LoadStateDictInfo

from hf_mtl import MultiTaskModel
from hf_mtl.backbones import load_timm_weights, read_state_dict
from hf_mtl.transfer import unwrap_multitask_model
from tests.tiny_models import MIXED_TASKS, timm_model


def test_private_loader_signature_and_report_fields():
    loader = inspect.getattr_static(PreTrainedModel, "_load_pretrained_model")
    assert isinstance(loader, staticmethod)
    assert list(inspect.signature(loader.__func__).parameters)[:4] == [
        "model", "state_dict", "checkpoint_files", "load_config"
    ]
    assert "cls._load_pretrained_model(" in inspect.getsource(PreTrainedModel.from_pretrained.__func__)
    assert {"missing_keys", "unexpected_keys", "mismatched_keys"} <= set(LoadStateDictInfo.__dataclass_fields__)


def test_stock_loader_alone_gives_only_a_generic_error(tmp_path):
    """Without the override, a changed label list fails with transformers' generic message; with it, the task is
    named (the reason the override stays)."""
    timm_model().save_pretrained(tmp_path)
    changed = [dict(MIXED_TASKS[0], labels=["a", "b", "c", "d"]), *MIXED_TASKS[1:]]
    config = MultiTaskModel.config_class.from_pretrained(tmp_path)
    config.tasks = changed

    class Stock(MultiTaskModel):
        _load_pretrained_model = staticmethod(PreTrainedModel._load_pretrained_model)

    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes") as stock:
        Stock.from_pretrained(tmp_path, config=config)
    assert "task 'tags'" not in str(stock.value)
    with pytest.raises(ValueError, match=r"task 'tags': head tensor .* shape \(3,\) in the weights but \(4,\)"):
        MultiTaskModel.from_pretrained(tmp_path, config=config)


def test_positional_remap_of_another_implementations_checkpoint(tmp_path):
    """Other key names, same tensors in the same order (+ a trailing classifier): mapped by position (timm's
    ``remap_state_dict``); a DataParallel ``module.`` prefix is dropped on reading (timm's ``clean_state_dict``)."""
    source = timm_model(seed=1).backbone.model.state_dict()
    renamed = {f"module.layer{i}": t.clone() for i, t in enumerate(source.values())}
    renamed["module.classifier.weight"] = torch.zeros(5, 3)
    torch.save(renamed, tmp_path / "other.pt")  # a PyTorch file keeps the order (safetensors sorts the names)
    state = read_state_dict(tmp_path / "other.pt")
    assert next(iter(state)) == "layer0"
    save_file(renamed, tmp_path / "other.safetensors")
    assert set(read_state_dict(tmp_path / "other.safetensors")) == set(state)
    target = timm_model(seed=2).backbone.model
    load_timm_weights(target, state, source="other")
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), source.values()))
    shuffled = dict(reversed(list(state.items())[: len(source)]))
    with pytest.raises(ValueError, match="other: Tensor (size|shape) mismatch .* do not belong to this architecture"):
        load_timm_weights(target, shuffled, source="other")


def test_unwrap_through_accelerate_and_peft_wrappers():
    model = timm_model()
    assert unwrap_multitask_model(torch.nn.DataParallel(model)) is model
    assert unwrap_multitask_model(torch.compile(model)) is model
    with pytest.raises(TypeError, match="expected a MultiTaskModel"):
        unwrap_multitask_model(torch.nn.Linear(2, 2))
