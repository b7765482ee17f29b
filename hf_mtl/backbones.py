"""Backbones: build a timm or transformers model from the config, load pretrained weights, pool features."""

from __future__ import annotations

import difflib
import inspect
import logging
import os
from typing import Any

import timm
import torch
from safetensors.torch import load_file
from timm.models import clean_state_dict, remap_state_dict
from torch import nn
from transformers import AutoConfig, AutoModel

from .configuration_mtl import MODEL_INPUT_NAMES
from .safety import check_backbone_name, read_weights_file

logger = logging.getLogger(__name__)



def detect_backbone_library(name: str) -> str:
    """``"timm"`` for a timm architecture name (or ``hf-hub:`` / ``timm/`` id), else ``"transformers"``."""
    if name.startswith(("hf-hub:", "timm/")) or timm.is_model(name):
        return "timm"
    return "transformers"


def backbone_config_dict(name: str) -> dict[str, Any]:
    """The transformers backbone's own config as a dict, stored in ours so the model rebuilds offline."""
    check_backbone_name(name)
    if os.path.isdir(name) and not os.path.isfile(os.path.join(name, "config.json")):
        raise ValueError(
            f"backbone folder {name!r} has no config.json, so it is not a transformers model; give a folder written "
            "by `save_pretrained`, a Hub model id or a timm model name"
        )
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=False)  # never a repo's own code, never a prompt
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"backbone {name!r} is neither a timm model name nor a loadable transformers model id/path "
            f"({first_line}){_close_timm_names(name)}"
        ) from err
    return config.to_dict()


def _close_timm_names(name: str) -> str:
    """``"; did you mean ..."`` with the closest timm architecture names, for typos."""
    close = difflib.get_close_matches(name.split("/")[-1], timm.list_models(), n=3, cutoff=0.8)
    return f"; did you mean {', '.join(repr(c) for c in close)}? (`timm.list_models()` lists them)" if close else ""


POSITION_OFFSET_MODEL_TYPES = ("roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod",
                               "roberta-prelayernorm", "ibert")
"""Backbones whose position ids start after the padding index, so ``pad_token_id + 1`` positions are never usable."""


def backbone_max_positions(config: Any) -> int | None:
    """The longest token sequence a transformers backbone's position embeddings take (None: no such limit known)."""
    backbone = dict(getattr(config, "backbone_config", None) or {})
    if getattr(config, "backbone_library", None) != "transformers" or not backbone:
        return None
    if backbone.get("position_embedding_type", "absolute") != "absolute":
        return None
    limit = backbone.get("max_position_embeddings") or backbone.get("n_positions")
    if not isinstance(limit, int) or limit <= 0:
        return None
    if backbone.get("model_type") in POSITION_OFFSET_MODEL_TYPES:
        limit -= int(backbone.get("pad_token_id") or 0) + 1
    return limit


