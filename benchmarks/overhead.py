"""Question 1: what does `MultiTaskTrainer` cost per training step?

Three ways to run the same masked multilabel training (same model and initial weights, data, batch size, AdamW,
constant LR, gradient clipping at 1.0) are timed step by step, interleaved:

* ``raw_loop``: a hand-written PyTorch loop over a ``TensorDataset`` (the baseline);
* ``plain_trainer``: ``transformers.Trainer`` with a hand-written masked-BCE ``compute_loss`` override;
* ``multitask_trainer``: ``hf_mtl.MultiTaskTrainer`` on rows with ``None`` for missing labels, as users give them.

A step time is the time between the ends of two consecutive optimizer steps (data loading, forward, backward,
clipping, optimizer, callbacks, logging); the first steps of each repetition are warm-up and not counted. Both the
wall-clock and the CPU time of the working thread are recorded (one torch thread by default, so all work runs in that
thread and its CPU time measures the work even when the machine is oversubscribed; see ``common.StepClock``).
Target: ``multitask_trainer`` within 3% of ``raw_loop`` in steady state.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from benchmarks.common import (  # noqa: E402
    StepClock,
    add_model_args,
    base_parser,
    compare,
    interleaved,
    setup_logging,
    target,
    write_report,
)
from benchmarks.workloads import build_model, multilabel_tasks, random_images, random_multilabel, user_rows  # noqa: E402
from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments  # noqa: E402

NAME = "overhead"
QUESTION = "Step time of MultiTaskTrainer vs a hand-written PyTorch loop and vs plain transformers.Trainer"
TASK = "task0"
LR = 1e-3
MAX_GRAD_NORM = 1.0


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """What a user writes by hand: BCE over present labels, mean over present labels."""
    mask = labels != -100
    per_label = F.binary_cross_entropy_with_logits(logits, labels.clamp(min=0), reduction="none")
    return (per_label * mask).sum() / mask.sum().clamp(min=1)


class StepTimes(TrainerCallback):
    """Ticks a [`StepClock`] at the start of training and at the end of every optimizer step."""

    def __init__(self) -> None:
        self.clock = StepClock()

    def on_train_begin(self, args, state, control, **kwargs):
        self.clock.reset()

    def on_step_end(self, args, state, control, **kwargs):
        self.clock.tick()


class PlainMaskedTrainer(Trainer):
    """The stock Trainer with the masked loss written by hand (what users do without hf_mtl)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = masked_bce(outputs.logits[TASK], labels)
        return (loss, outputs) if return_outputs else loss


