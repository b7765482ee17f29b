"""Preprocessing from the backbone: the processor that turns raw images / texts / audio into model inputs.

timm backbones get a [`TimmImageProcessor`]: timm's own ``resolve_data_config`` + ``create_transform`` (eval and train
transforms) inside a transformers image processor, so it saves with ``save_pretrained`` and reloads with
``AutoImageProcessor.from_pretrained`` beside the model (transformers' ``TimmWrapperImageProcessor`` refuses to save).
transformers backbones use the backbone folder's own tokenizer / image processor / feature extractor.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoConfig, AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin
from transformers.image_processing_utils import BaseImageProcessor
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from .backbones import backbone_max_positions
from .configuration_mtl import MultiTaskConfig

logger = logging.getLogger(__name__)

TRAIN_TRANSFORM_DEFAULTS: dict[str, Any] = {"hflip": 0.5, "color_jitter": 0.0, "scale": (0.5, 1.0)}
"""timm ``create_transform(is_training=True)`` options used unless overridden: mild augmentation that suits small
fine-tuning sets (timm's ImageNet defaults crop down to 8% of the image)."""

_KIND_OF_MAIN_INPUT = {"pixel_values": "image", "input_values": "audio", "input_features": "audio"}


def input_kind(main_input_name: str | None) -> str:
    """``"image"``, ``"text"`` or ``"audio"``: what a model (``model.main_input_name``), a backbone or a processor
    (``processor.model_input_names[0]``) whose main input is ``main_input_name`` reads; anything else is text.
    The one modality rule: processors, the model card and the recipe checks all ask it."""
    return _KIND_OF_MAIN_INPUT.get(main_input_name or "", "text")


WIDE_IMAGE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
"""PIL modes with more than 8 bits per pixel: 16-bit PNG / TIFF (X-ray, CT, microscopy), 32-bit integer and float."""


def to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    """Pixels → uint8 without losing the image's dynamic range.

    uint8 passes as is. Wider integers (uint16 medical images, 12 bits in 16, PIL ``I;16`` / ``I``) are scaled by the
    image's own range, min → 0 and max → 255, never clipped (clipping saturates nearly every pixel of a 16-bit
    image). Floats must be finite and in [0, 1] (scaled by 255) or [0, 255]; NaN, inf or values outside (e.g. already
    normalised ``pixel_values``) are an error, not silently clipped to black.
    """
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        if not array.size:
            return array.astype(np.uint8)
        low, high = int(array.min()), int(array.max())
        scaled = (array.astype(np.float64) - low) * (255.0 / (high - low) if high > low else 0.0)
        return np.round(scaled).astype(np.uint8)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name} has dtype {array.dtype}; give integer or float pixels")
    finite = np.isfinite(array)
    if not finite.all():
        bad = "NaN" if np.isnan(array).any() else "inf"
        raise ValueError(
            f"{name} holds {bad} in {int((~finite).sum())} pixels; an image must be finite (fix or drop the input)"
        )
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if low < 0.0 or high > 255.0:
        raise ValueError(
            f"{name} has float pixels in [{low:.4g}, {high:.4g}], outside [0, 1] and [0, 255]: hf_mtl would not know "
            "how to scale them (already normalised pixel_values go to the model, not to the processor); rescale to "
            "[0, 1], or give the raw integer image"
        )
    return np.round(array * (255.0 if high <= 1.0 else 1.0)).astype(np.uint8)


