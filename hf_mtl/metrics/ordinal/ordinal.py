"""hf_mtl ordinal metrics on present labels: accuracy, mean absolute error in classes, quadratic weighted kappa.

Load it offline by path: ``evaluate.load(hf_mtl.metrics.metric_path("ordinal"))``.
"""

import datasets
import evaluate

from hf_mtl.metrics.functional import ordinal_scores

_DESCRIPTION = """Accuracy, mean absolute error (in classes) and quadratic weighted kappa of predicted ordered classes
on present labels only (a reference of -100 is missing), plus per-class F1. Kappa is None (missing) when fewer than
two classes occur, and a class without support has F1 None."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids (0 = lowest class), one int per sample.
    references: true class ids; -100 marks a missing label.
    label_names: names of the K ordered classes, used as keys of `per_label` (and to fix K for the kappa).
Returns:
    accuracy, mae, qwk, per_label: {class: {f1, support}}.
Examples:
    >>> metric = evaluate.load("path/to/hf_mtl/metrics/ordinal")
    >>> metric.compute(predictions=[0, 2, 1], references=[0, 1, -100], label_names=["low", "mid", "high"])["mae"]
    0.5
"""

_CITATION = """@article{cohen1968weighted, title={Weighted kappa: Nominal scale agreement with provision for scaled
disagreement or partial credit}, author={Cohen, Jacob}, journal={Psychological Bulletin}, volume={70}, number={4},
pages={213--220}, year={1968}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Ordinal(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.cohen_kappa_score.html"],
        )

    def _compute(self, predictions, references, label_names=None):
        if label_names is None:
            label_names = [str(i) for i in range(max([*predictions, *references, 0]) + 1)]
        return ordinal_scores(predictions, references, label_names=label_names)
