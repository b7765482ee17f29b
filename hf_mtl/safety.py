"""What a config, a weights file or a Hub repo can never make hf_mtl do: run code, unpickle objects, read files.

* Weights are safetensors. [`MultiTaskModel.from_pretrained`] loads nothing else (a folder or repo holding only
  ``pytorch_model.bin`` is refused before anything is unpickled, and before transformers' automatic conversion, which
  would post the user's token to a conversion Space), and a PyTorch file given as timm backbone weights is read with
  ``torch.load(weights_only=True)``, which refuses pickled code. ``hf_mtl.transfer.load_lora`` likewise refuses an
  adapter without ``adapter_model.safetensors`` (PEFT would fall back to a pickled ``adapter_model.bin``).
* Nothing needs ``trust_remote_code``: the keys that would make transformers import a repo's own code (``auto_map``,
  ``custom_pipelines``, ``trust_remote_code``) are dropped from our config and from ``backbone_config`` with a warning,
  and every ``Auto*.from_pretrained`` of hf_mtl passes ``trust_remote_code=False`` (unset, transformers asks on stdin
  whether to run a repo's code, and a piped ``y`` would run it).
* A config names code only through registries: the backbone's ``model_type`` must be a transformers config class that
  is already registered (``CONFIG_MAPPING``), the backbone is a timm registry name or a model id / folder (never an
  import string), head activations come from ``heads.ACTIVATIONS``, and an attention / experts implementation cannot
  name a Hub kernel repo (transformers would download and run it).
* ``backbone_kwargs`` (handed to ``timm.create_model``) cannot name files, URLs or pretrained configs for timm to read.
  This is a deny-list on purpose: timm's keyword arguments are open-ended and differ per architecture (``img_size``,
  ``drop_path_rate``, ``in_chans``, ...), so an allow-list would refuse legitimate models, while the ways timm reads
  a file or the network are few and named (``checkpoint_path``, ``pretrained``, ``pretrained_cfg[_overlay]``,
  ``cache_dir``). Any key with one of :data:`DENIED_KWARG_WORDS` among its ``_``-separated words, or ending in
  ``path`` / ``dir``, is refused (``drop_path_rate`` is not: there ``path`` is not the object), so a future ``*_path`` /
  ``*_url`` / ``*_file`` argument is refused too, and so is any string value that is a URL or a timm/Hub location.
  A ``timm_wrapper`` ``backbone_config`` (transformers' own timm bridge) follows the same rules for its ``model_args``.
* Tokens: error messages that quote user input are passed through :func:`redact_secrets`.

What hf_mtl leaves to its libraries, checked (tests/test_security.py): Trainer checkpoints keep the stock format
(``optimizer.pt``, ``scheduler.pt``, ``rng_state.pth``, ``scaler.pt`` written with ``torch.save``); transformers 5.24
reads each of them on resume with ``torch.load(weights_only=True)`` (and refuses torch < 2.6), so a tampered checkpoint
is refused, not run. The pickled ``training_args.bin`` is never read back by the Trainer; ``MultiTaskTrainer._save``
writes ``training_args.json`` instead, also for the pushes made while training (``_push_from_checkpoint``). timm 1.0
(``checkpoint_path``, pretrained files) loads PyTorch files with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines", "trust_remote_code")
"""Config keys through which transformers would import code from a repo; hf_mtl never acts on them."""

IMPLEMENTATION_KEYS = ("attn_implementation", "_attn_implementation", "experts_implementation",
                       "_experts_implementation")
"""Config keys whose value may name a Hub kernel repo (``org/name``) that transformers would download and run."""

DENIED_KWARG_WORDS = ("pretrained", "checkpoint", "file", "url", "uri", "cache", "hub")
"""A ``backbone_kwargs`` key with one of these words names a file, URL or download for timm: refused."""
DENIED_KWARG_ENDINGS = ("path", "dir")
"""A key whose last word is one of these names a location (``checkpoint_path``, ``cache_dir``): refused."""


def _denied_kwarg_word(key: str) -> str | None:
    words = [word for word in str(key).lower().replace("-", "_").split("_") if word]
    for word in words:
        for denied in DENIED_KWARG_WORDS:
            if word.startswith(denied):  # also plurals and joined forms: files, urls, pretrainedcfg
                return denied
    if words and words[-1] in DENIED_KWARG_ENDINGS:
        return words[-1]
    return None

URL_PREFIXES = ("local-dir:", "file:", "http:", "https:")
LOCATION_PREFIXES = ("hf-hub:", "timm/", *URL_PREFIXES)
"""String values that timm or the Hub client would resolve to something to fetch or read (``timm/`` and ``hf-hub:``
are fine as the ``backbone`` itself, not inside ``backbone_kwargs``)."""

HUB_TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
"""The shape of a Hugging Face access token (``hf_`` and 34 letters/digits today)."""

SAFE_WEIGHTS_NAMES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")

_IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
_WINDOWS_PATH = re.compile(r"[A-Za-z]:[\\/]")
CONVERT_HINT = (
    "To convert a file you trust (your own), once: `model = MultiTaskModel(MultiTaskConfig.from_pretrained(FOLDER)); "
    "model.load_state_dict(torch.load(FOLDER + '/pytorch_model.bin', weights_only=True)); "
    "model.save_pretrained(FOLDER)` writes model.safetensors (plain tensors: "
    "`safetensors.torch.save_file(torch.load(PATH, weights_only=True), 'model.safetensors')`)."
)


class UnsafeConfigError(ValueError):
    """A config asks for something hf_mtl never does (run or import code, read a file or URL it names)."""


class UnsafeWeightsError(OSError):
    """Weights that are not safetensors, or a PyTorch file that would need arbitrary unpickling."""


# ------------------------------------------------------------------------------------------------------------ configs
def drop_remote_code_keys(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Remove ``auto_map`` / ``custom_pipelines`` / ``trust_remote_code`` (also nested) from ``values``, warning."""
    for key in REMOTE_CODE_KEYS:
        if key in values:
            values.pop(key)
            logger.warning(
                "%s: ignored `%s`: hf_mtl never runs code shipped with a model (no trust_remote_code needed)", where, key
            )
    for key, value in values.items():
        if isinstance(value, dict):
            drop_remote_code_keys(value, f"{where}.{key}")
    return values


