"""The `hf-mtl` commands: one module per command (`train`, `eval`, `predict`, `push`, each with `make_parser()` and
`main(argv)`), the recipe arguments (`arguments`), and the demo data the recipes use (`demo_data`)."""

from __future__ import annotations


class RecipeError(ValueError):
    """A recipe (YAML file or override) that cannot run; the message names the key or path and what is wrong.

    Messages quote what the user wrote, so a Hub token in it (e.g. `--push_to_hub hf_...` missing `--hub_token`) is
    redacted: the error goes to the terminal and CI logs."""

    def __init__(self, message: str) -> None:
        from ..safety import redact_secrets

        super().__init__(redact_secrets(str(message)))
