"""Write the results tables of ``benchmarks/README.md`` from ``benchmarks/results/*.json``.

Every number in the README comes from a JSON a benchmark run wrote; nothing is typed in. The tables go between the
``<!-- results:start -->`` / ``<!-- results:end -->`` markers, so the prose around them stays hand-written; a one-line
summary per benchmark goes between ``<!-- benchmarks:start -->`` / ``<!-- benchmarks:end -->`` in the project README.

    python benchmarks/render_readme.py            # after running the benchmarks
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
START, END = "<!-- results:start -->", "<!-- results:end -->"
SUMMARY_START, SUMMARY_END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
ORDER = ("overhead", "feature_cache", "multitask_cost", "predict", "claim_missing_labels", "claim_data_size",
         "claim_multitask", "claim_multitask_fresh_heads", "advise", "finetune_recipe", "text_baseline", "onnx_export",
         "threshold_tuning", "gpu", "scale_fsdp")


def _ratio(stats: dict) -> str:
    return f"{stats['median']:.3f} [{stats['min']:.3f}–{stats['max']:.3f}]"


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f}"


def _pm(stats: dict, digits: int = 3) -> str:
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def _targets(report: dict) -> list[str]:
    lines = []
    for t in report["targets"]:
        verdict = "**met**" if t["met"] else f"**missed** by {100 * t['missed_by_relative']:.1f}%"
        value = f"{t['value']:.3f}" if t["value"] == 0 or abs(t["value"]) >= 0.01 else f"{t['value']:.1e}"
        lines.append(f"- target `{t['name']}`: {value} {t['comparison']} {t['threshold']:g} → {verdict}"
                     + (f" ({t['description']})" if t["description"] else ""))
    return lines


def _header(report: dict) -> list[str]:
    m = report["machine"]
    load = m.get("load_average")
    return [
        f"_{report['question']}._",
        "",
        f"Run {report['date']} with `{report['command']}` on {m['cpu']} ({m['cpu_count']} cores, torch threads "
        f"{m['torch_threads']}, load average at the end {load}), torch {m['torch']}, transformers "
        f"{m['transformers']}, timm {m['timm']}.",
        "",
    ]


def overhead(r: dict) -> list[str]:
    t, c = r["results"]["step_time_s"], r["results"]["cpu_step_time_s"]
    s = r["settings"]
    lines = [f"{s['backbone']} at {s['image_size']} px, batch {s['batch_size']}, {s['threads']} torch thread(s), "
             f"{s['steps']} timed steps after {s['warmup']} warm-up steps, {t['repeats']} interleaved repetitions.", "",
             "| variant | CPU ms / step | CPU ratio to raw loop, median [min–max] | wall ms / step | "
             "wall ratio to raw loop |", "|---|---|---|---|---|"]
    for name, v in t["variants"].items():
        cv = c["variants"][name]
        lines.append(f"| {name} | {_ms(cv['summary']['median'])} | {_ratio(cv['ratio_to_baseline'])} | "
                     f"{_ms(v['summary']['median'])} | {_ratio(v['ratio_to_baseline'])} |")
    return lines


def feature_cache(r: dict) -> list[str]:
    t = r["results"]["seconds"]
    s = r["settings"]
    lines = [f"{s['backbone']}, {r['results']['num_train']} grids at {s['image_size']} px, {s['epochs']:g} epochs, "
             f"batch {s['batch_size']}, {t['repeats']} interleaved repetitions.", "",
             "| variant | wall seconds end to end (median) | CPU seconds (median) | final training loss |",
             "|---|---|---|---|"]
    for name, v in t["variants"].items():
        losses = ", ".join(f"{x:.4f}" for x in r["results"]["final_training_loss"][name])
        cpu = r["results"]["cpu_seconds"]["variants"][name]["summary"]["median"]
        lines.append(f"| {name} | {v['summary']['median']:.1f} | {cpu:.1f} | {losses} |")
    sp, cp = r["results"]["speedup"], r["results"]["cpu_speedup"]
    lines += ["", f"Speed-up with the cache: **{sp['median']:.2f}x** wall-clock (range {sp['min']:.2f}–{sp['max']:.2f}x), "
              f"**{cp['median']:.2f}x** in CPU time (range {cp['min']:.2f}–{cp['max']:.2f}x)."]
    return lines


def multitask_cost(r: dict) -> list[str]:
    res, s = r["results"], r["settings"]
    n = res["num_tasks"]
    single = next(k for k in res["train_step_time_s"]["variants"] if k.startswith("single_"))
    lines = [f"{s['backbone']} at {s['image_size']} px, batch {s['batch_size']}, {s['threads']} torch thread(s), "
             f"{n} multilabel tasks of {s['num_labels']} labels, {s['steps']} timed steps, "
             f"{res['train_step_time_s']['repeats']} interleaved repetitions; ratios are to one single-task model.", "",
             f"| | 1 single-task model | {n}-task model | {n} single-task models |", "|---|---|---|---|"]
    for label, key, all_key in (("train step, CPU", "train_step_cpu_s", "train_step_cpu_all_singles"),
                                ("inference (batch), CPU", "inference_cpu_s", "inference_cpu_all_singles"),
                                ("train step, wall", "train_step_time_s", "train_step_time_all_singles"),
                                ("inference (batch), wall", "inference_time_s", "inference_time_all_singles")):
        v = res[key]["variants"]
        lines.append(f"| {label}, ms | {_ms(v[single]['summary']['median'])} | {_ms(v['multi_task']['summary']['median'])}"
                     f" ({_ratio(v['multi_task']['ratio_to_baseline'])}x) | {_ms(res[all_key]['summary']['median'])} "
                     f"({_ratio(res[all_key]['ratio_to_baseline'])}x) |")
    p = res["parameters"]
    lines.append(f"| parameters | {p[single]:,} | {p['multi_task']:,} ({res['parameter_ratio_multi_to_single']:.3f}x) |"
                 f" {p[f'{n}_single_models']:,} |")
    return lines


def predict(r: dict) -> list[str]:
    res, s = r["results"], r["settings"]
    lines = [f"{s['backbone']} at {s['image_size']} px, {res['num_images']} PIL images (56x56 RGB), batch "
             f"{s['batch_size']}, {s['threads']} torch thread(s), {res['images_per_second']['repeats']} interleaved "
             "repetitions.", "",
             "| clock | variant | images / s (median) | ratio to raw forward | ratio to raw preprocess + forward |",
             "|---|---|---|---|---|"]
    for clock, t, same in (("CPU", res["images_per_cpu_second"], res["cpu_ratio_to_raw_preprocess_forward"]),
                           ("wall", res["images_per_second"], res["ratio_to_raw_preprocess_forward"])):
        for name, v in t["variants"].items():
            extra = _ratio(same[name]) if name in same else "–"
            lines.append(f"| {clock} | {name} | {v['summary']['median']:.1f} | {_ratio(v['ratio_to_baseline'])} | "
                         f"{extra} |")
    return lines


def claim_missing_labels(r: dict) -> list[str]:
    res, s = r["results"], r["settings"]
    auc, kept = res["macro_roc_auc"], res["training_rows_kept"]
    rates = list(next(iter(auc.values())))
    lines = [f"Heads-only, {s['num_train']} training grids at {s['image_size']} px, {res['optimizer_steps']} optimizer "
             f"steps for every strategy, {s['num_eval']} test grids, {s['seeds']} seeds; macro ROC-AUC mean ± sd.", "",
             "| missing | " + " | ".join(auc) + " | rows kept by drop_partial |",
             "|---|" + "---|" * (len(auc) + 1)]
    for rate in rates:
        cells = " | ".join(_pm(auc[strategy][rate]) for strategy in auc)
        lines.append(f"| {100 * float(rate):.0f}% | {cells} | {kept['drop_partial'][rate]} |")
    best = {rate: max(auc, key=lambda k: auc[k][rate]["mean"]) for rate in rates if float(rate) > 0}
    lines += ["", "Best strategy at each missing rate above 0%: "
              + ", ".join(f"{100 * float(r):.0f}%: `{b}`" for r, b in best.items()) + "."]
    return lines


def claim_data_size(r: dict) -> list[str]:
    if "by_size" not in r["results"]:
        return _claim_data_size_before_issue_14(r)
    res, s = r["results"], r["settings"]
    auc, by = res["macro_roc_auc"], res["by_size"]
    curves = list(auc)
    lines = [f"{s['image_size']} px, {s['missing_rate']:.0%} of training labels missing, fine-tuning {s['epochs']:g} "
             f"epoch(s) (at least {s['min_steps']} steps) from the heads-only stage ({s['heads_epochs']:g} epochs on "
             f"cached features), top_n = top {s['top_n']} blocks, `auto` measured on {s['validation_split']:.0%} held "
             f"out with {s['auto_trial_steps']}-step trials, {s['num_eval']} test grids, {res['seeds_completed']} "
             "seed(s); macro ROC-AUC mean ± sd.", "",
             "| training grids | " + " | ".join(curves) + " | auto picked | best fixed | auto − best | best fine-tuning "
             "− heads (summed sd) | pretrained − scratch |",
             "|---|" + "---|" * (len(curves) + 5)]
    for n, row in by.items():
        picks = "/".join(f"{p}×{row['auto_picks'].count(p)}" for p in sorted(set(row["auto_picks"])))
        lines.append(f"| {n} | " + " | ".join(_pm(auc[c][n]) for c in curves)
                     + f" | {picks} | {row['best_fixed_policy']} | {row['auto_minus_best']:+.3f} | "
                     f"{row['best_fine_tuning_policy']} {row['fine_tuning_minus_heads']:+.3f} ({row['summed_sd']:.3f})"
                     f" | {row['pretrained_minus_scratch']:+.3f} |")
    rule = {n: row for n, row in by.items() if "same_rule_fixed" in row}
    if rule:  # each fixed policy under the recipe's own final rule (best_stage on the held-out grids)
        policies = list(next(iter(rule.values()))["same_rule_fixed"])
        lines += ["", "The same fixed policies as a recipe runs them: trained on the same 90%, each kept only when "
                  "`final_model: best_stage` finds it at least as good as the heads-only stage on the held-out grids "
                  "(else that seed's heads-only score), against `auto` under that rule:", "",
                  "| training grids | " + " | ".join(f"{c} (best_stage)" for c in policies) + " | auto | auto − best |",
                  "|---|" + "---|" * (len(policies) + 2)]
        for n, row in rule.items():
            lines.append(f"| {n} | " + " | ".join(_pm(row["same_rule_fixed"][c]) for c in policies)
                         + f" | {_pm(auc['auto'][n])} | {row['auto_minus_same_rule_best']:+.3f} |")
    lines += ["", "`auto`'s decision tables (held-out `main_score` of the heads-only stage and of each trial, and what "
              "`best_stage` kept for each policy, per seed) are in the JSON (`auto_decision_tables`)."]
    return lines


def _claim_data_size_before_issue_14(r: dict) -> list[str]:
    """A run of the script before its measured `auto` (no `by_size`)."""
    res, s = r["results"], r["settings"]
    auc, best, picks = res["macro_roc_auc"], res["best_fixed_policy"], res["auto_choices"]
    curves = list(auc)
    lines = [f"{s['image_size']} px, {s['missing_rate']:.0%} of training labels missing, fine-tuning {s['epochs']:g} "
             f"epochs (at least {s['min_steps']} steps), heads-only {s['heads_epochs']:g} epochs on cached features, "
             f"top_n = top {s['top_n']} blocks, {s['num_eval']} test grids, {s['seeds']} seeds; macro ROC-AUC "
             "mean ± sd.", "",
             "| training grids | " + " | ".join(curves) + " | auto picked | best fixed | auto − best |",
             "|---|" + "---|" * (len(curves) + 3)]
    for n in best:
        pick = sorted({c["policy"] + (f"({c['trainable_blocks']}/{c['num_blocks']})" if c["policy"] == "top_n" else "")
                       for c in picks[n]})
        lines.append(f"| {n} | " + " | ".join(_pm(auc[c][n]) for c in curves)
                     + f" | {'/'.join(pick)} | {best[n]['policy']} | {best[n]['auto_minus_best']:+.3f} |")
    gain = ", ".join(f"{n}: {best[n]['mean'] - auc['scratch'][n]['mean']:+.3f}" for n in best)
    lines += ["", f"Best pretrained recipe minus scratch, macro AUC: {gain}. Seeds completed: "
              f"{res.get('seeds_completed', s['seeds'])} of {s['seeds']}."]
    return lines


def claim_multitask(r: dict) -> list[str]:
    res, s = r["results"], r["settings"]
    tasks = list(res["metrics"])
    policy = s.get("freeze_policy", "full")
    selected = "by_stage" in res
    lines = [f"{s['num_train']} training grids at {s['image_size']} px ({s['missing_rate']:.0%} of each task's labels "
             f"missing), heads-only stage of {s.get('heads_epochs', 0):g} epochs on cached features, then `{policy}` "
             f"fine-tuning for the optimizer steps {res['optimizer_steps']}, {s['num_eval']} test grids, "
             f"{res.get('seeds_completed', s['seeds'])} seed(s); mean ± sd."
             + (f" Each model keeps its better stage on {res['validation_grids']} held-out training grids "
                "(`final_model: best_stage`)." if selected else ""), "",
             "| setup | " + " | ".join(f"{t} {res['metrics'][t]['name']} ({res['metrics'][t]['better']} is better)"
                                      for t in tasks) + " | train seconds |",
             "|---|" + "---|" * (len(tasks) + 1)]
    for setup, by_task in res["scores"].items():
        lines.append(f"| {setup} | " + " | ".join(_pm(by_task[t]) for t in tasks)
                     + f" | {res['train_seconds'][setup]['mean']:.0f} |")
    multi, same = res["scores"]["multi_task"], res["scores"]["separate_same_budget"]
    sign = {t: 1 if res["metrics"][t]["better"] == "higher" else -1 for t in tasks}
    better = [t for t in tasks if sign[t] * (multi[t]["mean"] - same[t]["mean"]) >= 0]
    clear = [t for t in better if abs(multi[t]["mean"] - same[t]["mean"]) > multi[t]["std"] + same[t]["std"]]
    lines += ["", f"The multi-task model is at least as good as separate models on the same budget on {len(better)} of "
              f"{len(tasks)} tasks ({', '.join(better) or 'none'}); better by more than the summed standard deviations "
              f"on {', '.join(t for t in clear if multi[t]['mean'] != same[t]['mean']) or 'none'}."]
    if selected:
        lines += ["", "Before the selection (test scores of each model's heads-only stage / fine-tuned weights), and "
                  "the stage each model kept:", "",
                  "| setup | " + " | ".join(f"{t} heads-only / fine-tuned" for t in tasks) + " | kept |",
                  "|---|" + "---|" * (len(tasks) + 1)]
        for setup in res["scores"]:
            heads, tuned = res["by_stage"]["heads_only"][setup], res["by_stage"]["fine_tuned"][setup]
            kept = res["kept"][setup]
            lines.append(f"| {setup} | " + " | ".join(f"{heads[t]['mean']:.3f} / {tuned[t]['mean']:.3f}" for t in tasks)
                         + f" | {'; '.join(kept)} |")
    affinity = res.get("affinity")
    if affinity:
        names = affinity["tasks"]
        lines += ["", "**`hf-mtl advise`'s task affinity on the same grids** (lookahead affinity on the training grids' "
                  "frozen features, as advise measures it; row: the task stepped on, column: the task whose loss "
                  "changed; mean over seeds):", "",
                  "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {a} | " + " | ".join(f"{v:+.4f}" for v in row) + " |"
                  for a, row in zip(names, affinity["mean_matrix"])]
        groups = " + ".join("{" + ", ".join(g) + "}" for g in affinity["suggested_groups"])
        rows = "; ".join(f"{t}: advise {'joint' if v['predicted_joint_helps'] else 'separate'}, measured "
                         f"{'joint' if v['measured_joint_at_least_as_good'] else 'separate'} better"
                         for t, v in affinity["per_task"].items())
        lines += ["", f"Suggested grouping {groups} (per seed: "
                  f"{'; '.join(' + '.join('{' + ', '.join(g) + '}' for g in gs) for gs in affinity['per_seed_groups'])}"
                  f"). Against the measured multi-task vs separate (same budget) result it agrees on "
                  f"{affinity['agreeing_tasks']} of {len(names)} tasks: {rows}."]
    return lines


def finetune_recipe(r: dict) -> list[str]:
    res, s = r["results"], r["settings"]
    auc, delta = res["macro_roc_auc"], res["minus_heads_only"]
    sizes = list(auc["heads"])
    lines = [f"Fashion-MNIST grids at {s['image_size']} px, top_n = top {s['top_n']} blocks, {s['num_eval']} test grids, "
             f"{res['seeds_completed']} seed(s); macro ROC-AUC mean ± sd, and the difference to the heads-only stage "
             "every variant starts from.", "",
             "| variant | " + " | ".join(f"{n} grids | − heads-only" for n in sizes) + " |",
             "|---|" + "---|---|" * len(sizes)]
    for curve in auc:
        lines.append(f"| {curve} | " + " | ".join(f"{_pm(auc[curve][n])} | {delta[curve][n]:+.3f}" for n in sizes)
                     + " |")
    return lines


def text_baseline(r: dict) -> list[str]:
    res = r["results"]
    recipe = res.get("recipe")
    lines = [f"{res['n_train']} training and {res['n_eval']} evaluation WordNet glosses (the text recipe's rows); "
             "each task's main metric on present labels."
             + (f" The recipe run (`{recipe['command']}`, {recipe['wall_seconds'] / 60:.0f} min wall clock) kept "
                f"its {recipe['kept']} stage ({recipe['reason']})." if recipe else ""), "",
             "| task | metric | TF-IDF + logistic regression |" + (" recipe heads-only stage | recipe final model | "
                                                                   "final − TF-IDF |" if recipe else ""),
             "|---|---|---|" + ("---|---|---|" if recipe else "")]
    for task, row in res["tfidf_logreg"].items():
        extra = (f" {recipe['heads_only'][task]:.4f} | {recipe['final'][task]:.4f} | "
                 f"{res['recipe_minus_tfidf'][task]:+.4f} |") if recipe and task in recipe["final"] else ""
        lines.append(f"| {task} | {row['main_metric']} | {row['value']:.4f} |" + extra)
    return lines


def gpu(r: dict) -> list[str]:
    if r["skipped"]:
        return [f"Not run: {r['skipped']}."]
    lines = [f"Device: {r['results']['device']}.", "", "| workload | precision | images / s | ratio to fp32 | "
             "achieved TFLOP/s | FLOP utilisation |", "|---|---|---|---|---|---|"]
    for label, e in r["results"]["workloads"].items():
        for p, v in e["images_per_second"]["variants"].items():
            u = e["flop_utilisation"][p]
            util = "n/a" if u["utilisation"] is None else f"{100 * u['utilisation']:.1f}%"
            lines.append(f"| {label} ({e['backbone']} {e['image_size']}px) | {p} | {v['summary']['median']:.0f} | "
                         f"{_ratio(v['ratio_to_baseline'])} | {u['achieved_tflops']:.1f} | {util} |")
    return lines


def advise(r: dict) -> list[str]:
    lines = []
    for kind, res in r["results"].items():
        tau = res["kendall_tau_separated_pairs"]
        command = res.get("run", {}).get("command", r["command"])
        protocol = ("the recipe's own stages and settings (heads-only stage, fine-tuning, best stage kept)"
                    if "advise_samples" in res else "fresh heads and the whole backbone together, no heads-only stage")
        lines += [f"**{kind}** (`{res['recipe']}`, tasks {', '.join(res['tasks'])}; LogME on the first "
                  f"{res.get('advise_samples', res['num_train'])} training rows, fine-tuning on {res['num_train']} "
                  f"with {protocol}; run `{command}`):", "",
                  "| candidate | mean LogME | fine-tuned score (mean ± sd) | LogME s | fine-tune s per run |",
                  "|---|---:|---:|---:|---:|"]
        for name, c in sorted(res["candidates"].items(), key=lambda kv: -kv[1]["mean_logme"]):
            lines.append(f"| {name} | {c['mean_logme']:.4f} | {_pm(c['fine_tuned'])} | {c['advise_seconds']:.1f} | "
                         f"{c['fine_tune_seconds']['mean']:.1f} |")
        lines += ["", f"Kendall tau {'n/a' if tau is None else f'{tau:.2f}'} over the {len(res['separated_pairs'])} "
                  f"pairs separated by more than their summed seed sd, {res['kendall_tau_all_pairs']:.2f} over all "
                  f"pairs; LogME of all candidates took {res['advise_seconds']:.0f} s = "
                  f"{100 * res['advise_time_share']:.1f}% of their fine-tuning ({res['fine_tune_seconds']:.0f} s)"
                  + (f"; on the CPU clock {res['advise_cpu_seconds']:.0f} s = {100 * res['advise_cpu_time_share']:.1f}%"
                     f" of {res['fine_tune_cpu_seconds']:.0f} s." if "advise_cpu_time_share" in res else "."), ""]
    return lines


def onnx_export(r: dict) -> list[str]:
    lines = ["| backbone | outputs | exporter (opset) | max abs diff vs PyTorch | ONNX MB | export s | "
             "onnxruntime / PyTorch batch time, median [min–max] |", "|---|---|---|---:|---:|---:|---|"]
    for res in r["results"].values():
        ratio = res["batch_seconds_vs_pytorch"]["variants"]["onnxruntime"]["ratio_to_baseline"]
        lines.append(f"| {res['backbone']} | {', '.join(res['outputs'])} | {res['exporter']} ({res['opset']}) | "
                     f"{res['max_abs_diff']:.1e} | {res['onnx_megabytes']:.1f} | {res['export_seconds']:.0f} | "
                     f"{_ratio(ratio)} (batch {res['batch_size']}) |")
    return lines


def threshold_tuning(r: dict) -> list[str]:
    """benchmarks/threshold_tuning.py: test F1 per label at 0.5 and at the thresholds tuned on the validation split."""
    res, s = r["results"], r["settings"]
    sizes = ", ".join(f"{split} {n:,}" for split, n in res["sizes"].items())
    backbone = f"`{s['backbone']}` (random weights)" if s.get("backbone") else "the template's ImageNet EfficientNet-Lite0"
    lines = [f"`recipes/own_data_template.yaml` on an imagefolder of Fashion-MNIST grids ({sizes} grids; training labels "
             f"30% hidden), {backbone} at {s['image_size']} px, the CLI end to end: `hf-mtl train "
             "--no_tune_thresholds`, `hf-mtl eval --split test` (0.5), `hf-mtl tune-thresholds` (F1 on the validation "
             "split), `hf-mtl eval --split test` again. F1 on the test split:", "",
             "| label | threshold (tuned on validation) | test F1 at 0.5 | test F1 tuned | tuned − 0.5 |",
             "|---|---:|---:|---:|---:|"]
    for label, row in res["per_label"].items():
        lines.append(f"| {label} | {_f3(row['threshold'])} | {_f3(row['test_f1_at_0.5'])} | "
                     f"{_f3(row['test_f1_tuned'])} | {_gain(row['test_f1_at_0.5'], row['test_f1_tuned'])} |")
    macro, rare = res["test_macro_f1_present"], res["test_f1_two_bags"]
    lines += ["", f"`present` macro F1 (present labels): {_f3(macro['at_0.5'])} at 0.5, **{_f3(macro['tuned'])}** "
              f"tuned ({_gain(macro['at_0.5'], macro['tuned'])}). The rare `two_bags` "
              f"({res['test_positives_two_bags']} positives of {res['sizes']['test']:,} test grids, ROC AUC "
              f"{_f3(res['test_roc_auc_two_bags'])}): F1 {_f3(rare['at_0.5'])} at 0.5, **{_f3(rare['tuned'])}** tuned "
              f"({_gain(rare['at_0.5'], rare['tuned'])})."]
    return lines


def _f3(value: float | None) -> str:
    """A score, or n/a where it is undefined (a label without positives in the split)."""
    return "n/a" if value is None else f"{value:.3f}"


def _gain(before: float | None, after: float | None) -> str:
    return "n/a" if before is None or after is None else f"{after - before:+.3f}"


def scale_fsdp(r: dict) -> list[str]:
    res, s = r["results"], r["settings"]
    gib = 1024 ** 3
    lines = [f"A {res['parameters'] / 1e6:.0f}M-parameter multi-task model (BERT-style backbone from a config: hidden "
             f"{s['hidden_size']}, {s['layers']} layers, vocabulary {s['vocab_size']}; a multilabel and a multiclass "
             f"head), 2 processes, {s['steps']} AdamW steps of batch {s['batch_size']} x {s['seq_len']} tokens per "
             "process; the largest value over the 2 processes.", "",
             "| engine | sharded | peak RSS GiB | peak RSS above imports GiB | params GiB | grads GiB | "
             "optimizer state GiB |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, v in res["variants"].items():
        worst = max(v["per_rank"], key=lambda rank: rank["peak_rss_bytes"])
        lines.append(f"| {name.upper()} | {v['sharded']} | {v['peak_rss_gib_max']:.2f} | "
                     f"{v['peak_above_imports_gib_max']:.2f} | {worst['param_bytes'] / gib:.2f} | "
                     f"{worst['grad_bytes'] / gib:.2f} | {worst['optimizer_state_bytes'] / gib:.2f} |")
    lines += ["", f"FSDP / DDP: peak RSS {res['peak_rss_ratio_fsdp_to_ddp']:.2f}x, above imports "
              f"{res['peak_above_imports_ratio_fsdp_to_ddp']:.2f}x, parameters + gradients + optimizer state "
              f"{res['state_ratio_fsdp_to_ddp']:.2f}x. Parameters, gradients and optimizer state halve exactly; the "
              "peak also holds what is not sharded: the imports, and the whole model every process builds before "
              "`fully_shard` splits it. The size was chosen for a 2-core, 24 GiB machine shared with other jobs "
              "(DDP's two processes already need ~10 GiB); the ratios grow with the model (activations and the "
              "one gathered block per step stay small next to the sharded state)."]
    return lines


RENDERERS: dict[str, Callable[[dict], list[str]]] = {
    "overhead": overhead, "feature_cache": feature_cache, "multitask_cost": multitask_cost, "predict": predict,
    "claim_missing_labels": claim_missing_labels, "claim_data_size": claim_data_size,
    "claim_multitask": claim_multitask, "claim_multitask_fresh_heads": claim_multitask, "advise": advise,
    "finetune_recipe": finetune_recipe, "text_baseline": text_baseline, "onnx_export": onnx_export,
    "gpu": gpu, "scale_fsdp": scale_fsdp, "threshold_tuning": threshold_tuning,
}
TITLES = {
    "overhead": "1. Overhead: MultiTaskTrainer vs raw PyTorch loop vs plain Trainer",
    "feature_cache": "2. Feature cache: heads-only training with vs without",
    "multitask_cost": "3. One 4-task model vs 4 single-task models",
    "predict": "4. Prediction throughput",
    "claim_missing_labels": "5a. Missing labels: masked loss vs missing-as-negative vs dropping",
    "claim_data_size": "5b/5d. Pretrained vs scratch vs heads-only as data grows; auto vs best fixed freeze policy",
    "claim_multitask": "5c. One multi-task model vs separate models on the same budget (heads-only stage, then "
                       "fine-tuning)",
    "claim_multitask_fresh_heads": "5c'. The same, fine-tuning fresh heads directly (`--heads-epochs 0`)",
    "advise": "5e. `hf-mtl advise`: LogME ranking of backbones vs their fine-tuned ranking",
    "finetune_recipe": "5f. Fine-tuning recipe: BatchNorm statistics, layer decay, from the same heads-only stage",
    "text_baseline": "5g. Text baseline: TF-IDF + logistic regression on the WordNet tasks, beside the text recipe",
    "onnx_export": "5h. ONNX export: onnxruntime vs PyTorch (logits and batch time)",
    "threshold_tuning": "5i. Threshold tuning: test F1 at thresholds tuned on the validation split vs at 0.5",
    "gpu": "6. GPU throughput and FLOP utilisation",
    "scale_fsdp": "7c. Sharded models: FSDP2 vs DDP memory per process",
}


def scale(r: dict) -> list[str]:
    """benchmarks/scale.py: streaming vs map-style memory and throughput; label validation / evaluation cost."""
    res, s = r["results"], r["settings"]
    lines = []
    if "runs" in res:
        lines += [f"`hf-mtl train` recipe runs, {s['backbone']} (random weights) at {s['image_size']} px, batch "
                  f"{s['batch_size']}, {s['steps']} steps at every size, one torch thread, one fresh process per run; "
                  "the map-style run loads with `load_dataset` and checks every row, the streaming run its first "
                  "rows. The machine was shared with other jobs (wall-clock ratios are from runs of the same pass).",
                  "", f"Shards of {s['base_rows'] // s['shards']} rows (one row group each), {s['shards']} at 1x and "
                  "proportionally more at 4x / 16x. The stream reads `OPEN_SHARDS` shards at a time round-robin and its "
                  "shuffle buffer fills from that group (`hf_mtl.data.streaming.shuffle_stream`): `datasets` 5's "
                  "`IterableDataset.shuffle` by default interleaves up to 10 of those groups, i.e. every shard of the "
                  "16x set open at once, each with a reader thread and a read batch in memory, which made peak memory "
                  "grow with the number of shards. Parquet files are read by buffered 1 MiB reads, not a row group at "
                  "a time, so a file written as one large row group (pyarrow's default) does not grow it either.",
                  "", "| rows | data (MiB) | streaming peak RSS (MiB) | map-style peak RSS (MiB) | streaming samples/s | "
                  "map-style samples/s | ratio |", "|---|---|---|---|---|---|---|"]
        for scale_ in res["scales"]:
            key = str(scale_)
            st, mp = res["runs"]["streaming"][key], res["runs"]["map_style"][key]
            lines.append(f"| {res['rows'][key]} | {res['data_mb'][key]:.0f} | {st['peak_rss_mb']:.0f} | "
                         f"{mp['peak_rss_mb']:.0f} | {st['train_samples_per_second']:.1f} | "
                         f"{mp['train_samples_per_second']:.1f} | {res['throughput_ratios_per_scale'][key]:.3f} |")
        growth = res["rss_growth_1x_to_16x"]
        cpu = res.get("throughput_cpu_ratio_streaming_to_map")
        lines += ["", f"Peak RSS from 1x to 16x: streaming **{growth['streaming']:.2f}x**, map-style "
                  f"**{growth['map_style']:.2f}x**; throughput streaming / map-style "
                  f"{_ratio(res['throughput_ratio_streaming_to_map'])}"
                  + (f" on the wall clock, {_ratio(cpu)} on the CPU clock (samples per CPU second of `trainer.train`, "
                     f"median of {s.get('repeats', 1)} pairs of runs per size)" if cpu else "") + ".", ""]
    previous = res.get("previous_parts", {})
    for part, run in previous.items():
        lines += [f"Part {'a/b' if part == 'ab' else part}'s figures come from the earlier run of {run['date']} "
                  f"(`{run['command']}`).", ""]
    if "labels" in res:
        lines += [f"One multilabel task, `validate_labels` over {s['label_rows']} rows (5 positive names each) and the "
                  f"Trainer's `compute_metrics` (per-label metrics included) over {s['eval_rows']} rows, a fresh "
                  "process per size.", "",
                  "| labels | validate s | evaluate s | evaluate µs per label and row | peak RSS (MiB) |",
                  "|---|---|---|---|---|"]
        for n in res["label_sizes"]:
            row = res["labels"][str(n)]
            lines.append(f"| {n:,} | {row['validate_s']:.2f} | {row['evaluate_s']:.2f} | "
                         f"{1e6 * row['evaluate_s'] / (n * row['eval_rows']):.2f} | {row['peak_rss_mb']:.0f} |")
    return lines


RENDERERS["scale"] = scale
TITLES["scale"] = "7a/7b/7d. Scale: streaming vs map-style as the data grows; label validation / evaluation at 1k-50k labels"
ORDER = (*ORDER[:ORDER.index("scale_fsdp")], "scale", *ORDER[ORDER.index("scale_fsdp"):]) if "scale_fsdp" in ORDER \
    else (*ORDER, "scale")


def render(results_dir: Path) -> str:
    parts = []
    for name in ORDER:
        path = results_dir / f"{name}.json"
        parts.append(f"### {TITLES[name]}")
        parts.append("")
        if not path.is_file():
            parts += ["Not run yet.", ""]
            continue
        report = json.loads(path.read_text())
        parts += _header(report) + RENDERERS[name](report) + [""] + _targets(report)
        if (results_dir / f"{name}.png").is_file():
            parts += ["", f"![{name}](results/{name}.png)"]
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _met(report: dict, name: str) -> str:
    t = next(t for t in report["targets"] if t["name"] == name)
    return f"target {t['comparison']} {t['threshold']:g}: met" if t["met"] else (
        f"target {t['comparison']} {t['threshold']:g}: missed by {100 * t['missed_by_relative']:.1f}%")


def headline(name: str, r: dict) -> str:
    """One line per benchmark for the top README."""
    res = r["results"]
    if r["skipped"]:
        return f"not run: {r['skipped']}"
    if name == "scale":
        parts = []
        if "rss_growth_1x_to_16x" in res:
            parts.append(f"peak RSS 1x→16x rows: streaming {res['rss_growth_1x_to_16x']['streaming']:.2f}x, map-style "
                         f"{res['rss_growth_1x_to_16x']['map_style']:.2f}x; streaming throughput "
                         f"{res['throughput_ratio_streaming_to_map']['median']:.2f}x map-style")
        if "seconds_per_label" in res:
            per = res["seconds_per_label"]["evaluate_s"]
            parts.append(f"evaluation time per label 50k/1k labels {per['50000'] / per['1000']:.2f}x")
        return "; ".join(parts)
    if name == "overhead":
        c = res["cpu_step_time_s"]["variants"]
        w = res["step_time_s"]["variants"]
        return (f"MultiTaskTrainer step = {c['multitask_trainer']['ratio_to_baseline']['median']:.3f}x the raw loop in "
                f"CPU time ({_met(r, 'multitask_trainer_vs_raw_loop_cpu')}), "
                f"{w['multitask_trainer']['ratio_to_baseline']['median']:.3f}x in wall-clock; plain Trainer "
                f"{c['plain_trainer']['ratio_to_baseline']['median']:.3f}x")
    if name == "feature_cache":
        return (f"{res['speedup']['median']:.1f}x faster with the cache ({_met(r, 'feature_cache_speedup')}), "
                f"{res['cpu_speedup']['median']:.1f}x in CPU time")
    if name == "multitask_cost":
        tr = res["train_step_cpu_s"]["variants"]["multi_task"]["ratio_to_baseline"]["median"]
        inf = res["inference_cpu_s"]["variants"]["multi_task"]["ratio_to_baseline"]["median"]
        singles = res["train_step_cpu_all_singles"]["ratio_to_baseline"]["median"]
        return (f"4-task model = {tr:.2f}x train step, {inf:.2f}x inference, "
                f"{res['parameter_ratio_multi_to_single']:.2f}x parameters of one single-task model (4 single-task "
                f"models: {singles:.2f}x train step); targets <= 1.3: "
                + ", ".join("met" if t["met"] else "missed" for t in r["targets"] if not t["name"].endswith("_wall")))
    if name == "predict":
        same = res["cpu_ratio_to_raw_preprocess_forward"]
        bare = res["images_per_cpu_second"]["variants"]
        return (f"vs hand-written preprocessing + forward: predict {same['predict']['median']:.2f}x, pipeline "
                f"{same['pipeline']['median']:.2f}x; vs the bare forward on ready tensors: predict "
                f"{bare['predict']['ratio_to_baseline']['median']:.2f}x, pipeline "
                f"{bare['pipeline']['ratio_to_baseline']['median']:.2f}x (target >= 0.95, CPU time)")
    if name == "claim_missing_labels":
        auc = res["macro_roc_auc"]
        return "macro AUC at " + "; ".join(
            f"{100 * float(rate):.0f}% missing: " + ", ".join(f"{k} {auc[k][rate]['mean']:.3f}" for k in auc)
            for rate in auc["masked"])
    if name == "claim_data_size" and "by_size" not in res:
        auc, best = res["macro_roc_auc"], res["best_fixed_policy"]
        parts = [f"{n} grids: " + ", ".join(f"{c} {auc[c][n]['mean']:.3f}" for c in ("heads", "top_n", "full",
                                                                                 "scratch")) for n in best]
        return "macro AUC at " + "; ".join(parts) + "; auto − best fixed: " + ", ".join(
            f"{best[n]['auto_minus_best']:+.3f}" for n in best)
    if name == "claim_data_size":
        auc, by = res["macro_roc_auc"], res["by_size"]
        parts = [f"{n} grids: " + ", ".join(f"{c} {auc[c][n]['mean']:.3f}" for c in ("heads", "top_n", "full",
                                                                                 "scratch")) for n in by]
        gaps = ", ".join(f"{row['auto_minus_best']:+.3f}" for row in by.values())
        rule = ", ".join(f"{row['auto_minus_same_rule_best']:+.3f}" for row in by.values()
                         if "auto_minus_same_rule_best" in row)
        return (f"macro AUC ({res['seeds_completed']} seeds) at " + "; ".join(parts) + f"; measured auto − best "
                f"fixed: {gaps}" + (f"; − best fixed under the recipe's best_stage rule: {rule}" if rule else ""))
    if name == "finetune_recipe":
        delta = res["minus_heads_only"]
        return "minus heads-only: " + "; ".join(
            f"{n} grids: " + ", ".join(f"{c} {delta[c][n]:+.3f}" for c in delta if c != "heads") for n in delta["heads"])
    if name == "text_baseline":
        recipe = res.get("recipe")
        return ", ".join(f"{t} {row['main_metric']} {row['value']:.3f}"
                         + (f" (recipe {recipe['final'][t]:.3f})" if recipe and t in recipe["final"] else "")
                         for t, row in res["tfidf_logreg"].items())
    if name.startswith("claim_multitask"):
        sc, m = res["scores"], res["metrics"]
        return "; ".join(f"{t} {m[t]['name']}: " + ", ".join(f"{setup} {sc[setup][t]['mean']:.3f}" for setup in sc)
                         for t in m)
    if name == "advise":
        return "; ".join(
            f"{kind}: Kendall tau {'n/a' if res['kendall_tau_separated_pairs'] is None else format(res['kendall_tau_separated_pairs'], '.2f')} "
            f"(separated pairs), {res['kendall_tau_all_pairs']:.2f} (all); advise = {100 * res['advise_time_share']:.1f}% "
            "of the fine-tuning time" + (f" ({100 * res['advise_cpu_time_share']:.1f}% on the CPU clock)"
                                         if "advise_cpu_time_share" in res else "") for kind, res in res.items())
    if name == "onnx_export":
        speed = {kind: x["batch_seconds_vs_pytorch"]["variants"]["onnxruntime"]["ratio_to_baseline"]["median"]
                 for kind, x in res.items()}
        return "; ".join(f"{kind}: max abs diff {x['max_abs_diff']:.1e} ({_met(r, f'{kind}_max_abs_diff')}), "
                         f"onnxruntime batch time {speed[kind]:.2f}x PyTorch" for kind, x in res.items())
    if name == "threshold_tuning":
        macro, rare = res["test_macro_f1_present"], res["test_f1_two_bags"]
        return (f"test F1 at 0.5 → tuned on validation: `present` macro {_f3(macro['at_0.5'])} → "
                f"{_f3(macro['tuned'])}, rare `two_bags` {_f3(rare['at_0.5'])} → {_f3(rare['tuned'])}")
    if name == "scale_fsdp":
        v = res["variants"]
        return (f"{res['parameters'] / 1e6:.0f}M parameters, 2 processes: peak RSS per process FSDP "
                f"{v['fsdp']['peak_rss_gib_max']:.2f} GiB vs DDP {v['ddp']['peak_rss_gib_max']:.2f} GiB "
                f"({res['peak_rss_ratio_fsdp_to_ddp']:.2f}x); params + grads + optimizer state "
                f"{res['state_ratio_fsdp_to_ddp']:.2f}x")
    return ""


def summary(results_dir: Path) -> str:
    """The compact table for the top README."""
    lines = ["| benchmark | result (latest run) | run |", "|---|---|---|"]
    for name in ORDER:
        path = results_dir / f"{name}.json"
        if not path.is_file():
            lines.append(f"| {TITLES[name]} | not run yet | |")
            continue
        report = json.loads(path.read_text())
        lines.append(f"| {TITLES[name]} | {headline(name, report)} | {report['date'][:16].replace('T', ' ')} UTC |")
    return "\n".join(lines) + "\n"


def _replace_between(path: Path, start: str, end: str, body: str) -> None:
    text = path.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{path} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body}{end}{tail}")
    print(f"wrote {path}")


RECIPE_MARKERS = "<!-- recipe:{name}:start -->", "<!-- recipe:{name}:end -->"
"""Around a shipped recipe's output in the project README: the blocks `recipe_run.py` kept from the run."""


