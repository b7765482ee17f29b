"""The data layer: batching and label encoding ([`collator`]), checks before step 1 ([`validation`]; raw inputs are
decoded by ``hf_mtl.preprocessing``), task specs from dataset features ([`specs`]) and mixing datasets that label
different tasks ([`mixing`]), streams larger than memory ([`streaming`])."""

from ..configuration_mtl import MODEL_INPUT_NAMES
from ..preprocessing import open_image, text_problem
from .collator import MultiTaskDataCollator, encode_labels
from .mixing import mix_datasets, sampling_probabilities
from .specs import task_specs_from_features
from .streaming import ROW_ID_COLUMN, TrainingStream, split_stream, stream_files
from .validation import (
    INPUT_KINDS,
    as_dataset,
    image_problem,
    is_map_style,
    iter_encoded_labels,
    standardize_regression_targets,
    validate_inputs,
    validate_labels,
)

__all__ = [
    "INPUT_KINDS",
    "ROW_ID_COLUMN",
    "TrainingStream",
    "split_stream",
    "stream_files",
    "MODEL_INPUT_NAMES",
    "MultiTaskDataCollator",
    "as_dataset",
    "standardize_regression_targets",
    "encode_labels",
    "image_problem",
    "is_map_style",
    "iter_encoded_labels",
    "mix_datasets",
    "open_image",
    "sampling_probabilities",
    "task_specs_from_features",
    "text_problem",
    "validate_inputs",
    "validate_labels",
]
