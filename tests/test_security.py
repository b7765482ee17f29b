"""Nothing unsafe is loaded, no code is run from a config or a repo, and the Hub token is written nowhere.

Every "is never executed" claim is checked with a live payload: a pickle whose unpickling creates a marker folder
(:func:`evil_pickle`, shown to work by `test_the_pickle_payload_is_live`), or a module whose import does. The tests
then assert the clear error AND that the marker does not exist.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

import hf_mtl
from hf_mtl import (
    MultiTaskConfig,
    MultiTaskModel,
    MultiTaskTrainer,
    MultiTaskTrainingArguments,
    UnsafeConfigError,
    UnsafeWeightsError,
)
from hf_mtl.heads import ACTIVATIONS
from tests.hub_fixtures import LocalHubHandle
from tests.multiprocess import TIMEOUT
from tests.recipe_helpers import run_cli, tiny_recipe, write_image_dataset, write_recipe
from tests.tiny_models import MIXED_TASKS, TIMM_BACKBONE, bert_model, synthetic_rows, timm_model

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "hf_mtl"


class _MakeMarker:
    """Unpickling this calls ``os.mkdir(marker)``: a stand-in for any code a malicious pickle would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def evil_pickle(path: Path, marker: Path, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """A PyTorch file (a real state dict plus the payload) whose unpickling creates ``marker``."""
    torch.save({**(tensors or {}), "payload": _MakeMarker(marker)}, path)
    return path


def evil_module(folder: Path, name: str, marker: Path) -> Path:
    """A Python module whose import creates ``marker`` (what a config would need hf_mtl to import)."""
    path = folder / f"{name}.py"
    path.write_text(f"import os\nos.mkdir({str(marker)!r})\nclass Evil:\n    pass\ndef run(*a, **k):\n    pass\n")
    return path


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "CODE_RAN"
    yield path
    assert not path.exists(), "a payload ran"


# ------------------------------------------------------------------------------------------------ safetensors only
def test_the_pickle_payload_is_live(tmp_path: Path) -> None:
    """The payload really runs when unpickled without weights_only: the other tests' 'marker absent' means something."""
    probe = tmp_path / "probe"
    torch.load(evil_pickle(tmp_path / "evil.pth", probe), weights_only=False)
    assert probe.is_dir()


def _pickle_only_folder(folder: Path, marker: Path) -> Path:
    model = timm_model()
    model.save_pretrained(folder)
    state = model.state_dict()
    (folder / "model.safetensors").unlink()
    evil_pickle(folder / "pytorch_model.bin", marker, state)
    return folder


def test_folder_with_only_pickled_weights_is_refused_everywhere(tmp_path: Path, marker: Path) -> None:
    folder = _pickle_only_folder(tmp_path / "model", marker)
    loaders = {
        "MultiTaskModel": lambda: MultiTaskModel.from_pretrained(folder),
        "AutoModel": lambda: AutoModel.from_pretrained(folder),
        "use_safetensors=False": lambda: MultiTaskModel.from_pretrained(folder, use_safetensors=False),
        "weights_only=False": lambda: MultiTaskModel.from_pretrained(folder, weights_only=False),
        "pipeline": lambda: __import__("transformers").pipeline(hf_mtl.PIPELINE_TASK, model=str(folder)),
    }
    for name, load in loaders.items():
        # the pipeline reports each model class it tried, our error's text included
        with pytest.raises(ValueError if name == "pipeline" else UnsafeWeightsError) as info:
            load()
        message = str(info.value)
        assert "safetensors only" in message, (name, message)
        if name in ("MultiTaskModel", "AutoModel", "pipeline"):
            assert str(folder) in message and "pytorch_model.bin" in message and "save_pretrained" in message, message
        assert not marker.exists(), name
    # a single weights file given as the path: only a .safetensors file is read
    with pytest.raises(UnsafeWeightsError, match="not a safetensors file"):
        MultiTaskModel.from_pretrained(folder / "pytorch_model.bin")


def test_hub_repo_with_only_pickled_weights_is_refused_without_conversion(
    local_hub: LocalHubHandle, tmp_path: Path, marker: Path
) -> None:
    folder = _pickle_only_folder(tmp_path / "model", marker)
    repo_id = local_hub.repo_id("pickle-only")
    api = local_hub.api()
    api.create_repo(repo_id)
    api.upload_folder(repo_id=repo_id, folder_path=folder)
    with pytest.raises(UnsafeWeightsError) as info:
        MultiTaskModel.from_pretrained(repo_id)
    message = str(info.value)
    assert repo_id in message and "'main'" in message and "safetensors only" in message
    # transformers' automatic conversion (which posts the token to a conversion Space and opens a PR) never started:
    # it begins by listing the repo's discussions and commits.
    paths = [record.path for record in local_hub.server.requests]
    assert not [p for p in paths if "discussions" in p or "/commits/" in p], paths
    assert not [p for p in paths if p.endswith("pytorch_model.bin")], "the pickle was downloaded"


def test_timm_weights_file_with_a_pickle_payload_is_refused(tmp_path: Path, marker: Path) -> None:
    weights = evil_pickle(tmp_path / "backbone.pth", marker, timm_model().backbone.model.state_dict())
    with pytest.raises(UnsafeWeightsError) as info:
        MultiTaskModel.from_backbone(TIMM_BACKBONE, MIXED_TASKS, weights=str(weights))
    assert str(weights) in str(info.value) and "posix.mkdir" in str(info.value)
    assert "weights_only` set to `False`" not in str(info.value)  # torch's advice to disable the guard is dropped


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):  # owner.name(...): owner is a module name, or "" for an expression
                yield node, getattr(func.value, "id", ""), func.attr
            else:  # a bare name(...)
                yield node, None, getattr(func, "id", "")


