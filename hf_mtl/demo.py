"""A Gradio app for a multi-task model: one image or text in, every task's prediction out (with probabilities and
the thresholds that decide them).

    hf-mtl demo outputs/fashion_grid_efficientnet            # http://127.0.0.1:7860
    hf-mtl demo outputs/fashion_grid_efficientnet --onnx     # from the exported graph

What each task shows comes from its task type's own ``decode`` (through ``MultiTaskModel.predict``): label
probabilities for classification tasks, the value for regression. [`write_space_app`] writes an ``app.py`` (and
``requirements.txt``) that runs this app on a Hugging Face Space for a pushed model.
"""

from __future__ import annotations

import os
from typing import Any

import torch

SPACE_APP = '''"""Gradio Space for the hf_mtl multi-task model {repo_id} (written by hf-mtl)."""

from hf_mtl import MultiTaskModel
from hf_mtl.demo import build_demo

demo = build_demo(MultiTaskModel.from_pretrained("{repo_id}"), title="{repo_id}")

if __name__ == "__main__":
    demo.launch()
'''


def input_kind(predictor: Any) -> str:
    """``"image"`` or ``"text"``: what the predictor's processor reads."""
    from .preprocessing import _processor_input_kind

    kind = _processor_input_kind(predictor.get_processor())
    if kind not in ("image", "text"):
        raise ValueError("the demo takes image or text models; this model's processor reads neither")
    return kind


def _confidences(decoded: dict[str, Any]) -> dict[str, float] | None:
    """A decoded task output as ``{label: probability}`` for a label widget; ``None`` for values (regression)."""
    if "scores" in decoded:
        return dict(decoded["scores"])
    if "probabilities" in decoded:  # every class's probability (ordinal)
        return dict(decoded["probabilities"])
    if "top_k" in decoded:
        return {item["label"]: item["score"] for item in decoded["top_k"]}
    if "label" in decoded:
        return {decoded["label"]: decoded["score"]}
    return None


def describe(spec: Any, decoded: dict[str, Any]) -> str:
    """One Markdown line: the task's decision and, where probabilities meet thresholds, those thresholds."""
    if "labels" in decoded:
        decision = ", ".join(decoded["labels"]) or "(none over its threshold)"
    elif "label" in decoded:
        decision = f"{decoded['label']} ({decoded['score']:.3f})"
    elif "values" in decoded:
        decision = ", ".join(f"{k} = {v:.4g}" for k, v in decoded["values"].items())
    else:
        decision = f"{decoded['value']:.4g}"
    line = f"**{spec.name}** ({spec.type}): {decision}"
    if spec.task_type.uses_thresholds:
        thresholds = spec.task_type._thresholds(spec)
        # one threshold per output: a binary task's single output is its positive (last) label
        pairs = zip(spec.label_names[-len(thresholds):], thresholds)
        line += "  \nthresholds: " + ", ".join(f"{name} {value:.2f}" for name, value in pairs)
    return line


def build_demo(predictor: Any, *, title: str | None = None, top_k: int = 5) -> Any:
    """A ``gradio.Blocks`` app for ``predictor`` (a [`MultiTaskModel`] or an [`OnnxMultiTaskModel`])."""
    import gradio as gr

    from .pipeline import decode_logits

    specs = predictor.task_specs
    kind = input_kind(predictor)
    # The output widgets follow what each task type decodes to (probed on zero logits): labels or values.
    probe = decode_logits(specs, {s.name: torch.zeros(1, s.output_size) for s in specs}, top_k=top_k)[0]
    has_label = {spec.name: _confidences(probe[spec.name]) is not None for spec in specs}
    title = title or os.path.basename(str(getattr(predictor, "name_or_path", "") or "").rstrip("/")) or "hf_mtl model"

    def run(value: Any) -> list[Any]:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise gr.Error(f"give an {kind} first")
        prediction = predictor.predict(value, top_k=top_k)
        outputs: list[Any] = []
        for spec in specs:
            decoded = prediction[spec.name]
            if has_label[spec.name]:
                outputs.append(_confidences(decoded))
            outputs.append(describe(spec, decoded))
        return outputs

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\nMulti-task predictions: {', '.join(f'`{s.name}` ({s.type})' for s in specs)}")
        with gr.Row():
            with gr.Column():
                source = gr.Image(type="pil", label="image") if kind == "image" else gr.Textbox(label="text", lines=3)
                button = gr.Button("Predict", variant="primary")
            with gr.Column():
                widgets = []
                for spec in specs:
                    if has_label[spec.name]:
                        # no big "winner" heading where several labels can be predicted (multilabel)
                        widgets.append(gr.Label(label=spec.name, num_top_classes=max(spec.output_size, 2),
                                                show_heading="labels" not in probe[spec.name]))
                    widgets.append(gr.Markdown(elem_classes=["task-summary"]))
        button.click(run, inputs=source, outputs=widgets, api_name="predict")
    return demo


def write_space_app(folder: str | os.PathLike, repo_id: str) -> list[str]:
    """Write ``app.py`` and ``requirements.txt`` that serve the pushed model ``repo_id`` as a Gradio Space."""
    from . import __version__

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    app, requirements = os.path.join(folder, "app.py"), os.path.join(folder, "requirements.txt")
    with open(app, "w", encoding="utf-8") as handle:
        handle.write(SPACE_APP.format(repo_id=repo_id))
    with open(requirements, "w", encoding="utf-8") as handle:
        handle.write(f"hf-mtl[demo]>={__version__}\n")
    return [app, requirements]
