"""Task heads: a linear layer, or an MLP when the task asks for hidden layers."""

from __future__ import annotations

from torch import nn

from .tasks import TaskSpec

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


class TaskHead(nn.Module):
    """``[dropout → linear → activation] * len(hidden_sizes) → dropout → linear``.

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
        layers += [nn.Dropout(spec.dropout), nn.Linear(width, spec.output_size)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features):
        return self.layers(features)
