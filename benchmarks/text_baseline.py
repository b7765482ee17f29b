"""Issue 14, item 6: a TF-IDF + logistic regression baseline on the WordNet tasks of ``recipes/wordnet_minilm.yaml``.

The same rows as the recipe (4,000 training and 1,000 evaluation glosses, seeds 0 and 1), the same metrics
(``hf_mtl.metrics.compute_task_metrics`` on present labels): word 1-2-gram TF-IDF (sublinear tf, min_df 2), one
scikit-learn ``LogisticRegression`` per multiclass task and one per label of the multilabel task, each fitted on the
rows where that label is present (nouns only for ``kind``). ``C`` is picked per task from {1, 10, 100} by 5-fold
cross-validation on the training rows only.

``--with-recipe`` also trains the recipe itself (``hf-mtl train recipes/wordnet_minilm.yaml``, its own settings) and
puts its heads-only stage, its final model and the final model minus TF-IDF per task's main metric in the same JSON.
The recipe's evaluation rows are also its selection set (best epoch, ``final_model: best_stage``), as a recipe without
a separate validation file runs; the baseline's ``C`` never sees them.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import base_parser, setup_logging, write_report  # noqa: E402

NAME = "text_baseline"
QUESTION = "TF-IDF + logistic regression on the WordNet tasks, beside the text recipe's model"
GRID = (1.0, 10.0, 100.0)


def _fit(features, targets, multiclass: bool, grid=GRID, max_folds: int = 5):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    folds = min(max_folds, int(np.bincount(targets).min())) if not multiclass else max_folds
    if len(set(targets.tolist())) < 2:
        return None
    search = GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(grid)}, cv=max(2, folds),
                          scoring="accuracy" if multiclass else "roc_auc")
    return search.fit(features, targets).best_estimator_


def main(argv: list[str] | None = None) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from hf_mtl.data import encode_labels
    from hf_mtl.metrics import compute_task_metrics
    from hf_mtl.scripts.arguments import parse_recipe
    from hf_mtl.scripts.demo_data import wordnet_gloss_dataset
    from hf_mtl.tasks import TaskSpec

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(Path(__file__).resolve().parent.parent / "recipes" / "wordnet_minilm.yaml"))
    parser.add_argument("--max-train-samples", type=int, default=None, help="Rows (default: the recipe's).")
    parser.add_argument("--max-eval-samples", type=int, default=None, help="Rows (default: the recipe's).")
    parser.add_argument("--with-recipe", action="store_true", help="Also train the recipe and compare (minutes).")
    parser.add_argument("--recipe-output-dir", default="outputs/text_baseline_recipe")
    args = parser.parse_args(argv)
    setup_logging()
    model_args, data_args, _, training_args = parse_recipe(args.recipe)
    n_train = args.max_train_samples or (400 if args.quick else data_args.max_train_samples)
    n_eval = args.max_eval_samples or (200 if args.quick else data_args.max_eval_samples)
    seed = training_args.seed  # the recipe's rows: hf_mtl.scripts.recipe_data uses seed / seed + 1
    train = wordnet_gloss_dataset(n_train, "train", seed=seed)
    test = wordnet_gloss_dataset(n_eval, "test", seed=seed + 1)
    specs = [TaskSpec.from_dict(task) for task in model_args.tasks]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train, x_test = vectorizer.fit_transform(train["text"]), vectorizer.transform(test["text"])
    y_train = encode_labels(specs, [dict(zip(train.column_names, r)) for r in zip(*[train[c] for c in train.column_names])])
    y_test = encode_labels(specs, [dict(zip(test.column_names, r)) for r in zip(*[test[c] for c in test.column_names])])
    search = {"grid": (10.0,), "max_folds": 2} if args.quick else {}  # a smoke test, not a measurement
    results = {}
    for spec in specs:
        labels, target = y_train[spec.name].numpy(), y_test[spec.name].numpy()
        if spec.type == "multiclass":
            present = labels != -100
            model = _fit(x_train[present], labels[present].astype(int), multiclass=True, **search)
            probs = np.zeros((x_test.shape[0], spec.output_size))
            probs[:, model.classes_] = model.predict_proba(x_test)
            logits = np.log(np.clip(probs, 1e-12, 1.0))
        else:  # multilabel: one classifier per label on the rows where it is present
            logits = np.zeros((x_test.shape[0], spec.output_size))
            for j in range(spec.output_size):
                present = labels[:, j] != -100
                model = _fit(x_train[present], labels[present, j].astype(int), multiclass=False, **search)
                p = model.predict_proba(x_test)[:, 1] if model is not None else np.full(x_test.shape[0], 0.5)
                logits[:, j] = np.log(np.clip(p, 1e-12, 1)) - np.log(np.clip(1 - p, 1e-12, 1))
        flat, _ = compute_task_metrics(spec, logits, target, per_label=False)
        results[spec.name] = {"main_metric": spec.task_type.main_metric,
                              "value": flat[f"{spec.name}_{spec.task_type.main_metric}"], "metrics": flat}
        print(f"{spec.name}: {spec.task_type.main_metric}={results[spec.name]['value']:.4f}", flush=True)
    report = {"n_train": n_train, "n_eval": n_eval, "tfidf_logreg": results}
    if args.with_recipe:
        report["recipe"] = run_recipe(args, n_train, n_eval, specs)
        report["recipe_minus_tfidf"] = {
            t: report["recipe"]["final"][t] - row["value"] for t, row in results.items() if t in report["recipe"]["final"]
        }
    return write_report(NAME, QUESTION, args, report, argv=argv)


def run_recipe(args, n_train: int, n_eval: int, specs) -> dict:
    """Train the recipe as ``hf-mtl train`` does (its own settings; rows capped for ``--quick``); returns the
    heads-only stage's and the final model's main metric per task, which stage was kept, and the wall time."""
    import json
    import time

    from hf_mtl.scripts.arguments import parse_recipe
    from hf_mtl.scripts.train import STAGE_SELECTION_FILE, run

    overrides = [f"output_dir={args.recipe_output_dir}", f"max_train_samples={n_train}", f"max_eval_samples={n_eval}"]
    if args.quick:
        overrides += ["heads_only_epochs=1", "max_steps=2"]
    start = time.perf_counter()
    final = run(*parse_recipe(args.recipe, overrides))
    seconds = time.perf_counter() - start
    selection = json.loads((Path(args.recipe_output_dir) / STAGE_SELECTION_FILE).read_text())
    rows = {row["task"]: row for row in selection["table"]}
    main = {spec.name: f"eval_{spec.name}_{spec.task_type.main_metric}" for spec in specs}
    return {"command": f"hf-mtl train {Path(args.recipe).name} " + " ".join(overrides), "wall_seconds": seconds,
            "kept": selection["kept"], "reason": selection["reason"],
            "heads_only": {t: rows[t]["heads_only"] for t in main if t in rows},
            "final": {t: final[key] for t, key in main.items() if key in final},
            "final_metrics": {k: v for k, v in final.items() if isinstance(v, (int, float))}}


if __name__ == "__main__":
    main()
