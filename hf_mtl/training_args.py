"""Training arguments of [`MultiTaskTrainer`]."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class MultiTaskTrainingArguments(TrainingArguments):
    """[`~transformers.TrainingArguments`] with multi-task defaults.

    Task columns are not arguments of the model's `forward`, so `remove_unused_columns` defaults to `False`: the
    collator picks model inputs and label columns itself.
    """

    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Keep dataset columns: the multi-task collator reads the label columns by task name."},
    )
    log_task_losses: bool = field(
        default=True, metadata={"help": "Log each task's mean loss over the logging window as `loss_<task>`."}
    )
