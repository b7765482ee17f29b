"""(c) Sharded models: peak memory per process of FSDP2 vs DDP, 2 processes, on a text backbone of a few hundred million
parameters built from a config (random weights: memory does not depend on their values).

Each variant is a real ``accelerate launch --num_processes 2`` of this script in worker mode, training a
``MultiTaskModel`` (BERT-style backbone + a multilabel and a multiclass head) for a couple of AdamW steps through
``MultiTaskTrainer``: DDP with the stock arguments, FSDP with the recipe keys ``fsdp: true`` + ``fsdp_config: {version:
2}``. Each process reports its peak resident memory (``ru_maxrss``) and the bytes of parameters, gradients and
optimizer state it holds (its local shards under FSDP; gradients measured just before an optimizer step).

    python benchmarks/scale_fsdp.py            # ~200M parameters (hidden 1024, 12 layers)
    python benchmarks/scale_fsdp.py --quick    # a tiny backbone (smoke test)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run as a script: the repository's hf_mtl and benchmarks packages
    sys.path.insert(0, str(ROOT))

from benchmarks.common import base_parser, write_report  # noqa: E402

logger = logging.getLogger("benchmarks.scale_fsdp")
VARIANTS = ("ddp", "fsdp")
TASKS = [{"name": "tags", "type": "multilabel", "labels": [f"t{i}" for i in range(8)]},
         {"name": "kind", "type": "multiclass", "labels": ["a", "b", "c"]}]
QUESTION = ("How much memory does each of 2 processes need to train a multi-task model on a backbone of a few hundred "
            "million parameters, sharded (FSDP2) vs replicated (DDP)?")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--hidden-size", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--vocab-size", type=int, default=30522)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=2, help="Per process.")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--worker-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.hidden_size, args.layers, args.vocab_size = 64, 2, 512
    return args


def build_model(args: argparse.Namespace):
    import torch
    from transformers import BertConfig

    from hf_mtl import MultiTaskConfig, MultiTaskModel

    torch.manual_seed(args.seed)
    bert = BertConfig(vocab_size=args.vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.layers,
                      num_attention_heads=max(1, args.hidden_size // 64), intermediate_size=4 * args.hidden_size,
                      max_position_embeddings=max(64, args.seq_len))
    config = MultiTaskConfig(backbone="bert-from-config", backbone_library="transformers",
                             backbone_config=bert.to_dict(), pooling="mean", tasks=TASKS)
    return MultiTaskModel(config)


def _tensor_bytes(tensors) -> int:
    from torch.distributed.tensor import DTensor

    total = 0
    for t in tensors:
        if t is None:
            continue
        local = t.to_local() if isinstance(t, DTensor) else t
        total += local.numel() * local.element_size()
    return total


def worker(args: argparse.Namespace) -> None:
    """One process of one variant: train ``--steps`` steps, write this rank's memory figures."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments

    baseline = _rss()  # python, torch, transformers and hf_mtl imported; no model yet
    model = build_model(args)
    n_params = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(args.seed)
    rows = args.batch_size * 2 * args.steps
    data = Dataset.from_dict({
        "input_ids": torch.randint(1, args.vocab_size, (rows, args.seq_len), generator=g).tolist(),
        "attention_mask": [[1] * args.seq_len] * rows,
        "tags": torch.randint(0, 2, (rows, len(TASKS[0]["labels"])), generator=g).float().tolist(),
        "kind": torch.randint(0, 3, (rows,), generator=g).tolist(),
    })
    extra: dict[str, Any] = {"fsdp": True, "fsdp_config": {"version": 2}} if args.worker == "fsdp" else {}
    training_args = MultiTaskTrainingArguments(
        output_dir=os.path.join(args.worker_dir, args.worker), max_steps=args.steps,
        per_device_train_batch_size=args.batch_size, learning_rate=1e-4, optim="adamw_torch", save_strategy="no",
        report_to="none", logging_steps=1, seed=args.seed, dataloader_num_workers=0, disable_tqdm=True, **extra)
    grads: list[int] = []

    class GradientBytes(TrainerCallback):  # gradients exist between backward and the optimizer step
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            grads.append(_tensor_bytes(p.grad for p in model.parameters()))

    trainer = MultiTaskTrainer(model=model, args=training_args, train_dataset=data, callbacks=[GradientBytes()])
    trainer.train()
    wrapped = trainer.model_wrapped
    params = list(wrapped.parameters())
    state = [v for s in trainer.optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
    result = {
        "rank": training_args.process_index,
        "sharded": trainer.is_fsdp_enabled,
        "parameters": n_params,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_before_model_bytes": baseline,
        "rss_after_training_bytes": _rss(),
        "param_bytes": _tensor_bytes(params),
        "grad_bytes": max(grads, default=0),
        "optimizer_state_bytes": _tensor_bytes(state),
        "train_loss": trainer.state.log_history[-1].get("train_loss"),
    }
    with open(os.path.join(args.worker_dir, f"{args.worker}-rank{result['rank']}.json"), "w") as f:
        json.dump(result, f)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(variant: str, args: argparse.Namespace, argv: list[str], folder: str) -> list[dict[str, Any]]:
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    command = [accelerate if os.path.exists(accelerate) else "accelerate", "launch", "--multi_gpu",
               "--num_processes", "2", "--num_machines", "1", "--main_process_port", str(_free_port()),
               "--mixed_precision", "no", "--dynamo_backend", "no", str(Path(__file__).resolve()), *argv,
               "--worker", variant, "--worker-dir", folder]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    logger.info("%s: %s", variant, " ".join(command))
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} launch failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return [json.loads(Path(folder, f"{variant}-rank{r}.json").read_text()) for r in range(2)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.worker:
        worker(args)
        return {}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    passed = [f"--{key.replace('_', '-')}={getattr(args, key)}"  # the resolved sizes (--quick included)
              for key in ("hidden_size", "layers", "vocab_size", "seq_len", "batch_size", "steps", "seed")]
    per_variant = {}
    with tempfile.TemporaryDirectory(prefix="scale_fsdp-") as folder:
        for variant in VARIANTS:  # one after the other: their peaks never overlap
            per_variant[variant] = launch(variant, args, passed, folder)
    gib = 1024 ** 3
    results: dict[str, Any] = {"parameters": per_variant["ddp"][0]["parameters"], "variants": {}}
    for variant, ranks in per_variant.items():
        results["variants"][variant] = {
            "sharded": all(r["sharded"] for r in ranks),
            "per_rank": ranks,
            "peak_rss_gib_max": max(r["peak_rss_bytes"] for r in ranks) / gib,
            "peak_above_imports_gib_max": max(r["peak_rss_bytes"] - r["rss_before_model_bytes"] for r in ranks) / gib,
            "state_gib_max": max(r["param_bytes"] + r["grad_bytes"] + r["optimizer_state_bytes"] for r in ranks) / gib,
        }
    v = results["variants"]
    results["peak_rss_ratio_fsdp_to_ddp"] = v["fsdp"]["peak_rss_gib_max"] / v["ddp"]["peak_rss_gib_max"]
    results["peak_above_imports_ratio_fsdp_to_ddp"] = (v["fsdp"]["peak_above_imports_gib_max"]
                                                       / v["ddp"]["peak_above_imports_gib_max"])
    results["state_ratio_fsdp_to_ddp"] = v["fsdp"]["state_gib_max"] / v["ddp"]["state_gib_max"]

    def plot(path: Path) -> None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        labels = ["peak RSS", "peak RSS above\nimports", "params + grads\n+ optimizer state"]
        keys = ("peak_rss_gib_max", "peak_above_imports_gib_max", "state_gib_max")
        for i, variant in enumerate(VARIANTS):
            ax.bar([x + 0.38 * i for x in range(3)], [v[variant][k] for k in keys], width=0.38, label=variant.upper())
        ax.set_xticks([x + 0.19 for x in range(3)], labels)
        ax.set_ylabel("GiB per process (max over 2)")
        ax.set_title(f"{results['parameters'] / 1e6:.0f}M-parameter multi-task model, 2 processes")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return write_report("scale_fsdp", QUESTION, args, results, plot=plot, argv=argv)


if __name__ == "__main__":
    main()