def test_package_never_unpickles_imports_or_evaluates_code() -> None:
    """Every ``torch.load`` passes ``weights_only=True``, every ``Auto*.from_pretrained`` ``trust_remote_code=False``;
    no pickle/marshal loads, eval, exec, dynamic imports."""
    problems = []
    torch_loads = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, owner, name in _calls(tree):
            where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
            if owner == "torch" and name == "load":
                torch_loads += 1
                safe = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)
                if not safe:
                    problems.append(f"{where}: torch.load without weights_only=True")
            if owner in ("pickle", "marshal", "dill", "cloudpickle", "joblib") and name in ("load", "loads"):
                problems.append(f"{where}: {owner}.{name}")
            if owner is None and name in ("eval", "exec", "compile", "__import__"):
                problems.append(f"{where}: {name}()")
            if name in ("import_module", "get_class_from_dynamic_module", "get_class_in_module"):
                problems.append(f"{where}: dynamic import {name}")
            for keyword in node.keywords:
                if keyword.arg == "trust_remote_code" and getattr(keyword.value, "value", None) is True:
                    problems.append(f"{where}: trust_remote_code=True")
                if keyword.arg == "weights_only" and getattr(keyword.value, "value", None) is False:
                    problems.append(f"{where}: weights_only=False")
                if keyword.arg == "allow_pickle" and getattr(keyword.value, "value", None) is True:
                    problems.append(f"{where}: allow_pickle=True")
            auto = owner is not None and (owner.startswith("Auto") or owner == "loader")
            if name == "from_pretrained" and auto:
                explicit = [k for k in node.keywords if k.arg == "trust_remote_code"]
                if not explicit or getattr(explicit[0].value, "value", None) is not False:
                    # unset, transformers asks on stdin whether to run a repo's code: a piped "y" would run it
                    problems.append(f"{where}: {owner}.from_pretrained without trust_remote_code=False")
    assert problems == []
    assert torch_loads >= 1  # the scan sees hf_mtl.safety.read_weights_file


def test_trainer_resume_refuses_a_pickle_payload_in_a_checkpoint(tmp_path: Path, marker: Path) -> None:
    """Checkpoints keep the stock Trainer format (optimizer.pt, scheduler.pt, rng_state.pth via torch.save);
    transformers 5 reads each of them with ``torch.load(weights_only=True)``, so a tampered one is refused."""
    rows = synthetic_rows(8, seed=0)
    args = dict(per_device_train_batch_size=4, save_strategy="steps", save_steps=1, report_to=[], use_cpu=True,
                disable_tqdm=True, learning_rate=1e-3)
    out = tmp_path / "run"
    MultiTaskTrainer(model=timm_model(), args=MultiTaskTrainingArguments(output_dir=str(out), max_steps=1, **args),
                     train_dataset=rows).train()
    checkpoint = out / "checkpoint-1"
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth"} <= {p.name for p in checkpoint.iterdir()}
    assert not (checkpoint / "training_args.bin").exists()  # MultiTaskTrainer._save keeps JSON instead
    for name in ("rng_state.pth", "optimizer.pt"):
        original = (checkpoint / name).read_bytes()
        evil_pickle(checkpoint / name, marker, {"state": torch.zeros(1)})
        trainer = MultiTaskTrainer(model=timm_model(), train_dataset=rows,
                                   args=MultiTaskTrainingArguments(output_dir=str(out), max_steps=2, **args))
        with pytest.raises(Exception, match="Weights only load failed|posix.mkdir") as info:
            trainer.train(resume_from_checkpoint=str(checkpoint))
        assert not marker.exists(), (name, info.value)
        (checkpoint / name).write_bytes(original)