def load_image(image: Any, mode: str = "RGB") -> Image.Image:
    """A PIL image, a path, a numpy array (HW, HWC or CHW) or a tensor → a PIL image in ``mode``."""
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise FileNotFoundError(f"image file {os.fspath(image)!r} does not exist")
        image = open_image(image, f"image file {os.fspath(image)!r}")
    elif isinstance(image, dict) and ("bytes" in image or "path" in image):  # a datasets Image() column, undecoded
        import io

        if image.get("bytes"):
            path = image.get("path")
            image = open_image(io.BytesIO(image["bytes"]), f"image bytes of {path!r}" if path else "image bytes")
        else:
            image = load_image(image["path"], mode)
    elif isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, Image.Image) and image.mode in WIDE_IMAGE_MODES:  # 16-bit / 32-bit grayscale (medical)
        image = Image.fromarray(to_uint8(np.asarray(image), f"a {image.mode} image"))
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = array.transpose(1, 2, 0)  # CHW → HWC
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3):
            raise ValueError(f"an image array must be HW, HWC or CHW, got shape {image.shape}")
        image = Image.fromarray(to_uint8(array, f"an image array of shape {tuple(image.shape)}"))
    if not isinstance(image, Image.Image):
        raise TypeError(f"cannot read an image from {type(image).__name__}; give PIL images, arrays or file paths")
    return image if image.mode == mode else image.convert(mode)


def open_image(source: Any, name: str, decode: bool = True) -> Image.Image | None:
    """Open an image file / buffer and (``decode``) decode it fully, returning a copy; ``decode=False`` only parses
    the header and returns None. A corrupt image is a ValueError naming it (``name``), not a PIL trace.
    [`load_image`] and the up-front check ``hf_mtl.data.validate_inputs`` both read images through this."""
    from PIL import UnidentifiedImageError

    try:
        opened = Image.open(source)  # parses the header only
    except UnidentifiedImageError as err:
        raise ValueError(
            f"{name} is not an image in any format PIL reads (corrupt or not an image); replace it or drop the row"
        ) from err
    except (OSError, ValueError) as err:
        raise ValueError(f"{name} is not a readable image ({err}); replace it or drop the row") from err
    with opened:
        if not decode:
            return None
        try:
            opened.load()
        except (OSError, SyntaxError, ValueError) as err:  # truncated / corrupt data past a valid header
            raise ValueError(f"{name} cannot be decoded past its header ({err}); replace it or drop the row") from err
        return opened.copy()