def check_config_safety(config: Any, kwargs: dict[str, Any]) -> None:
    """Everything [`MultiTaskConfig`] checks on construction: called from its ``__post_init__``."""
    drop_remote_code_keys(kwargs, "MultiTaskConfig")
    check_no_hub_kernels(kwargs, "MultiTaskConfig")
    if config.backbone:
        check_backbone_name(config.backbone)
    check_backbone_kwargs(config.backbone_kwargs or {})
    if config.backbone_config:
        config.backbone_config = check_backbone_config(dict(config.backbone_config))


def check_backbone_name(name: str) -> None:
    """A backbone is a timm registry name, a Hub model id or a local folder: never an import string or a URL."""
    if os.path.exists(name):
        return
    bare = name.removeprefix("hf-hub:")
    problem = None
    if "://" in bare or bare.startswith(URL_PREFIXES):
        problem = "is a URL / file location"
    elif ":" in bare and not _WINDOWS_PATH.match(bare):
        problem = "looks like an import string (`module:attribute`)"
    elif "/" not in bare and _IMPORT_PATH.fullmatch(bare):
        import timm

        if not timm.is_model(bare):
            problem = "looks like an import path (`module.Class`), and is no timm model name"
    if problem:
        raise UnsafeConfigError(
            f"backbone {name!r} {problem}; hf_mtl never imports code named in a config. Give a timm model name "
            "(`timm.list_models()`), a transformers model id (`owner/name`) or a local model folder"
        )


def check_backbone_kwargs(kwargs: Mapping[str, Any], where: str = "backbone_kwargs") -> None:
    """Refuse ``backbone_kwargs`` that would make timm read a file, a URL or a pretrained config (see module doc)."""
    for key, value in kwargs.items():
        denied = _denied_kwarg_word(key)
        if denied:
            raise UnsafeConfigError(
                f"{where}[{key!r}] is refused: a config may not make timm load a file, URL or pretrained "
                f"config ({denied!r} keys are denied). Load backbone weights with `MultiTaskModel.from_backbone"
                "(..., weights=<path or True>)` instead"
            )
        location = _find_location(value)
        if location is not None:
            raise UnsafeConfigError(
                f"{where}[{key!r}] holds the location {location!r}: a config may not make timm read a file "
                "or URL"
            )


def _find_location(value: Any) -> str | None:
    if isinstance(value, str):
        return value if ("://" in value or value.startswith(LOCATION_PREFIXES)) else None
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _find_location(item)
            if found is not None:
                return found
    return None