# ------------------------------------------------------------------------------------------- no code from configs
@pytest.fixture
def evil_on_path(tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of an importable module whose import creates ``marker``."""
    evil_module(tmp_path, "evil_mod", marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "evil_mod"
    sys.modules.pop("evil_mod", None)


BAD_BACKBONES = ["evil_mod:run", "evil_mod.Evil", "os:system", "builtins.eval", "https://example.com/evil.py"]


@pytest.mark.parametrize("backbone", BAD_BACKBONES)
def test_backbone_is_never_an_import_string(backbone: str, evil_on_path: str, tmp_path: Path, marker: Path) -> None:
    for library in ("timm", "transformers"):
        with pytest.raises(UnsafeConfigError, match="never imports code named in a config") as info:
            MultiTaskConfig(backbone=backbone, backbone_library=library, tasks=MIXED_TASKS)
        assert repr(backbone) in str(info.value)
    with pytest.raises(UnsafeConfigError):  # also from a config.json in a folder
        MultiTaskModel.from_pretrained(_folder_with_config(tmp_path / "m", backbone=backbone))
    with pytest.raises(UnsafeConfigError):  # and as the backbone of a new model
        MultiTaskModel.from_backbone(backbone, MIXED_TASKS, weights=False)


def _folder_with_config(folder: Path, **changes) -> Path:
    """A saved tiny model whose config.json is then edited (what a malicious repo would ship)."""
    model = bert_model() if changes.pop("bert", False) else timm_model()
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if key == "backbone_config_update":
            config["backbone_config"].update(value)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("model_type", ["evil_mod", "evil_mod.Evil", "hf_mtl", "not_a_model_type"])
def test_backbone_model_type_must_be_registered_in_transformers(
    model_type: str, evil_on_path: str, tmp_path: Path
) -> None:
    folder = _folder_with_config(tmp_path / "m", bert=True, backbone_config_update={"model_type": model_type})
    with pytest.raises(UnsafeConfigError, match="CONFIG_MAPPING") as info:
        MultiTaskModel.from_pretrained(folder)
    assert repr(model_type) in str(info.value)


BAD_BACKBONE_KWARGS = [
    ("checkpoint_path", "{weights}"),
    ("pretrained", True),
    ("pretrained_cfg", {"file": "{weights}"}),
    ("pretrained_cfg_overlay", {"file": "{weights}"}),
    ("cache_dir", "/tmp"),
    ("model_file", "{weights}"),
    ("weights_path", "{weights}"),
    ("drop_rate", "https://example.com/x.pth"),
    ("act_layer", ["ok", "hf-hub:org/evil"]),
]


@pytest.mark.parametrize(("key", "value"), BAD_BACKBONE_KWARGS, ids=[k for k, _ in BAD_BACKBONE_KWARGS])
def test_backbone_kwargs_cannot_make_timm_read_files(key: str, value, tmp_path: Path, marker: Path) -> None:
    weights = evil_pickle(tmp_path / "evil.pth", marker, timm_model().backbone.model.state_dict())
    value = json.loads(json.dumps(value).replace("{weights}", str(weights)))
    with pytest.raises(UnsafeConfigError, match=f"backbone_kwargs\\[{key!r}\\]"):
        MultiTaskConfig(backbone=TIMM_BACKBONE, tasks=MIXED_TASKS, backbone_kwargs={key: value})
    with pytest.raises(UnsafeConfigError, match=f"backbone_kwargs\\[{key!r}\\]"):
        MultiTaskModel.from_pretrained(_folder_with_config(tmp_path / "m", backbone_kwargs={key: value}))


@pytest.mark.parametrize("where", ["config.json", "backbone_config", "nested sub-config", "from_pretrained kwarg"])
def test_attention_implementation_cannot_name_a_hub_kernel(where: str, tmp_path: Path) -> None:
    """transformers 5 downloads and runs a compiled kernel when an attention implementation names a Hub repo."""
    kernel = "evil-org/evil-kernel"
    changes: dict = {"bert": True}
    if where == "config.json":
        changes["attn_implementation"] = kernel
    elif where == "backbone_config":
        changes["backbone_config_update"] = {"attn_implementation": kernel}
    elif where == "nested sub-config":
        changes["backbone_config_update"] = {"text_config": {"_attn_implementation": kernel}}
    folder = _folder_with_config(tmp_path / "m", **changes)
    kwargs = {"attn_implementation": kernel} if where == "from_pretrained kwarg" else {}
    with pytest.raises(UnsafeConfigError, match="Hub kernel repo") as info:
        MultiTaskModel.from_pretrained(folder, **kwargs)
    assert repr(kernel) in str(info.value)


@pytest.mark.parametrize(
    ("backbone_config", "message"),
    [
        ({"model_args": {"checkpoint_path": "{weights}"}}, "backbone_config.model_args['checkpoint_path']"),
        ({"model_args": {"pretrained_cfg_overlay": {"file": "{weights}"}}}, "model_args['pretrained_cfg_overlay']"),
        ({"architecture": "hf-hub:evil-org/evil"}, "names a location"),
    ],
)
def test_transformers_timm_wrapper_backbone_cannot_make_timm_read_files(
    backbone_config: dict, message: str, tmp_path: Path, marker: Path
) -> None:
    """transformers' TimmWrapperModel calls ``timm.create_model(architecture, **model_args)``: same rules."""
    weights = str(evil_pickle(tmp_path / "evil.pth", marker))
    backbone_config = json.loads(json.dumps(backbone_config).replace("{weights}", weights))
    backbone_config = {"model_type": "timm_wrapper", "architecture": TIMM_BACKBONE, **backbone_config}
    with pytest.raises(UnsafeConfigError) as info:
        MultiTaskConfig(backbone="org/timm-model", backbone_library="transformers", backbone_config=backbone_config,
                        tasks=MIXED_TASKS)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "backbone", ["test_efficientnet", "timm/test_efficientnet", "resnet18.a1_in1k", "org/model.v2", "bert-base-uncased"]
)
def test_ordinary_backbone_names_pass(backbone: str) -> None:
    from hf_mtl.safety import check_backbone_name

    check_backbone_name(backbone)


