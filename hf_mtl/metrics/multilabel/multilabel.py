"""hf_mtl multilabel / binary metrics on present labels: ROC-AUC, average precision, F1 at threshold, accuracy.

Load it offline by path: ``evaluate.load(hf_mtl.metrics.metric_path("multilabel"))``.
"""

import datasets
import evaluate

from hf_mtl.metrics.functional import multilabel_scores

_DESCRIPTION = """Per-label, macro and micro ROC-AUC, average precision, F1 and accuracy of sigmoid outputs, computed on
present labels only (a reference of -100 or NaN is missing). A metric a label cannot define (no positive for F1 and
average precision, a single class for ROC-AUC) is None, never a crash or 0.5."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: probabilities, one list of L floats per sample (or one float per sample for a binary task).
    references: 0/1 labels of the same shape; -100 or NaN marks a missing label.
    thresholds: one threshold per label (or one for all) for F1 and accuracy; default 0.5.
    label_names: names of the L labels, used as keys of `per_label`.
Returns:
    per_label: {label: {roc_auc, average_precision, f1, accuracy, support, count}}, macro: {...}, micro: {...}.
Examples:
    >>> metric = evaluate.load("path/to/hf_mtl/metrics/multilabel")
    >>> metric.compute(predictions=[[0.9, 0.2], [0.1, 0.7]], references=[[1, -100], [0, 1]])["micro"]["f1"]
    1.0
"""

_CITATION = """@article{scikit-learn, title={Scikit-learn: Machine Learning in {P}ython}, author={Pedregosa, F. and others},
journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Multilabel(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"predictions": datasets.Sequence(datasets.Value("float64")),
                     "references": datasets.Sequence(datasets.Value("float64"))}
                ),
                datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}),
            ],
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, thresholds=None, label_names=None):
        return multilabel_scores(predictions, references, thresholds=thresholds, label_names=label_names)
