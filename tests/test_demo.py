"""`hf-mtl demo`: the Gradio app in headless Chromium shows every task's prediction (image with PyTorch, text from
the ONNX graph); `--write_space` / `push --space_app` write a Space app."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import hf_mtl
from tests.recipe_helpers import REPO, run_cli
from tests.test_pipeline import sample_images, tiny_tokenizer
from tests.tiny_models import IMAGE_SIZE, bert_model, timm_model

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian chromium + chromium-driver (make setup)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(*args: str):
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, "-m", "hf_mtl.cli", "demo", *args, "--port", str(port)], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"demo exited {process.returncode}: {process.stdout.read()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return process, url
        except OSError:
            time.sleep(1)
    process.kill()
    raise AssertionError("the demo did not start in 180 s")


def _browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _predict_in_page(url: str, fill, screenshot) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        driver.get(url)
        WebDriverWait(driver, 120).until(lambda d: [b for b in d.find_elements(By.TAG_NAME, "button")
                                                    if b.text.strip() == "Predict"])
        fill(driver)
        time.sleep(1)
        next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Predict").click()
        WebDriverWait(driver, 120).until(lambda d: "thresholds:" in d.find_element(By.TAG_NAME, "body").text)
        driver.save_screenshot(str(screenshot))
        return driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()


@pytest.mark.slow  # fresh interpreters (CLI / app server)
def test_image_demo_shows_the_models_predictions(tmp_path):
    from selenium.webdriver.common.by import By

    model = timm_model(seed=1)
    processor = hf_mtl.build_processor(model, image_size=IMAGE_SIZE)
    folder = tmp_path / "tiny-image-model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    image = tmp_path / "input.png"
    sample_images(1)[0].save(image)
    model.set_processor(processor)
    expected = model.predict(str(image), top_k=5)

    process, url = _serve(str(folder))
    try:
        text = _predict_in_page(url, lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(image)),
                                tmp_path / "image_demo.png")
    finally:
        process.terminate()
        process.wait(30)
    print("screenshot:", tmp_path / "image_demo.png")
    assert "tiny-image-model" in text
    kind = expected["kind"]
    assert f"kind (multiclass): {kind['label']} ({kind['score']:.3f})" in text
    assert f"score (regression): {expected['score']['value']:.4g}" in text
    assert "thresholds: a 0.50, b 0.50, c 0.50" in text and "thresholds: yes 0.50" in text
    for item in kind["top_k"]:  # the probability bars of every class
        assert re.search(rf"^{item['label']}\n{round(item['score'] * 100)}%$", text, re.M), item
    assert (tmp_path / "image_demo.png").stat().st_size > 10_000


@pytest.mark.slow  # fresh interpreters (CLI / app server)
def test_text_demo_runs_from_the_onnx_graph(tmp_path):
    from selenium.webdriver.common.by import By

    from hf_mtl.export import export_onnx

    model = bert_model(seed=2, tasks=[{"name": "topic", "type": "multiclass", "labels": ["pets", "colours"]},
                                      {"name": "tags", "type": "multilabel", "labels": ["red", "big"],
                                       "thresholds": [0.3, 0.7]}])
    folder = tmp_path / "tiny-text-model"
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    export_onnx(model, folder / "model.onnx", exporter="torchscript")
    model.set_processor(tiny_tokenizer())
    expected = model.predict("the big red dog")

    process, url = _serve(str(folder), "--onnx")
    try:
        text = _predict_in_page(url, lambda d: d.find_element(By.TAG_NAME, "textarea").send_keys("the big red dog"),
                                tmp_path / "text_demo.png")
    finally:
        process.terminate()
        process.wait(30)
    print("screenshot:", tmp_path / "text_demo.png")
    topic = expected["topic"]
    assert f"topic (multiclass): {topic['label']} ({topic['score']:.3f})" in text
    assert "thresholds: red 0.30, big 0.70" in text


@pytest.mark.slow  # fresh interpreters (CLI / app server)
def test_space_app_is_written_for_the_pushed_model(tmp_path):
    result = run_cli("demo", "someone/model", "--write_space", str(tmp_path / "space"))
    assert result.returncode == 0, result.stderr[-2000:]
    app = (tmp_path / "space" / "app.py").read_text()
    assert 'MultiTaskModel.from_pretrained("someone/model")' in app and "demo.launch()" in app
    compile(app, "app.py", "exec")
    assert (tmp_path / "space" / "requirements.txt").read_text().startswith("hf-mtl[demo]")
    refused = run_cli("demo", str(tmp_path), "--write_space", str(tmp_path / "x"))
    assert refused.returncode == 2 and "--repo_id" in refused.stderr


def test_every_task_type_has_a_widget_and_a_summary():
    """Each registered task type's decoded output (zero logits) maps to label probabilities or a value line."""
    import torch

    from hf_mtl.demo import _confidences, describe
    from hf_mtl.pipeline import decode_logits
    from hf_mtl.tasks import TASK_TYPES, TaskSpec

    specs = [TaskSpec(name=f"t_{kind}", type=kind, **({} if kind == "regression" else {"labels": ["lo", "mid", "hi"]}
                                                         if kind != "binary" else {"labels": ["no", "yes"]}))
             for kind in TASK_TYPES]
    decoded = decode_logits(specs, {s.name: torch.zeros(1, s.output_size) for s in specs}, top_k=5)[0]
    for spec in specs:
        confidences = _confidences(decoded[spec.name])
        line = describe(spec, decoded[spec.name])
        assert line.startswith(f"**{spec.name}** ({spec.type}): ")
        if spec.output_size > 1 and spec.task_type.uses_thresholds is False and confidences is not None:
            assert set(confidences) == set(spec.label_names), spec.type  # every class's probability is shown
        if confidences is None:
            assert spec.task_type.metric_names and "value" in str(decoded[spec.name]), spec.type