def check_backbone_config(backbone_config: dict[str, Any]) -> dict[str, Any]:
    """The transformers backbone's config must name a registered ``model_type``; remote-code keys are dropped."""
    from transformers import CONFIG_MAPPING

    model_type = backbone_config.get("model_type")
    if model_type is not None and (not isinstance(model_type, str) or model_type not in CONFIG_MAPPING
                                   or model_type == "hf_mtl"):
        raise UnsafeConfigError(
            f"backbone_config has model_type {model_type!r}, which is no transformers model type registered in this "
            "process (transformers.CONFIG_MAPPING); hf_mtl builds only registered backbones and never imports code "
            "named by a config. Upgrade transformers if the type is new, or import the package that registers it"
        )
    check_no_hub_kernels(backbone_config, "backbone_config")
    if model_type == "timm_wrapper":  # transformers' TimmWrapperModel calls timm.create_model(architecture, **model_args)
        check_backbone_kwargs(backbone_config.get("model_args") or {}, "backbone_config.model_args")
        architecture = str(backbone_config.get("architecture") or "")
        if architecture.startswith(LOCATION_PREFIXES) or ":" in architecture:
            raise UnsafeConfigError(
                f"backbone_config: timm_wrapper architecture {architecture!r} names a location for timm to fetch; give "
                "a timm model name"
            )
    return drop_remote_code_keys(backbone_config, "backbone_config")


def check_no_hub_kernels(values: Mapping[str, Any], where: str) -> None:
    """Refuse an attention / experts implementation that names a Hub kernel repo (also in nested sub-configs):
    transformers would download compiled code for it."""
    for key, value in values.items():
        if isinstance(value, Mapping):
            check_no_hub_kernels(value, f"{where}.{key}")
        elif key in IMPLEMENTATION_KEYS and isinstance(value, str) and ("/" in value or ":" in value):
            raise UnsafeConfigError(
                f"{where}: `{key}` is {value!r}, a Hub kernel repo that transformers would download and run; hf_mtl "
                "never loads code named by a config. Use a built-in implementation ('sdpa', 'eager', "
                "'flash_attention_2', ...)"
            )


