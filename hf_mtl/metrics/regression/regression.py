"""hf_mtl regression metrics on present values: MAE and RMSE per output and averaged.

Load it offline by path: ``evaluate.load(hf_mtl.metrics.metric_path("regression"))``.
"""

import datasets
import evaluate

from hf_mtl.metrics.functional import regression_scores

_DESCRIPTION = """Mean absolute error and root mean squared error per output on present values only (a reference of
-100 or NaN is missing), and their mean over outputs. An output without present values is None (missing)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted values, one float (or one list of K floats) per sample.
    references: true values of the same shape; -100 or NaN marks a missing value.
    label_names: names of the K outputs, used as keys of `per_label`.
Returns:
    mae, rmse, per_label: {output: {mae, rmse, count}}.
Examples:
    >>> metric = evaluate.load("path/to/hf_mtl/metrics/regression")
    >>> metric.compute(predictions=[1.0, 2.0, 5.0], references=[2.0, 2.0, float("nan")])["mae"]
    0.5
"""

_CITATION = """@article{scikit-learn, title={Scikit-learn: Machine Learning in {P}ython}, author={Pedregosa, F. and others},
journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Regression(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}),
                datasets.Features(
                    {"predictions": datasets.Sequence(datasets.Value("float64")),
                     "references": datasets.Sequence(datasets.Value("float64"))}
                ),
            ],
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, label_names=None):
        return regression_scores(predictions, references, label_names=label_names)