def text_problem(value: Any, allow_empty: bool = False) -> str | None:
    """What is wrong with a raw text input (None, not a string, empty unless ``allow_empty``), or None when fine."""
    if value is None:
        return "the text is missing (None); fill it in or drop the row (`dataset.filter`)"
    if not isinstance(value, str):
        return f"expected a text (str), got {type(value).__name__} {value!r:.80}"
    if not value.strip() and not allow_empty:
        return (
            f"the text is empty ({value!r}); drop the row (`dataset.filter`) or, if empty texts are meant as input, "
            "pass allow_empty_text=True"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:  # tokenizers fail on it with a TypeError that names nothing
            return (f"the text holds {value[err.start]!r} at character {err.start}, a lone surrogate (not valid "
                    "Unicode: text decoded from bytes the wrong way, e.g. JSON with split surrogate pairs); fix the "
                    "decoding or drop the row")
    return None


def load_audio(audio: Any, sampling_rate: int | None = None) -> np.ndarray:
    """A waveform array, a ``{"array", "sampling_rate"}`` dict or a ``datasets`` audio decoder → a mono float array.

    A clip at another sampling rate is an error (resample the column with ``cast_column("audio",
    Audio(sampling_rate=...))``): silently feeding the wrong rate would train on garbage.
    """
    rate = None
    if hasattr(audio, "get_all_samples"):  # datasets >= 4 decodes Audio() columns to a torchcodec AudioDecoder
        samples = audio.get_all_samples()
        audio, rate = samples.data.mean(dim=0).numpy(), int(samples.sample_rate)
    elif isinstance(audio, dict):
        audio, rate = audio["array"], audio.get("sampling_rate")
    if rate is not None and sampling_rate is not None and int(rate) != int(sampling_rate):
        raise ValueError(
            f"audio at {rate} Hz but the feature extractor expects {sampling_rate} Hz; resample the dataset column "
            f"with `cast_column(<column>, datasets.Audio(sampling_rate={sampling_rate}))`"
        )
    array = np.asarray(audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32)
    return array.mean(axis=0) if array.ndim == 2 else array


class TimmImageProcessor(BaseImageProcessor):
    """timm's data config and transforms as a transformers image processor.

    Args:
        input_size: ``(channels, height, width)`` the backbone expects.
        interpolation, mean, std, crop_pct, crop_mode: timm's data config (``timm.data.resolve_data_config``).
        train_transform_kwargs: extra ``timm.data.create_transform(is_training=True)`` options (augmentation).
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        input_size: Sequence[int] = (3, 224, 224),
        interpolation: str = "bicubic",
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        crop_pct: float = 0.875,
        crop_mode: str = "center",
        train_transform_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_size = [int(v) for v in input_size]
        if len(self.input_size) != 3:
            raise ValueError(f"input_size must be (channels, height, width), got {input_size}")
        self.interpolation = interpolation
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.crop_pct = float(crop_pct)
        self.crop_mode = crop_mode
        self.train_transform_kwargs = {**TRAIN_TRANSFORM_DEFAULTS, **(train_transform_kwargs or {})}
        self._transforms: dict[bool, Callable] = {}

    @classmethod
    def from_timm(
        cls,
        model_or_name: Any,
        image_size: int | Sequence[int] | None = None,
        in_chans: int | None = None,
        train_transform_kwargs: dict[str, Any] | None = None,
    ) -> TimmImageProcessor:
        """Resolve timm's data config for a timm model (or architecture name), optionally at another image size."""
        import timm

        if isinstance(model_or_name, str):
            pretrained_cfg = timm.models.get_pretrained_cfg(model_or_name.removeprefix("timm/"))
            if pretrained_cfg is None:
                raise ValueError(f"timm has no pretrained config for {model_or_name!r}; is it a timm model name?")
            data_config = timm.data.resolve_data_config(pretrained_cfg.to_dict(), verbose=False)
        else:
            data_config = timm.data.resolve_data_config(model=model_or_name, verbose=False)
        channels = int(in_chans or data_config["input_size"][0])
        height, width = data_config["input_size"][1:]
        if image_size is not None:
            height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        mean, std = list(data_config["mean"]), list(data_config["std"])
        if channels != len(mean):  # timm averages the stem over channels for in_chans != 3; do the same for stats
            mean, std = [float(np.mean(mean))] * channels, [float(np.mean(std))] * channels
        return cls(
            input_size=(channels, int(height), int(width)),
            interpolation=data_config["interpolation"],
            mean=mean,
            std=std,
            crop_pct=data_config["crop_pct"],
            crop_mode=data_config.get("crop_mode", "center"),
            train_transform_kwargs=train_transform_kwargs,
        )

    @property
    def image_mode(self) -> str:
        return {1: "L", 3: "RGB", 4: "RGBA"}.get(self.input_size[0], "RGB")

    def transform(self, train: bool = False) -> Callable:
        """timm's ``create_transform`` for training (augmenting) or evaluation, built once."""
        if train not in self._transforms:
            import timm

            kwargs = dict(self.train_transform_kwargs) if train else {}
            if "scale" in kwargs and kwargs["scale"] is not None:
                kwargs["scale"] = tuple(kwargs["scale"])
            self._transforms[train] = timm.data.create_transform(
                input_size=tuple(self.input_size),
                is_training=train,
                interpolation=self.interpolation,
                mean=tuple(self.mean),
                std=tuple(self.std),
                crop_pct=self.crop_pct,
                crop_mode=self.crop_mode,
                **kwargs,
            )
        return self._transforms[train]

    def preprocess(self, images: Any, train: bool = False, return_tensors: str | None = "pt", **kwargs: Any):
        """Images (one or a list: PIL, arrays, paths) → ``BatchFeature({"pixel_values": (B, C, H, W)})``."""
        if return_tensors not in ("pt", None):
            raise ValueError(f"TimmImageProcessor returns PyTorch tensors; return_tensors={return_tensors!r}")
        if isinstance(images, (Image.Image, str, os.PathLike)) or (
            isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim <= 3
        ):
            images = [images]
        transform = self.transform(train)
        pixel_values = torch.stack([transform(load_image(image, self.image_mode)) for image in images])
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=None)

    def __getstate__(self) -> dict[str, Any]:
        # The built transforms are a cache: pickles (and so ``datasets`` fingerprints of a ``with_transform`` using
        # this processor, which key the feature cache) are the same before and after the first image is processed.
        return {**self.__dict__, "_transforms": {}}

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output.pop("_transforms", None)
        if output.get("train_transform_kwargs", {}).get("scale") is not None:
            output["train_transform_kwargs"]["scale"] = list(output["train_transform_kwargs"]["scale"])
        return output