def main(argv: list[str] | None = None) -> dict:
    parser = add_model_args(base_parser(__doc__.splitlines()[0]))
    parser.add_argument("--steps", type=int, default=None, help="Timed steps per repetition (after warm-up).")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps at the start of each repetition.")
    parser.add_argument("--repeats", type=int, default=None, help="Interleaved repetitions per variant.")
    parser.add_argument("--num-labels", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time of one thread is the work).")
    args = parser.parse_args(argv)
    args.steps = args.steps or (4 if args.quick else 10)
    args.repeats = args.repeats or (3 if args.quick else 5)
    setup_logging()
    torch.set_num_threads(args.threads)

    tasks = multilabel_tasks(1, args.num_labels)
    total_steps = args.warmup + args.steps
    n = args.batch_size * total_steps  # one epoch per repetition: no epoch boundary inside the timed steps
    images = random_images(n, args.image_size, seed=args.seed)
    labels = random_multilabel(n, args.num_labels, missing=0.3, seed=args.seed)
    template = build_model(args.backbone, tasks, seed=args.seed).state_dict()

    def fresh_model():
        model = build_model(args.backbone, tasks, seed=args.seed)
        model.load_state_dict(template)
        return model.train()

    models = {name: fresh_model() for name in ("raw_loop", "plain_trainer", "multitask_trainer")}
    tensor_data = torch.utils.data.TensorDataset(images, labels)
    plain_rows = [{"pixel_values": images[i], "labels": labels[i]} for i in range(n)]
    mtl_rows = user_rows(images, {TASK: labels})
    workdir = tempfile.mkdtemp(prefix="hf_mtl_bench_overhead_")
    common = dict(
        output_dir=workdir,
        per_device_train_batch_size=args.batch_size,
        max_steps=total_steps,
        learning_rate=LR,
        weight_decay=0.0,
        lr_scheduler_type="constant",
        max_grad_norm=MAX_GRAD_NORM,
        optim="adamw_torch",
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        use_cpu=not torch.cuda.is_available(),
        seed=args.seed,
    )

    cpu_samples: dict[str, list[float]] = {name: [] for name in models}

    def record(name: str, clock: StepClock) -> float:
        wall, cpu = clock.steady(args.warmup)
        cpu_samples[name].append(cpu)
        return wall

    def raw_loop() -> float:
        model = models["raw_loop"]
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
        loader = torch.utils.data.DataLoader(tensor_data, batch_size=args.batch_size, shuffle=True)
        clock = StepClock()
        clock.reset()
        for step, (x, y) in enumerate(loader):
            loss = masked_bce(model(pixel_values=x).logits[TASK], y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad()
            if step % 10 == 0:
                loss.item()  # what logging costs the Trainers
            clock.tick()
        return record("raw_loop", clock)

    def plain_trainer() -> float:
        timer = StepTimes()
        trainer = PlainMaskedTrainer(
            model=models["plain_trainer"], args=TrainingArguments(**common), train_dataset=plain_rows,
            callbacks=[timer],
        )
        trainer.train()
        return record("plain_trainer", timer.clock)

    def multitask_trainer() -> float:
        timer = StepTimes()
        trainer = MultiTaskTrainer(
            model=models["multitask_trainer"], args=MultiTaskTrainingArguments(**common), train_dataset=mtl_rows,
            callbacks=[timer],
        )
        trainer.train()
        return record("multitask_trainer", timer.clock)

    variants = {"raw_loop": raw_loop, "plain_trainer": plain_trainer, "multitask_trainer": multitask_trainer}
    timing = interleaved(variants, args.repeats, baseline="raw_loop")
    cpu_timing = compare(cpu_samples, baseline="raw_loop")
    targets = [
        target(
            "multitask_trainer_vs_raw_loop_cpu", cpu_timing["variants"]["multitask_trainer"]["ratio_to_baseline"]["median"],
            1.03, "<=", "steady-state CPU time per step of the working thread, MultiTaskTrainer / raw PyTorch loop "
            "(median of per-repetition ratios)",
        ),
        target(
            "multitask_trainer_vs_raw_loop_wall", timing["variants"]["multitask_trainer"]["ratio_to_baseline"]["median"],
            1.03, "<=", "steady-state wall-clock time per step, MultiTaskTrainer / raw PyTorch loop (median of "
            "per-repetition ratios; noisy when the machine is oversubscribed)",
        ),
    ]
    results = {"step_time_s": timing, "cpu_step_time_s": cpu_timing, "steps_per_repetition": args.steps,
               "warmup_steps": args.warmup}

    def plot(path: Path) -> None:
        import matplotlib.pyplot as plt

        names = list(variants)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for ax, (label, t) in zip(axes, (("CPU time of the working thread", cpu_timing), ("wall-clock", timing))):
            med = [t["variants"][k]["summary"]["median"] * 1000 for k in names]
            lo = [m - t["variants"][k]["summary"]["min"] * 1000 for k, m in zip(names, med)]
            hi = [t["variants"][k]["summary"]["max"] * 1000 - m for k, m in zip(names, med)]
            ax.bar(names, med, yerr=[lo, hi], capsize=6, color=["#888888", "#5b8ff9", "#e8684a"])
            for i, k in enumerate(names):
                r = t["variants"][k]["ratio_to_baseline"]
                ax.text(i, med[i] / 2, f"{r['median']:.3f}x\n[{r['min']:.3f}, {r['max']:.3f}]", ha="center",
                        fontsize=8)
            ax.set_ylabel(f"ms per step, {label}")
        fig.suptitle(f"{args.backbone} {args.image_size}px, batch {args.batch_size}, {args.threads} thread(s): "
                     "step time (median, min-max) and ratio to the raw loop", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return write_report(NAME, QUESTION, args, results, targets, plot, argv=argv)


if __name__ == "__main__":
    main()
