"""hf_mtl multiclass metrics on present labels: accuracy, macro-F1 and per-class F1.

Load it offline by path: ``evaluate.load(hf_mtl.metrics.metric_path("multiclass"))``.
"""

import datasets
import evaluate

from hf_mtl.metrics.functional import multiclass_scores

_DESCRIPTION = """Accuracy, macro-F1 and per-class F1 of softmax outputs on present labels only (a reference of -100
is missing). A class without support in the references has F1 None (missing), not 0."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: class probabilities or logits, one list of C floats per sample.
    references: class ids; -100 marks a missing label.
    label_names: names of the C classes, used as keys of `per_label`.
Returns:
    accuracy, macro_f1, per_label: {class: {f1, support}}.
Examples:
    >>> metric = evaluate.load("path/to/hf_mtl/metrics/multiclass")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8], [0.5, 0.4]], references=[0, 1, -100])["accuracy"]
    1.0
"""

_CITATION = """@article{scikit-learn, title={Scikit-learn: Machine Learning in {P}ython}, author={Pedregosa, F. and others},
journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Multiclass(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, label_names=None):
        return multiclass_scores(predictions, references, label_names=label_names)
