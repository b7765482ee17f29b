"""MultiTaskTrainingArguments: every enumerated field is a `Literal` with `choices`, checked when the arguments are made."""

from __future__ import annotations

import typing
from dataclasses import fields

import pytest
from transformers import HfArgumentParser

from hf_mtl import MultiTaskTrainingArguments
from hf_mtl.balancing import BALANCERS
from hf_mtl.training_args import ENUMERATED_FIELDS


def _literal_values(name: str) -> tuple[str, ...]:
    hint = typing.get_type_hints(MultiTaskTrainingArguments)[name]
    literal = next(a for a in (hint, *typing.get_args(hint)) if typing.get_origin(a) is typing.Literal)
    return typing.get_args(literal)


@pytest.mark.parametrize("name", ENUMERATED_FIELDS)
def test_enumerated_fields_are_literals_with_choices_and_checked(tmp_path, name):
    spec = {f.name: f for f in fields(MultiTaskTrainingArguments)}[name]
    values = _literal_values(name)
    assert spec.metadata["choices"] == list(values)
    with pytest.raises(ValueError, match=rf"unknown {name} 'nope'; choose one of \[{', '.join(map(repr, values))}\]"):
        MultiTaskTrainingArguments(output_dir=str(tmp_path), **{name: "nope"})
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), **{name: values[-1]})
    assert getattr(args, name) == values[-1]


def test_choices_follow_the_registries_and_reach_the_command_line(capsys):
    assert set(_literal_values("task_balancing")) == set(BALANCERS)
    parser = HfArgumentParser(MultiTaskTrainingArguments)
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--output_dir", "x", "--freeze_policy", "bottom"])
    assert "invalid choice: 'bottom'" in capsys.readouterr().err
    (args,) = parser.parse_args_into_dataclasses(["--output_dir", "x", "--freeze_policy", "top_n"])
    assert args.freeze_policy == "top_n" and args.unfreeze_unit == "epoch"
