"""The processor of a loaded model: the one saved beside it (a folder, or a Hub repo's preprocessing files only), else
the backbone's own."""

from __future__ import annotations

import logging
import os
from typing import Any

from .preprocessing import build_processor

logger = logging.getLogger(__name__)

PROCESSOR_SKIP_PATTERNS = ["*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.msgpack", "*.png",
                           "*.py", "*.pyc", "*.so", "*.dll", "*.dylib"]
"""Files a processor never needs: skipped when fetching a repo's preprocessing files (a repo's own code is not even
downloaded: hf_mtl never runs it)."""


def load_processor(model: Any) -> Any:
    """The processor saved beside ``model`` (at the exact revision it was loaded from), else the backbone's own.

    Works offline (``HF_HUB_OFFLINE=1``) once the repo is cached.
    """
    source = str(getattr(model, "name_or_path", "") or "")
    if source and os.path.isdir(source):
        return build_processor(source)
    if source.count("/") == 1:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        revision = getattr(model.config, "_commit_hash", None)
        try:
            folder = snapshot_download(source, revision=revision, ignore_patterns=PROCESSOR_SKIP_PATTERNS)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
            logger.warning("could not fetch the processor files of %s (%s); using the backbone's defaults", source, err)
        else:
            return build_processor(folder)
    return build_processor(model)