def recipe_output(report: dict) -> str:
    """A recipe run's printed evaluation blocks (``results/recipe_<name>.json``) as the README's code block."""
    res = report["results"]
    return (f"Output of `hf-mtl train {res['recipe']}{''.join(' ' + o for o in res['overrides'])}` "
            f"({report['date'][:10]}, `benchmarks/recipe_run.py`, {res['wall_seconds'] / 60:.1f} min wall clock on "
            f"{report['machine']['cpu_count']} CPU cores with a load average of "
            f"{report['machine']['load_average'][0]:.0f} at the end; the run's files are in `{report['_path']}`):"
            "\n\n```\n" + "\n".join(res["printed"]) + "\n```\n")


def render_recipe_outputs(results_dir: Path, readme: Path) -> None:
    """Every ``<!-- recipe:<name>:start -->`` region of ``readme`` from ``results/recipe_<name>.json``."""
    text = readme.read_text()
    for path in sorted(results_dir.glob("recipe_*.json")):
        name = path.stem[len("recipe_"):]
        start, end = (m.format(name=name) for m in RECIPE_MARKERS)
        if start in text:
            report = json.loads(path.read_text())
            report["_path"] = f"benchmarks/results/{path.name}"
            _replace_between(readme, start, end, recipe_output(report))
            text = readme.read_text()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=str(HERE / "results"))
    parser.add_argument("--readme", default=str(HERE / "README.md"))
    parser.add_argument("--top-readme", default=str(HERE.parent / "README.md"),
                        help="The project README whose Benchmarks section gets the summary table ('' to skip).")
    args = parser.parse_args(argv)
    results_dir = Path(args.results_dir)
    _replace_between(Path(args.readme), START, END, render(results_dir))
    if args.top_readme:
        _replace_between(Path(args.top_readme), SUMMARY_START, SUMMARY_END, summary(results_dir))
        render_recipe_outputs(results_dir, Path(args.top_readme))


if __name__ == "__main__":
    main()