def test_ordinary_backbone_kwargs_still_work() -> None:
    # drop_path_rate (stochastic depth, common when fine-tuning) has the word "path" but names no location
    model = timm_model(backbone_kwargs={"drop_rate": 0.1, "drop_path_rate": 0.1, "in_chans": 1})
    assert model.backbone.model.conv_stem.in_channels == 1
    assert model.backbone.model.drop_rate == 0.1


@pytest.mark.parametrize("activation", ["evil_mod.Evil", "evil_mod:run", "torch.nn.ReLU", "eval"])
def test_head_activation_comes_from_the_registry(activation: str, evil_on_path: str, tmp_path: Path) -> None:
    tasks = [{**MIXED_TASKS[0], "hidden_sizes": [8], "activation": activation}]
    with pytest.raises(ValueError, match="task 'tags'.*unknown head activation") as info:
        MultiTaskConfig(backbone=TIMM_BACKBONE, tasks=tasks)
    assert all(name in str(info.value) for name in ACTIVATIONS)
    with pytest.raises(ValueError, match="unknown head activation"):
        MultiTaskModel.from_pretrained(_folder_with_config(tmp_path / "m", tasks=tasks))


def test_backbone_that_needs_its_own_code_is_refused(tmp_path: Path, marker: Path) -> None:
    """A transformers backbone folder whose config only an ``auto_map`` module can read: a clear error, no prompt,
    no code (hf_mtl's AutoConfig calls pass trust_remote_code=False)."""
    folder = tmp_path / "backbone"
    folder.mkdir()
    evil_module(folder, "evil_cfg", marker)
    auto_map = {"AutoConfig": "evil_cfg.Evil", "AutoModel": "evil_cfg.Evil"}
    (folder / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto_map}))
    with pytest.raises(ValueError, match="custom code") as info:
        MultiTaskModel.from_backbone(str(folder), MIXED_TASKS)
    assert str(folder) in str(info.value)