class Backbone(nn.Module):
    """A headless pretrained network that maps inputs to one pooled feature vector per sample."""

    def __init__(self, config) -> None:
        super().__init__()
        self.library = config.backbone_library
        self.pooling = config.pooling
        if self.library == "timm":
            name = config.backbone.removeprefix("timm/")
            if name.startswith("hf-hub:"):
                raise ValueError("give the timm architecture name as `backbone`; hf-hub ids load via `weights`")
            if not timm.is_model(name):
                raise ValueError(f"backbone {name!r} is not a timm model name{_close_timm_names(name)}")
            try:
                self.model = timm.create_model(name, pretrained=False, num_classes=0, **config.backbone_kwargs)
            except TypeError as err:  # an unknown keyword deep inside the timm model class
                raise ValueError(
                    f"backbone_kwargs {config.backbone_kwargs} are not accepted by timm model {name!r}: {err}"
                ) from err
            self.num_features = int(self.model.num_features)
            self._input_names: tuple[str, ...] = ("pixel_values",)
        else:
            if not config.backbone_config:
                raise ValueError("a transformers backbone needs `backbone_config` (use MultiTaskModel.from_backbone)")
            backbone_cfg = dict(config.backbone_config)
            model_type = backbone_cfg.pop("model_type", None)
            if model_type is None:
                raise ValueError("backbone_config has no `model_type`; it must be a transformers config dict")
            self.model = AutoModel.from_config(AutoConfig.for_model(model_type, **backbone_cfg))
            self.num_features = _feature_size(self.model.config)
            accepted = inspect.signature(self.model.forward).parameters
            names = [name for name in MODEL_INPUT_NAMES if name in accepted]
            # The backbone's main input (input_ids / pixel_values / input_values) comes first: it is ours too.
            main = getattr(self.model, "main_input_name", None)
            if main in names:
                names.remove(main)
                names.insert(0, main)
            self._input_names = tuple(names)
        self.max_positions = backbone_max_positions(config)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The model inputs this backbone consumes (what a collator must provide)."""
        return self._input_names

    def forward(self, **inputs: torch.Tensor | None) -> torch.Tensor:
        inputs = {k: v for k, v in inputs.items() if v is not None and k in self._input_names}
        if self.library == "timm":
            if "pixel_values" not in inputs:
                raise ValueError("this timm backbone needs `pixel_values`")
            return self.model(inputs["pixel_values"])
        ids = inputs.get("input_ids")
        if ids is not None and self.max_positions is not None and ids.shape[-1] > self.max_positions:
            # otherwise an index error deep inside the position embeddings, naming nothing
            raise ValueError(
                f"input_ids have {ids.shape[-1]} tokens but the backbone has {self.max_positions} position embeddings; "
                f"truncate the texts (tokenizer(..., truncation=True, max_length={self.max_positions})) or use "
                "hf_mtl.dataset_transform / MultiTaskTrainer(processing_class=tokenizer), which cap them"
            )
        outputs = self.model(**inputs, return_dict=True)
        return self._pool(outputs, inputs.get("attention_mask"))

    def _pool(self, outputs: Any, attention_mask: torch.Tensor | None) -> torch.Tensor:
        hidden = getattr(outputs, "last_hidden_state", None)
        pooler = getattr(outputs, "pooler_output", None)
        if self.pooling == "pooler" or (self.pooling == "auto" and hidden is not None and hidden.dim() == 4):
            if pooler is not None:
                return pooler.flatten(1)
            if hidden is not None and hidden.dim() == 4:
                return hidden.mean(dim=(2, 3))
            raise ValueError("pooling='pooler' but this backbone returns no pooler_output; use 'cls' or 'mean'")
        if hidden is None:
            raise ValueError("the backbone returned no last_hidden_state to pool")
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = self._token_mask(hidden, attention_mask)
        if mask is None:
            return hidden.mean(dim=1)
        mask = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def _token_mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """Attention mask at the resolution of ``hidden`` (audio models downsample their inputs)."""
        if attention_mask is None:
            return None
        if attention_mask.shape[1] == hidden.shape[1]:
            return attention_mask
        reduce = getattr(self.model, "_get_feature_vector_attention_mask", None)
        if reduce is not None:
            return reduce(hidden.shape[1], attention_mask)
        return None


def _feature_size(config: Any) -> int:
    for attr in ("hidden_size", "hidden_dim", "d_model", "dim"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    sizes = getattr(config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    raise ValueError(f"cannot tell the feature size of backbone config {type(config).__name__}")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a weights file: safetensors, or a PyTorch file with ``weights_only=True`` (never arbitrary pickles)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights file {path!r} does not exist")
    if path.endswith(".safetensors"):
        try:
            state = load_file(path)
        except Exception as err:  # safetensors' own SafetensorError (corrupt / truncated header) names no file
            raise ValueError(f"backbone weights file {path!r} is not readable safetensors ({err}); re-download it") from err
        return clean_state_dict(state)
    state = read_weights_file(path)  # torch.load(weights_only=True): refuses pickled objects, naming the file
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} does not hold a state dict")
    return clean_state_dict(state)  # timm's: drops the `module.` prefix a DataParallel checkpoint has


def load_timm_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str = "weights") -> None:
    """Copy a pretrained state dict into a headless timm model.

    Keys that match are copied by name. A checkpoint from another implementation of the same architecture (e.g. the
    original EfficientNet-Lite0 release) has other names but the same tensors in the same order: then entries are
    matched by position and shape (timm's ``remap_state_dict``). Extra trailing entries (the dropped classifier) are
    ignored.
    """
    target = model.state_dict()
    if set(target) <= set(state):
        mapped = {k: state[k] for k in target}
    else:
        source_items = list(state.items())
        if len(source_items) < len(target):
            raise ValueError(
                f"{source}: has {len(source_items)} tensors, the backbone needs {len(target)}; wrong architecture?"
            )
        try:
            mapped = remap_state_dict(dict(source_items[: len(target)]), model, allow_reshape=False)
        except AssertionError as err:  # timm names both tensors and shapes
            raise ValueError(f"{source}: {err} The weights do not belong to this architecture") from err
        extra = [k for k, _ in source_items[len(target):]]
        if extra:
            logger.info("%s: ignored %d trailing tensors (classifier): %s", source, len(extra), extra)
    model.load_state_dict(mapped, strict=True)
