"""Fine-tuning a pretrained backbone keeps its BatchNorm statistics by default (`norm_statistics="auto"`)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
from tests.tiny_models import synthetic_rows, timm_model

TASKS = [{"name": "score", "type": "regression"}]


def _norms(model):
    return [m for m in model.backbone.modules() if isinstance(m, _BatchNorm)]


@pytest.mark.parametrize("mode", ["auto", "frozen", "train"])
def test_pretrained_statistics_stay_fresh_ones_follow_the_mode(tmp_path, mode):
    model = timm_model(tasks=TASKS)
    norms = _norms(model)
    assert len(norms) >= 2
    pretrained = norms[: len(norms) // 2]
    for m in pretrained:  # statistics as a pretrained checkpoint would hold them
        m.running_mean.fill_(0.1)
        m.running_var.fill_(2.0)
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    args = MultiTaskTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, learning_rate=1e-3, report_to=[],
        save_strategy="no", use_cpu=True, freeze_policy="full", norm_statistics=mode, disable_tqdm=True,
    )
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=synthetic_rows(8))
    trainer.train()
    moved = [not torch.equal(m.running_mean, b[0]) for m, b in zip(norms, before)]
    expect_pretrained_moved = mode == "train"
    expect_fresh_moved = mode != "frozen"
    assert all(x == expect_pretrained_moved for x in moved[: len(pretrained)]), (mode, moved)
    assert all(x == expect_fresh_moved for x in moved[len(pretrained) :]), (mode, moved)
    assert all(p.requires_grad for m in norms for p in m.parameters())  # the affine weights still train