# ------------------------------------------------------------------------------------------------------------ weights
def safe_loading_kwargs(source: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a safetensors-only ``from_pretrained``; refuse a source without safetensors weights.

    Checked before transformers resolves the weights, so a pickle is never opened and transformers' automatic
    safetensors conversion (which would send the user's token to a conversion Space) is never started.
    """
    if kwargs.get("use_safetensors") is False or kwargs.get("weights_only") is False:
        raise UnsafeWeightsError(
            "hf_mtl reads model weights as safetensors only; use_safetensors=False / weights_only=False are refused. "
            + CONVERT_HINT
        )
    if kwargs.get("gguf_file"):
        raise UnsafeWeightsError(f"hf_mtl reads safetensors only, not the GGUF file {kwargs['gguf_file']!r}")
    if kwargs.get("trust_remote_code"):
        logger.warning("trust_remote_code=True ignored: hf_mtl models never run code shipped with a repo")
    kwargs = {k: v for k, v in kwargs.items() if k != "trust_remote_code"}
    kwargs["use_safetensors"] = True
    if source is None or kwargs.get("state_dict") is not None:
        return kwargs
    source = os.fspath(source)
    if os.path.isfile(source):
        if not source.endswith(".safetensors"):
            raise UnsafeWeightsError(f"{source!r} is not a safetensors file; hf_mtl reads safetensors only. "
                                     + CONVERT_HINT)
        return kwargs
    require_safetensors(source, [_with_variant(name, kwargs.get("variant")) for name in SAFE_WEIGHTS_NAMES], kwargs)
    return kwargs


def require_safetensors(source: str | os.PathLike, names: list[str], kwargs: dict[str, Any] | None = None) -> None:
    """Refuse a local folder or Hub repo (``kwargs``: revision, token, subfolder, ...) holding none of ``names``:
    weights there would be pickles, which the loading library would fall back to."""
    kwargs = kwargs or {}
    source = os.fspath(source)
    subfolder = kwargs.get("subfolder") or ""
    folder = os.path.join(source, subfolder) if subfolder else source
    if os.path.isdir(folder):
        if not any(os.path.isfile(os.path.join(folder, name)) for name in names):
            raise UnsafeWeightsError(_no_safetensors_message(f"folder {folder!r}", names, os.listdir(folder)))
        return
    _check_remote_safetensors(source, names, kwargs)


def _with_variant(name: str, variant: str | None) -> str:
    if not variant:
        return name
    stem, ext = name.split(".", 1)
    return f"{stem}.{variant}.{ext}"


def _no_safetensors_message(where: str, names: list[str], present: list[str]) -> str:
    pickles = sorted(name for name in present if name.endswith(PICKLE_WEIGHTS_SUFFIXES))
    holds = f"; it holds {pickles}, which hf_mtl never unpickles" if pickles else ""
    return f"{where} has no {' or '.join(names)}{holds}. hf_mtl reads model weights as safetensors only. " + CONVERT_HINT


def _check_remote_safetensors(repo_id: str, names: list[str], kwargs: dict[str, Any]) -> None:
    """Fetch (into the cache) the repo's safetensors weights or index; refuse a repo that has neither."""
    from huggingface_hub import is_offline_mode
    from transformers.utils import cached_file

    hub_kwargs = {key: kwargs[key] for key in ("cache_dir", "force_download", "proxies", "token", "revision",
                                               "local_files_only", "subfolder") if kwargs.get(key) is not None}
    for name in names:
        # Repo / revision not found, no access or no connection raise transformers' own clear OSError here.
        if cached_file(repo_id, name, _raise_exceptions_for_missing_entries=False, **hub_kwargs) is not None:
            return
    if kwargs.get("local_files_only") or is_offline_mode():
        return  # not in the cache: transformers says so (offline it never converts or unpickles anything)
    revision = kwargs.get("revision") or "main"
    raise UnsafeWeightsError(_no_safetensors_message(f"Hub repo {repo_id!r} (revision {revision!r})", names, []))


def read_weights_file(path: str) -> Any:
    """``torch.load(path, weights_only=True)`` with an error naming the file when it holds more than tensors."""
    from pickle import UnpicklingError  # only the exception type: nothing is ever unpickled outside torch's guard

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UnpicklingError as err:
        # torch's own text suggests weights_only=False; keep only the line that says what was refused
        detail = next((line for line in str(err).splitlines() if "GLOBAL" in line or "Unsupported" in line), "")
        raise UnsafeWeightsError(
            f"refused to load {path!r}: it is a pickle that holds more than tensors (objects or code to run), and "
            f"hf_mtl never unpickles those{f' ({detail.strip()})' if detail else ''}. Use a safetensors file."
        ) from err


# ------------------------------------------------------------------------------------------------------------- tokens
def redact_secrets(text: str, *secrets: str | None) -> str:
    """``text`` without the Hub token huggingface_hub would use (``HF_TOKEN`` or the login), without ``secrets`` and
    without anything shaped like a Hub token: for messages that quote user input or a failed request."""
    from huggingface_hub import get_token

    for secret in {*secrets, get_token()}:
        if isinstance(secret, str) and len(secret) >= 8:
            text = text.replace(secret, "***")
    return HUB_TOKEN_PATTERN.sub("hf_***", text)


# ------------------------------------------------------------------------------------------------------- file modes
def default_file_mode(directory: bool = False) -> int:
    """The permission bits ``open()`` / ``os.mkdir`` give a new file / folder under the process umask."""
    umask = None
    try:  # Linux >= 4.7 reports the umask without changing it (the os.umask read-and-restore is not thread-safe)
        with open("/proc/self/status", encoding="ascii") as handle:
            umask = next((int(line.split()[1], 8) for line in handle if line.startswith("Umask:")), None)
    except OSError:
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def restore_default_modes(*paths: str | os.PathLike, pattern: str = "*.safetensors") -> None:
    """Give the files matching ``pattern`` in ``paths`` (files, or folders: not recursive) the mode of an ordinary new
    file.

    safetensors >= 0.8 writes through a ``NamedTempFile`` renamed into place, which is always created ``0600``
    (safetensors issue #782): a model saved under umask 022 would be unreadable to other users (a shared cache, a
    Docker image built as root) while its ``config.json`` is not. ``tempfile.mkdtemp`` folders are ``0700`` likewise.
    Only files still at the temp-file modes are changed, so a mode the user chose survives.
    """
    from fnmatch import fnmatch

    file_mode = default_file_mode()
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            candidates = [os.path.join(path, name) for name in os.listdir(path) if fnmatch(name, pattern)]
        else:
            candidates = [path]
        for candidate in candidates:
            if os.path.isfile(candidate) and os.stat(candidate).st_mode & 0o777 == 0o600:
                os.chmod(candidate, file_mode)