def _backbone_main_input(config: Any) -> str:
    """The main input name of a transformers backbone (from its config's model class, nothing instantiated)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    backbone_cfg = dict(config.backbone_config or {})
    model_type = backbone_cfg.pop("model_type", None)
    if model_type is None:
        return "input_ids"
    model_class = MODEL_MAPPING.get(type(AutoConfig.for_model(model_type)), None)
    if isinstance(model_class, (list, tuple)):
        model_class = model_class[0]
    return getattr(model_class, "main_input_name", "input_ids")


def build_processor(
    config_or_model: Any,
    source: str | os.PathLike | None = None,
    *,
    image_size: int | Sequence[int] | None = None,
    train_transform_kwargs: dict[str, Any] | None = None,
) -> Any:
    """The processing object for a model's backbone.

    Args:
        config_or_model: a [`MultiTaskConfig`], a [`MultiTaskModel`] or the folder of a saved model.
        source: where to load a saved processor from (a model folder or, for transformers backbones, the backbone's id
            or folder). Default: the saved model folder when it holds a processor, else the backbone itself.
        image_size: timm only: resize to this size instead of the backbone's pretraining size.
        train_transform_kwargs: timm only: ``create_transform(is_training=True)`` options.

    Returns a [`TimmImageProcessor`] for timm backbones, else the backbone's tokenizer, image processor or feature
    extractor. All of them ``save_pretrained`` next to the model and reload with the ``Auto*`` classes.
    """
    model = None
    if isinstance(config_or_model, (str, os.PathLike)):
        folder = Path(config_or_model)
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        if source is None and folder.is_dir() and _holds_processor(folder):
            source = folder
    elif hasattr(config_or_model, "config") and hasattr(config_or_model, "backbone"):
        model, config = config_or_model, config_or_model.config
    else:
        config = config_or_model
    if getattr(config, "backbone_library", None) not in ("timm", "transformers") or not config.backbone:
        raise ValueError(f"build_processor needs a MultiTaskConfig / MultiTaskModel / model folder, got {config!r}")
    if config.backbone_library == "timm":
        if source is not None:
            return TimmImageProcessor.from_pretrained(source)
        timm_source = model.backbone.model if model is not None else config.backbone
        return TimmImageProcessor.from_timm(
            timm_source,
            image_size=image_size,
            in_chans=config.backbone_kwargs.get("in_chans"),
            train_transform_kwargs=train_transform_kwargs,
        )
    source = os.fspath(source if source is not None else config.backbone)
    kind = input_kind(_backbone_main_input(config))
    loader = {"text": AutoTokenizer, "image": AutoImageProcessor, "audio": AutoFeatureExtractor}[kind]
    try:
        # never a repo's own processor code (auto_map), and never transformers' stdin prompt asking to run it
        return cap_text_length(loader.from_pretrained(source, trust_remote_code=False), config)
    except (OSError, ValueError) as err:
        if "trust_remote_code" in str(err):  # transformers' advice to run the repo's code is not hf_mtl's
            from .safety import UnsafeConfigError

            raise UnsafeConfigError(
                f"the {kind} processor files in {source!r} need code shipped with them (`auto_map`, no transformers "
                "class of their own); hf_mtl never runs a repo's code. Give the model a processor yourself "
                "(`model.set_processor(...)`) or use a repo whose processor is a transformers class"
            ) from err
        raise ValueError(
            f"cannot load the {kind} processor ({loader.__name__}) of backbone {config.backbone!r} from {source!r}: "
            f"{err}. Pass `source=` a folder holding the backbone's processor files."
        ) from err


def cap_text_length(processor: Any, config: Any) -> Any:
    """Truncate texts at the backbone's position limit when the tokenizer's own ``model_max_length`` is larger.

    A tokenizer saved without ``model_max_length`` truncates at 10^30 tokens, and a long text then crashes deep in
    the backbone (an index error in the position embeddings, at some later step, naming no row). Said once per
    tokenizer in the log. Used by training, `predict` and the pipeline.
    """
    limit = backbone_max_positions(config)
    if limit is None or not isinstance(processor, PreTrainedTokenizerBase):
        return processor
    if processor.model_max_length > limit:
        logger.warning(
            "the tokenizer's model_max_length (%s) exceeds the backbone's %d position embeddings: texts are truncated "
            "to %d tokens", "unset" if processor.model_max_length > 1e12 else processor.model_max_length, limit, limit
        )
        processor.model_max_length = limit
    return processor


def _holds_processor(folder: Path) -> bool:
    names = ("preprocessor_config.json", "tokenizer_config.json", "tokenizer.json", "processor_config.json")
    return any((folder / name).is_file() for name in names)


def preprocess(
    processor: Any, inputs: Sequence[Any], train: bool = False, *, first_index: int = 0, item: str = "input",
    **kwargs: Any,
) -> dict[str, torch.Tensor]:
    """Raw inputs (PIL images, arrays, image paths, texts, audio arrays) → a dict of batched model-input tensors.

    ``train=True`` applies the training augmentation (timm transforms; a random crop and flip for transformers image
    processors, which have none of their own). Texts are padded and truncated to the tokenizer's maximum length.
    An input that cannot be read (a wrong type, a corrupt image, a tokenizer's own exception) is an error naming it
    as ``f"{item} {first_index + i}"`` (the caller's coordinates: ``predict`` passes the batch's offset).
    """
    if isinstance(inputs, (str, Image.Image)):
        inputs = [inputs]
    inputs = list(inputs)

    def each(read: Callable[[Any], Any]) -> list[Any]:  # read every input, naming the one that fails
        out = []
        for i, value in enumerate(inputs):
            try:
                out.append(read(value))
            except (ValueError, TypeError, OSError) as err:
                raise type(err)(f"{item} {first_index + i}: {err}") from err
        return out

    if isinstance(processor, TimmImageProcessor):
        images = each(lambda image: load_image(image, processor.image_mode))
        return dict(processor(images, train=train))
    if isinstance(processor, PreTrainedTokenizerBase):
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise ValueError(f"{item} {first_index + i}: a tokenizer needs texts, got {type(text).__name__} "
                                 f"{text!r:.80}")
        kwargs = {"padding": True, "truncation": True, **kwargs}
        return dict(tokenize(processor, inputs, item, first_index, return_tensors="pt", **kwargs))
    if isinstance(processor, BaseImageProcessor):
        images = each(load_image)
        if train:
            images = [_train_augment(image) for image in images]
        return dict(processor(images=images, return_tensors="pt", **kwargs))
    if isinstance(processor, FeatureExtractionMixin):
        sampling_rate = getattr(processor, "sampling_rate", None)
        arrays = each(lambda x: load_audio(x, sampling_rate))
        kwargs = {"padding": True, "return_attention_mask": True, **kwargs}
        return dict(processor(arrays, sampling_rate=sampling_rate, return_tensors="pt", **kwargs))
    raise TypeError(f"unsupported processor {type(processor).__name__}; build one with hf_mtl.build_processor")


def tokenize(tokenizer: Any, texts: list[Any], item: str = "input", first_index: int = 0, **kwargs: Any) -> Any:
    """``tokenizer(texts, **kwargs)``; when the tokenizer raises, the error names the text that fails (found by
    tokenizing them one by one) instead of the tokenizer's own trace, which names none."""
    try:
        return tokenizer(texts, **kwargs)
    except Exception as err:  # tokenizers raise TypeError, ValueError, their own Exception subclasses, Rust panics
        for i, text in enumerate(texts):
            try:
                tokenizer([text], **kwargs)
            except Exception as one:
                raise ValueError(
                    f"{item} {first_index + i}: the tokenizer ({type(tokenizer).__name__}) fails on {text!r:.80}: "
                    f"{type(one).__name__}: {one}"
                ) from one
        raise ValueError(f"{item}s {first_index}..{first_index + len(texts) - 1}: the tokenizer "
                         f"({type(tokenizer).__name__}) fails on the batch: {type(err).__name__}: {err}") from err


def _train_augment(image: Image.Image) -> Image.Image:
    """Light augmentation for transformers image processors: random resized crop (50-100% area) and flip."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomResizedCrop(image.size[::-1], scale=(0.5, 1.0)), v2.RandomHorizontalFlip()])(image)


def dataset_transform(
    processor: Any, input_column: str, train: bool = False, allow_empty_text: bool = False, **kwargs: Any
) -> Callable[[dict[str, list]], dict[str, Any]]:
    """A callable for ``Dataset.with_transform`` / ``set_transform``: replaces ``input_column`` by model inputs.

    Lazy: images are decoded and (for training) augmented afresh each time a row is read, so every epoch sees new
    augmentations. Other columns (labels) pass through; text is tokenized without padding, the collator pads.
    An empty or whitespace-only text is an error (it would train on nothing but special tokens) unless
    ``allow_empty_text``. [`MultiTaskTrainer`] checks every raw input of such a dataset before training
    (``hf_mtl.data.validate_inputs``).
    """

    def transform(batch: dict[str, list]) -> dict[str, Any]:
        if input_column not in batch:
            raise KeyError(f"dataset has no input column {input_column!r}; its columns are {sorted(batch)}")
        out = {k: v for k, v in batch.items() if k != input_column}
        values = batch[input_column]
        where = f"column {input_column!r}, batch row"  # the data-set row is unknown to a transform
        if isinstance(processor, PreTrainedTokenizerBase):
            for i, value in enumerate(values):
                problem = text_problem(value, allow_empty_text)
                if problem is not None:
                    raise ValueError(f"{where} {i}: {problem} (hf_mtl.data.validate_inputs names the data-set row)")
            encoded = tokenize(processor, list(values), where, truncation=True, **kwargs)
        else:
            encoded = preprocess(processor, values, train=train, item=where, **kwargs)
            encoded = {name: list(tensor) for name, tensor in encoded.items()}
        out.update(encoded)
        return out

    # What hf_mtl.data.validate_inputs (and so MultiTaskTrainer) reads to check every raw input before training.
    transform.input_column = input_column  # type: ignore[attr-defined]
    transform.processor = processor  # type: ignore[attr-defined]  # MultiTaskTrainer caps its text length
    transform.input_kind = _processor_input_kind(processor)  # type: ignore[attr-defined]
    transform.allow_empty_text = allow_empty_text  # type: ignore[attr-defined]
    return transform


def _processor_input_kind(processor: Any) -> str | None:
    """The kind of raw input ``validate_inputs`` checks up front for this processor (None for audio: decoded arrays,
    nothing cheap to check)."""
    names = getattr(processor, "model_input_names", None)
    kind = input_kind(names[0]) if names else None
    return kind if kind in ("image", "text") else None


def register_processors() -> None:
    """Let ``AutoImageProcessor.from_pretrained`` find [`TimmImageProcessor`] by the name it saves."""
    AutoImageProcessor.register(MultiTaskConfig, image_processor_classes={"pil": TimmImageProcessor, "torchvision": TimmImageProcessor}, exist_ok=True)
