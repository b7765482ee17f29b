"""Task heads: a linear layer, or an MLP when the task asks for hidden layers; the last layer is the task type's."""

from __future__ import annotations

from torch import nn

from .tasks import HEAD_ACTIVATIONS, TaskSpec

ACTIVATIONS = HEAD_ACTIVATIONS


class TaskHead(nn.Module):
    """``[dropout → linear → activation] * len(hidden_sizes) → dropout → output layer`` (``TaskType.output_layer``:
    a linear layer, or e.g. the ordinal type's shared-weight CORAL layer).

    Activations come from an allow-list so a config can never name arbitrary code.
    """

    def __init__(self, in_features: int, spec: TaskSpec):
        super().__init__()
        if spec.activation not in ACTIVATIONS:
            raise ValueError(
                f"task {spec.name!r}: unknown head activation {spec.activation!r}; choose one of {sorted(ACTIVATIONS)}"
            )
        layers: list[nn.Module] = []
        width = in_features
        for hidden in spec.hidden_sizes:
            layers += [nn.Dropout(spec.dropout), nn.Linear(width, hidden), ACTIVATIONS[spec.activation]()]
            width = hidden
        layers += [nn.Dropout(spec.dropout), spec.task_type.output_layer(width, spec)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features):
        return self.layers(features)
