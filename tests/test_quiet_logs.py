"""Logs carry no warnings that do not apply (pin memory without an accelerator, DDP's unused-parameter search when
every trainable parameter is used) and progress reads as whole lines when the output is not a terminal."""

from __future__ import annotations

import warnings

import pytest

from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
from hf_mtl.progress import progress_line
from tests.recipe_helpers import run_cli, tiny_recipe, write_image_dataset, write_recipe
from tests.tiny_models import bert_model, synthetic_dataset, timm_model


def _args(tmp_path, **kwargs):
    return MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no",
                                      max_steps=2, per_device_train_batch_size=4, **kwargs)


def test_no_pin_memory_warning_on_cpu(tmp_path):
    args = _args(tmp_path, disable_tqdm=True)
    assert args.dataloader_pin_memory is False, "nothing to pin memory for on the CPU"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MultiTaskTrainer(model=timm_model(), args=args, train_dataset=synthetic_dataset(8)).train()
    assert not [w for w in caught if "pin_memory" in str(w.message)], [str(w.message) for w in caught]


def test_ddp_unused_parameter_search_only_where_parameters_can_be_unused(tmp_path):
    assert MultiTaskTrainer(model=timm_model(), args=_args(tmp_path)).args.ddp_find_unused_parameters is False
    # a transformers backbone's pooler is unused under mean pooling: DDP must keep searching ...
    assert MultiTaskTrainer(model=bert_model(), args=_args(tmp_path)).args.ddp_find_unused_parameters is None
    # ... unless the backbone stays frozen; and a user's explicit choice is kept
    heads = MultiTaskTrainer(model=bert_model(), args=_args(tmp_path, freeze_policy="heads"))
    assert heads.args.ddp_find_unused_parameters is False
    explicit = MultiTaskTrainer(model=timm_model(), args=_args(tmp_path, ddp_find_unused_parameters=True))
    assert explicit.args.ddp_find_unused_parameters is True


@pytest.mark.slow  # fresh interpreters (CLI / app server)
def test_progress_is_whole_lines_when_output_is_a_file(tmp_path):
    data = write_image_dataset(tmp_path / "data", 24)
    recipe = tiny_recipe(data, tmp_path / "out", max_steps=3, logging_steps=1)
    recipe.pop("dataloader_pin_memory")  # the default: no warning on the CPU either
    result = run_cli("train", str(write_recipe(tmp_path / "r.yaml", recipe)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\r" not in result.stderr and "\r" not in result.stdout, "a tqdm bar redrew itself into the log"
    assert "train: 3/3 (100%)" in result.stderr
    assert "pin_memory" not in result.stderr
    loss_lines = [line for line in result.stdout.splitlines() if line.startswith("{'loss'")]
    assert len(loss_lines) == 3, result.stdout
    assert max(len(line) for line in (result.stdout + result.stderr).splitlines()) < 1000


def test_progress_line_format():
    assert progress_line("train", 40, 200, 12.0) == "train: 40/200 (20%), 0:12 elapsed, ~0:48 left"
    assert progress_line("rows", 5, None, 3725.0) == "rows: 5, 1:02:05 elapsed"