REMOTE_CODE = {
    "auto_map": {"AutoConfig": "evil_config.EvilConfig", "AutoModel": "evil_model.EvilModel"},
    "custom_pipelines": {
        hf_mtl.PIPELINE_TASK: {"impl": "evil_pipeline.EvilPipeline", "pt": ["AutoModel"], "type": "multimodal"}
    },
    "trust_remote_code": True,
}


def test_remote_code_keys_are_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    backbone_config = {**bert_model().config.backbone_config, "auto_map": {"AutoModel": "evil_model.EvilModel"}}
    with caplog.at_level("WARNING", logger="hf_mtl.safety"):
        config = MultiTaskConfig(backbone="tiny-bert", backbone_library="transformers", tasks=MIXED_TASKS,
                                 backbone_config=backbone_config, **REMOTE_CODE)
    for key in REMOTE_CODE:
        assert not hasattr(config, key) and key not in config.to_dict()
        assert any(f"`{key}`" in record.getMessage() for record in caplog.records)
    assert "auto_map" not in config.backbone_config
    assert "ignored `auto_map`" in caplog.text and "backbone_config" in caplog.text


def test_repo_with_remote_code_loads_as_plain_hf_mtl_in_a_fresh_process(
    local_hub: LocalHubHandle, tmp_path: Path
) -> None:
    """A repo shaped like a remote-code repo (auto_map, custom_pipelines, modeling files that create a marker on
    import), as a local folder and pulled from the Hub, loads through AutoConfig / AutoModel / pipeline /
    MultiTaskModel with only ``import hf_mtl`` and trust_remote_code unset (and even set, for MultiTaskModel): no repo
    code runs, no prompt, no error."""
    marker = tmp_path / "CODE_RAN"
    folder = _folder_with_config(tmp_path / "repo", **REMOTE_CODE)
    for name in ("evil_config", "evil_model", "evil_pipeline"):
        evil_module(folder, name, marker)
    repo_id = local_hub.repo_id("remote-code")
    local_hub.api().create_repo(repo_id)
    local_hub.api().upload_folder(repo_id=repo_id, folder_path=folder)
    script = textwrap.dedent(f"""
        import hf_mtl
        from transformers import AutoConfig, AutoModel, pipeline
        from PIL import Image
        for source in ({str(folder)!r}, {repo_id!r}):
            config = AutoConfig.from_pretrained(source)
            assert type(config) is hf_mtl.MultiTaskConfig and not hasattr(config, "auto_map"), type(config)
            assert type(AutoModel.from_pretrained(source)) is hf_mtl.MultiTaskModel
            model = hf_mtl.MultiTaskModel.from_pretrained(source, trust_remote_code=True)
            classifier = pipeline({hf_mtl.PIPELINE_TASK!r}, model=source)
            assert type(classifier) is hf_mtl.MultiTaskClassificationPipeline, type(classifier)
            print(sorted(classifier(Image.new("RGB", (40, 40)))))
        model.save_pretrained({str(tmp_path / "resaved")!r})
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("HF_TOKEN", None)  # a public repo: loading needs no token
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=TIMEOUT,
                            cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
    assert not marker.exists(), "repo code ran"
    assert [f for f in local_hub.server.requests if "evil_" in f.path] == [], "\n".join(r.path for r in local_hub.server.requests)
    resaved = json.loads((tmp_path / "resaved" / "config.json").read_text())
    assert not set(REMOTE_CODE) & set(resaved)
    assert "ignored `auto_map`" in result.stderr and "ignored `custom_pipelines`" in result.stderr


# ------------------------------------------------------------------------------------------- the token, nowhere
def _leaks(secret: str, roots: list[Path], exclude: set[Path] = frozenset()) -> list[str]:
    """Every file under ``roots`` (read as bytes: binaries, pickles, caches included) that holds ``secret`` as
    plain text or base64."""
    import base64

    # base64 at each of the 3 alignments (the groups that mix in neighbouring bytes are cut off)
    needles = [secret.encode()] + [base64.b64encode(b"\0" * k + secret.encode())[4:-4] for k in range(3)]
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path not in exclude:
                data = path.read_bytes()
                if any(needle in data for needle in needles):
                    found.append(str(path))
    return found


def test_the_leak_scan_finds_a_token_in_any_form(tmp_path: Path) -> None:
    import base64

    secret = "hf_example_secret_value"
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "weights.bin").write_bytes(b"\x80\x02" + secret.encode() + b"\x00")
    (tmp_path / "a" / "card.md").write_bytes(base64.b64encode(f"token={secret}".encode()))
    (tmp_path / "a" / "clean.json").write_text("{}")
    assert sorted(Path(p).name for p in _leaks(secret, [tmp_path])) == ["card.md", "weights.bin"]


def _token_file(local_hub: LocalHubHandle) -> set[Path]:
    """The user's own token file (`hf auth login`): the one place a token may be. The tests never log in."""
    return {local_hub.hf_home / "token", local_hub.hf_home / "stored_tokens"}


@pytest.mark.parametrize("via", ["hub_token", "HF_TOKEN"])
def test_full_recipe_train_and_push_writes_and_logs_no_token(
    via: str, local_hub: LocalHubHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hf-mtl train <recipe> push_to_hub=true` as a user runs it (token as `hub_token=` or in HF_TOKEN), with info
    logging and checkpoints pushed on every save (with HF_TOKEN, then `hf-mtl push` of the saved folder too): the
    token is in no file the runs wrote (output dir, checkpoints, cache, the server's stored repos), no output line, no
    request record, nor in the pushed card, config and training arguments."""
    token = local_hub.token
    data = write_image_dataset(tmp_path / "data", 16)
    out = tmp_path / "run"
    repo_id = local_hub.repo_id(f"recipe-{via.lower()}")
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_recipe(
        data, out, max_steps=2, save_strategy="steps", save_steps=1, eval_strategy="steps", eval_steps=2,
        push_to_hub=True, hub_model_id=repo_id, log_level="info", logging_steps=1,
    ))
    args = ["train", str(recipe)]
    if via == "hub_token":
        monkeypatch.delenv("HF_TOKEN")
        args.append(f"hub_token={token}")
    env = {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_VERBOSITY": "info"}
    trained = run_cli(*args, env=env)
    assert trained.returncode == 0, trained.stderr[-4000:]
    outputs = [trained.stdout, trained.stderr]
    pushed = set(local_hub.api().list_repo_files(repo_id))
    assert {"config.json", "model.safetensors", "README.md", "training_args.json"} <= pushed, pushed
    # the pushes made while training (MultiTaskTrainer._push_from_checkpoint) upload no pickle either
    assert not [name for name in pushed if name.endswith((".bin", ".pt", ".pth", ".pkl"))], pushed
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()

    if via == "HF_TOKEN":  # `hf-mtl push` of the saved folder takes the token from the environment (or a login)
        repushed = run_cli("push", str(out), local_hub.repo_id("pushed"), env=env)
        assert repushed.returncode == 0, repushed.stderr[-4000:]
        assert "model.safetensors" in local_hub.api().list_repo_files(local_hub.repo_id("pushed"))
        outputs += [repushed.stdout, repushed.stderr]

    assert [text for text in outputs if token in text] == []
    assert "INFO" in trained.stderr  # info logging was on
    assert _leaks(token, [tmp_path], exclude=_token_file(local_hub)) == []
    assert all(token not in repr(record) for record in local_hub.server.requests)
    from huggingface_hub import hf_hub_download

    for name in ("README.md", "config.json", "training_args.json"):
        assert token not in Path(hf_hub_download(repo_id, name, cache_dir=tmp_path / "check")).read_text()
    # the final push carries the card written after the final evaluation (not the one of the last checkpoint)
    pushed_card = Path(hf_hub_download(repo_id, "README.md", cache_dir=tmp_path / "check")).read_text()
    assert pushed_card == (out / "README.md").read_text() and "model-index" in pushed_card


def test_failed_pushes_name_no_token(local_hub: LocalHubHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A push refused with 403 (a read-only token) or failing with a 500 mid-commit: neither the exception text nor
    its traceback nor any file (the files a failed push keeps included) holds the token; `hf-mtl train` with the
    read-only token fails before training (no work lost) and prints no token."""
    import tempfile
    import traceback

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # files a failed push keeps are scanned too
    read_token = local_hub.read_token
    model = timm_model()
    repo_id = local_hub.repo_id("read-only")
    with pytest.raises(Exception) as info:  # noqa: PT011 - whatever huggingface_hub raises, its text is checked
        model.push_to_hub(repo_id, token=read_token)
    text = "".join(traceback.format_exception(info.value))
    assert "403" in text and read_token not in text
    # a server error in the middle of the commit, with the write token
    local_hub.server.fail_next("/commit/", status=500)
    with pytest.raises(Exception) as info:  # noqa: PT011
        model.push_to_hub(local_hub.repo_id("server-error"), token=local_hub.token)
    text = "".join(traceback.format_exception(info.value))
    assert "500" in text and local_hub.token not in text

    monkeypatch.delenv("HF_TOKEN")
    env = {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_VERBOSITY": "info"}
    data = write_image_dataset(tmp_path / "data", 8)
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_recipe(data, out, push_to_hub=True, hub_model_id=repo_id))
    trained = run_cli("train", str(recipe), f"hub_token={read_token}", env=env)
    assert trained.returncode != 0 and read_token not in trained.stdout + trained.stderr
    assert "403" in trained.stderr or "permission" in trained.stderr.lower(), trained.stderr[-3000:]
    assert not list(out.glob("checkpoint-*"))
    for secret in (read_token, local_hub.token):
        assert _leaks(secret, [tmp_path], exclude=_token_file(local_hub)) == []


def test_processor_files_asking_for_remote_code_run_nothing_even_when_stdin_says_yes(tmp_path: Path) -> None:
    """A tokenizer_config.json with ``auto_map``: with a known ``tokenizer_class`` the model loads and predicts with
    transformers' own tokenizer; with only repo code for it, loading fails clearly. transformers would ask on stdin
    whether to run the repo's code when ``trust_remote_code`` is unset; hf_mtl always passes False, so the ``y`` piped
    in here is never read and no code runs."""
    from tests.test_pipeline import tiny_tokenizer

    marker = tmp_path / "CODE_RAN"
    folders = {}
    for case, tokenizer_class in (("known", None), ("remote_only", "EvilTokenizer")):
        folder = folders[case] = tmp_path / case
        bert_model().save_pretrained(folder)
        tiny_tokenizer().save_pretrained(folder)
        evil_module(folder, "evil_tok", marker)
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config["auto_map"] = {"AutoTokenizer": ["evil_tok.Evil", None]}
        config["tokenizer_class"] = tokenizer_class or config["tokenizer_class"]
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    script = textwrap.dedent(f"""
        import hf_mtl
        model = hf_mtl.MultiTaskModel.from_pretrained({str(folders["known"])!r})
        print(sorted(model.predict(["hello world"])[0]))
        try:
            hf_mtl.MultiTaskModel.from_pretrained({str(folders["remote_only"])!r}).predict(["hello world"])
        except ValueError as err:
            print("REFUSED", err)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=TIMEOUT,
                            cwd=tmp_path, input="y\ny\ny\n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "['flag', 'kind', 'score', 'tags']" in result.stdout
    refused = result.stdout.split("REFUSED", 1)[1]
    assert "never runs a repo's code" in refused and str(folders["remote_only"]) in refused
    assert "trust_remote_code=True" not in refused
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr  # no prompt was shown
    assert not marker.exists(), "repo code ran"


FAKE_TOKEN = "hf_" + "Zq7" * 11 + "x"  # shaped like a real Hub token (hf_ + 34 letters/digits), valid nowhere


@pytest.mark.parametrize(
    ("overrides", "recipe_token", "names"),
    [
        (["--push_to_hub", FAKE_TOKEN], None, "'push_to_hub' must be bool"),  # `--hub_token` forgotten
        ([FAKE_TOKEN], None, "cannot read command-line override"),
        (["--push_to_hub", "ENV_TOKEN"], None, "'push_to_hub' must be bool"),  # the HF_TOKEN value, any shape
        ([], 123456789012, "'hub_token' must be str or null"),  # a wrong type in the YAML: the value stays hidden
    ],
    ids=["misplaced-token", "bare-token", "env-token", "yaml-hub_token"],
)
def test_recipe_errors_never_quote_a_token(
    overrides: list[str], recipe_token, names: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    from hf_mtl.cli import main

    env_token = "hf_env_token_of_any_shape"
    monkeypatch.setenv("HF_TOKEN", env_token)
    recipe = {"backbone": TIMM_BACKBONE, "tasks": MIXED_TASKS, "output_dir": str(tmp_path / "out")}
    if recipe_token is not None:
        recipe["hub_token"] = recipe_token
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    overrides = [env_token if word == "ENV_TOKEN" else word for word in overrides]
    assert main(["train", str(path), *overrides]) == 2
    out, err = capfd.readouterr()
    assert names in err
    for secret in (FAKE_TOKEN, env_token, str(recipe_token)):
        assert secret not in out + err
