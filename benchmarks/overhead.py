"""Question 1: what does `MultiTaskTrainer` cost per training step?

Three ways to run the same masked multilabel training (same model and initial weights, data, batch size, AdamW,
constant LR, gradient clipping at 1.0) are timed step by step:

* ``raw_loop``: a hand-written PyTorch loop over a ``TensorDataset`` (the baseline);
* ``plain_trainer``: ``transformers.Trainer`` with a hand-written masked-BCE ``compute_loss`` override;
* ``multitask_trainer``: ``hf_mtl.MultiTaskTrainer`` on rows with ``None`` for missing labels, as users give them
  (with its default ``nonfinite_policy="stop"``: the NaN/inf guard checks flags and gradients once per step);
* ``multitask_trainer_guard_off``: the same with ``nonfinite_policy="off"``, to show what the guard costs.

Each Trainer step is paired with one raw-loop step run right after it (``PairedRawStep``), so the baseline is
measured step by step beside the variant; the two Trainers alternate by repetition. A step time covers data loading,
forward, backward, clipping, optimizer, callbacks and logging; the first steps of each run are warm-up. Both the
wall-clock and the CPU time of the working thread are recorded (one torch thread by default, so all work runs in that
thread and its CPU time measures the work even when the machine is oversubscribed; see ``common.StepClock``).
Target: ``multitask_trainer`` within 3% of ``raw_loop`` in steady state.
"""

from __future__ import annotations

import functools
import statistics
import sys
import tempfile
import time
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
    interleaved,
    setup_logging,
    summarize,
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


class StepTimes(TrainerCallback):  # used by benchmarks/gpu.py
    """Ticks a [`StepClock`] at the start of training and at the end of every optimizer step."""

    def __init__(self) -> None:
        self.clock = StepClock()

    def on_train_begin(self, args, state, control, **kwargs):
        self.clock.reset()

    def on_step_end(self, args, state, control, **kwargs):
        self.clock.tick()


class PairedRawStep(TrainerCallback):
    """Runs one step of the raw loop right after each Trainer step, so the two alternate step by step.

    The Trainer's step is timed from the end of the previous raw step to its own end (its data loading, logging and
    callbacks included, the raw step excluded); each raw step is timed on its own. A slow spell of the shared machine
    then hits both members of a pair, and their ratio stays meaningful.
    """

    def __init__(self, raw_step) -> None:
        self.raw_step = raw_step
        self.times: dict[str, list[float]] = {k: [] for k in ("trainer_wall", "trainer_cpu", "raw_wall", "raw_cpu")}

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.perf_counter(), time.thread_time()

    def on_train_begin(self, args, state, control, **kwargs):
        self._mark = self._now()

    def on_step_end(self, args, state, control, **kwargs):
        end = self._now()
        self.times["trainer_wall"].append(end[0] - self._mark[0])
        self.times["trainer_cpu"].append(end[1] - self._mark[1])
        start = self._now()
        self.raw_step()
        stop = self._now()
        self.times["raw_wall"].append(stop[0] - start[0])
        self.times["raw_cpu"].append(stop[1] - start[1])
        self._mark = self._now()


def _paired_summary(pairs: dict[str, list[dict[str, list[float]]]], clock: str) -> dict:
    """Per repetition: the median step time of each Trainer and of the raw steps paired with it, and the median of
    the per-pair ratios; then summaries over repetitions (the raw loop's samples pool both pairings)."""
    repeats = len(next(iter(pairs.values())))
    raw = [statistics.median([t for name in pairs for t in pairs[name][r][f"raw_{clock}"]]) for r in range(repeats)]
    result = {"baseline": "raw_loop", "repeats": repeats, "variants": {
        "raw_loop": {"samples": raw, "summary": summarize(raw), "ratio_to_baseline": summarize([1.0] * repeats)}}}
    all_pairs = {}
    for name, reps in pairs.items():
        steps = [statistics.median(rep[f"trainer_{clock}"]) for rep in reps]
        ratios = [[t / b for t, b in zip(rep[f"trainer_{clock}"], rep[f"raw_{clock}"])] for rep in reps]
        result["variants"][name] = {
            "samples": steps,
            "summary": summarize(steps),
            "ratio_to_baseline": summarize([statistics.median(r) for r in ratios]),
        }
        all_pairs[name] = summarize([x for r in ratios for x in r])
    result["all_pair_ratios"] = all_pairs
    return result


