"""``hf-mtl train`` with one rank slowed down at every file-system step on the heads-only stage's folder, so the
other rank's steps fall inside its check-then-act windows: the interleaving that made a clean clone's ``make test``
fail once (``FileNotFoundError`` when both ranks checked, then removed, ``<output_dir>/heads_only``) happens at every
run instead of now and then. Nothing is replaced: each call runs for real, then the slow rank waits; every rank
records what it did to the folder in ``$HF_MTL_TEST_FS_LOG/rank<N>.jsonl``.

Used by tests/test_stage_race.py through ``accelerate launch -m tests.stage_race_driver <recipe> [overrides]``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time

SLOW_RANK = int(os.environ["HF_MTL_TEST_SLOW_RANK"])
DELAY_S = float(os.environ.get("HF_MTL_TEST_DELAY_S", "3"))
LOG_DIR = os.environ["HF_MTL_TEST_FS_LOG"]
RANK = int(os.environ.get("RANK", "0"))


def _stage_folder() -> str:
    argv = sys.argv[1:]
    output_dir = argv[argv.index("--output_dir") + 1]
    return os.path.join(os.path.abspath(output_dir), "heads_only")


STAGE = _stage_folder()


def _watch(module, name: str) -> None:
    real = getattr(module, name)

    @functools.wraps(real)
    def watched(path, *args, **kwargs):
        touches = isinstance(path, (str, os.PathLike)) and os.path.abspath(os.fspath(path)).startswith(STAGE)
        try:
            return real(path, *args, **kwargs)
        finally:
            if touches:
                with open(os.path.join(LOG_DIR, f"rank{RANK}.jsonl"), "a", encoding="utf-8") as log:
                    log.write(json.dumps({"rank": RANK, "op": name, "path": os.fspath(path), "t": time.time()}) + "\n")
                if RANK == SLOW_RANK:
                    time.sleep(DELAY_S)  # the other rank's steps on the folder happen now, between check and act

    setattr(module, name, watched)


for module, name in ((os.path, "isdir"), (os.path, "exists"), (os, "listdir"), (os, "rmdir"), (os, "makedirs"),
                     (os, "scandir"), (shutil, "rmtree")):
    _watch(module, name)

if __name__ == "__main__":
    from hf_mtl.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
