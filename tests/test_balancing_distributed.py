"""Dynamic task balancing under a real `accelerate launch --num_processes 2` on CPU: both processes hold the same task
weights, and they equal one process with twice the batch (uncertainty weighting and DWA are exact)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from tests.multiprocess import REPO, TIMEOUT, accelerate_launch, launch_env, requires_accelerate

STRATEGIES = ("uncertainty", "dwa")

SCRIPT = textwrap.dedent(
    """
    import sys

    from safetensors.torch import save_file

    from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
    from tests.test_trainer import NO_DROPOUT, _text_rows
    from tests.tiny_models import bert_model

    out, batch = sys.argv[1], int(sys.argv[2])
    for strategy in {strategies!r}:
        model = bert_model(**NO_DROPOUT)
        args = MultiTaskTrainingArguments(
            output_dir=f"{{out}}/{{strategy}}", per_device_train_batch_size=batch, max_steps=3, learning_rate=0.3,
            optim="sgd", lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0, report_to=[],
            save_strategy="no", use_cpu=True, seed=0, data_seed=0, disable_tqdm=True, task_balancing=strategy,
            task_balancing_kwargs={{"period": 1}} if strategy == "dwa" else None, task_balancing_lr=0.5,
        )
        trainer = MultiTaskTrainer(model=model, args=args, train_dataset=_text_rows(24, seed=5))
        trainer.train()
        rank = trainer.args.process_index
        state = {{f"balancer.{{k}}": v.detach().cpu().contiguous() for k, v in trainer.task_balancer.state_dict().items()}}
        state.update({{f"model.{{k}}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}})
        save_file(state, f"{{out}}/{{strategy}}_rank{{rank}}.safetensors")
    """
)


@pytest.mark.slow
@requires_accelerate
def test_two_processes_share_task_weights_equal_to_one_process(tmp_path):
    script = tmp_path / "train_balanced.py"
    script.write_text(SCRIPT.format(strategies=STRATEGIES))
    accelerate_launch([str(script), str(tmp_path / "two"), "4"], tmp_path).check()
    assert (tmp_path / "two" / f"{STRATEGIES[0]}_rank1.safetensors").is_file(), "accelerate started only one process"
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), "8"], cwd=REPO, env=launch_env(tmp_path),
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-5000:]
    for strategy in STRATEGIES:
        rank0 = load_file(tmp_path / "two" / f"{strategy}_rank0.safetensors")
        rank1 = load_file(tmp_path / "two" / f"{strategy}_rank1.safetensors")
        single = load_file(tmp_path / "one" / f"{strategy}_rank0.safetensors")
        moved = rank0["balancer.log_vars"] if strategy == "uncertainty" else rank0["balancer.weights"] - 1
        assert moved.abs().max() > 1e-3, f"{strategy}: the task weights never moved, the test would prove nothing"
        for key in single:
            torch.testing.assert_close(rank1[key], rank0[key], rtol=0, atol=0, equal_nan=True,
                                       msg=lambda m, k=key, s=strategy: f"{s} {k}: processes disagree: {m}")
            torch.testing.assert_close(rank0[key], single[key], rtol=1e-4, atol=1e-5, equal_nan=True,
                                       msg=lambda m, k=key, s=strategy: f"{s} {k}: 2 x 4 differs from 1 x 8: {m}")