class PlainMaskedTrainer(Trainer):
    """The stock Trainer with the masked loss written by hand (what users do without hf_mtl)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = masked_bce(outputs.logits[TASK], labels)
        return (loss, outputs) if return_outputs else loss


def plot(results: dict, settings: dict, path: Path) -> None:
    """Bars of the step times on both clocks, from a report's results (``python -c`` can redraw a saved JSON)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    clocks = (("CPU time of the working thread", results["cpu_step_time_s"]), ("wall-clock", results["step_time_s"]))
    for ax, (label, t) in zip(axes, clocks):
        names = list(t["variants"])
        med = [t["variants"][k]["summary"]["median"] * 1000 for k in names]
        lo = [m - t["variants"][k]["summary"]["min"] * 1000 for k, m in zip(names, med)]
        hi = [t["variants"][k]["summary"]["max"] * 1000 - m for k, m in zip(names, med)]
        ax.bar(names, med, yerr=[lo, hi], capsize=6, color=["#888888", "#bbbbbb", "#5b8ff9", "#9fbcfb"][:len(names)])
        ax.tick_params(axis="x", labelsize=7)
        for i, k in enumerate(names):
            r = t["variants"][k]["ratio_to_baseline"]
            ax.text(i, med[i] / 2, f"{r['median']:.3f}x\n[{r['min']:.3f}, {r['max']:.3f}]", ha="center", fontsize=8)
        ax.set_ylabel(f"ms per step, {label}")
    fig.suptitle(f"{settings['backbone']} {settings['image_size']}px, batch {settings['batch_size']}, "
                 f"{settings['threads']} thread(s): step time (median, min-max) and paired ratio to the raw loop",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = add_model_args(base_parser(__doc__.splitlines()[0]))
    parser.add_argument("--steps", type=int, default=None, help="Timed steps per repetition (after warm-up).")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps at the start of each repetition.")
    parser.add_argument("--repeats", type=int, default=None, help="Interleaved repetitions per variant.")
    parser.add_argument("--num-labels", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time of one thread is the work).")
    args = parser.parse_args(argv)
    args.steps = args.steps or (4 if args.quick else 12)
    args.repeats = args.repeats or (3 if args.quick else 6)
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

    models = {name: fresh_model() for name in ("raw_loop", "plain_trainer", "multitask_trainer",
                                               "multitask_trainer_guard_off")}
    # The raw loop's epoch length does not matter: it cycles its DataLoader.
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

    raw_model = models["raw_loop"]
    raw_optimizer = torch.optim.AdamW(raw_model.parameters(), lr=LR, weight_decay=0.0)
    raw_loader = torch.utils.data.DataLoader(tensor_data, batch_size=args.batch_size, shuffle=True)
    raw_state = {"batches": iter(raw_loader), "step": 0}

    def raw_step() -> None:
        """One step of the hand-written loop (its data loading included)."""
        try:
            x, y = next(raw_state["batches"])
        except StopIteration:
            raw_state["batches"] = iter(raw_loader)
            x, y = next(raw_state["batches"])
        loss = masked_bce(raw_model(pixel_values=x).logits[TASK], y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(raw_model.parameters(), MAX_GRAD_NORM)
        raw_optimizer.step()
        raw_optimizer.zero_grad()
        if raw_state["step"] % 10 == 0:
            loss.item()  # what logging costs the Trainers
        raw_state["step"] += 1

    pairs: dict[str, list[dict[str, list[float]]]] = {
        "plain_trainer": [], "multitask_trainer": [], "multitask_trainer_guard_off": []}

    def paired(name: str, trainer_cls, args_cls, rows):
        def once() -> float:
            callback = PairedRawStep(raw_step)
            trainer = trainer_cls(model=models[name], args=args_cls(**common), train_dataset=rows, callbacks=[callback])
            trainer.train()
            pairs[name].append({k: v[args.warmup:] for k, v in callback.times.items()})
            return statistics.median(callback.times["trainer_wall"][args.warmup:])

        return once

    variants = {
        "plain_trainer": paired("plain_trainer", PlainMaskedTrainer, TrainingArguments, plain_rows),
        "multitask_trainer": paired("multitask_trainer", MultiTaskTrainer, MultiTaskTrainingArguments, mtl_rows),
        "multitask_trainer_guard_off": paired(
            "multitask_trainer_guard_off", MultiTaskTrainer,
            functools.partial(MultiTaskTrainingArguments, nonfinite_policy="off"), mtl_rows,
        ),
    }
    interleaved(variants, args.repeats, baseline="plain_trainer")
    timing, cpu_timing = (_paired_summary(pairs, clock) for clock in ("wall", "cpu"))
    targets = [
        target(
            "multitask_trainer_vs_raw_loop_cpu", cpu_timing["variants"]["multitask_trainer"]["ratio_to_baseline"]["median"],
            1.03, "<=", "steady-state CPU time per step of the working thread, MultiTaskTrainer / raw PyTorch loop "
            "(per repetition: median of step-by-step paired ratios; then the median over repetitions)",
        ),
        target(
            "multitask_trainer_vs_raw_loop_wall", timing["variants"]["multitask_trainer"]["ratio_to_baseline"]["median"],
            1.03, "<=", "steady-state wall-clock time per step, MultiTaskTrainer / raw PyTorch loop (median of "
            "paired ratios; noisier than CPU time when the machine is oversubscribed)",
        ),
    ]
    results = {"step_time_s": timing, "cpu_step_time_s": cpu_timing, "steps_per_repetition": args.steps,
               "warmup_steps": args.warmup}

    return write_report(NAME, QUESTION, args, results, targets, lambda path: plot(results, vars(args), path),
                        argv=argv)


if __name__ == "__main__":
    main()
