"""CXR prompt templates: the one place where instruction wording lives.

Every prompt is one user turn ``"<image>\\n" + question`` (verl's ``RLHFDataset`` needs exactly one
``<image>`` placeholder per image), optionally preceded by a system message. Questions are drawn
from small pools of paraphrases; the draw is a pure function of a key (the row id) so that
re-running a converter gives byte-identical parquet.

The wording here is this project's own. The RadVLM checkpoints were fine-tuned on other
paraphrases of the same intents; paraphrases of one intent are what such models are used to.

Example:
    >>> msgs = render_prompt("report", key="demo-0")
    >>> msgs[0]["role"], msgs[0]["content"].startswith("<image>\\n")
    ('user', True)
"""

from __future__ import annotations

import hashlib

from radvlm_verl.boxes.formats import QWEN25_ABS, QWEN_REL1000, RADVLM_NORM01
from radvlm_verl.core.tasks import (
    ABNORMALITY_DETECTION,
    ABNORMALITY_GROUNDING,
    ANATOMY_GROUNDING,
    GROUNDING_TASKS,
    PHRASE_GROUNDING,
    REPORT,
)

IMAGE_TOKEN = "<image>"

# Appended to the user turn for RadVLM checkpoints cold-started on thinking traces.
# Qwen3-VL-Thinking needs no suffix: its chat template opens <think> itself.
THINKING_SUFFIX = " /think"

DEFAULT_SYSTEM_PROMPT = (
    "You are an assistant for chest radiograph interpretation. Answer precisely and "
    "only with what the image supports."
)

REPORT_QUESTIONS = (
    "Write the findings section of a radiology report for this chest X-ray.",
    "Describe the findings on this chest radiograph as a radiologist would in a report.",
    "Please draft a radiology report for the chest X-ray shown.",
    "What are the radiological findings in this chest image? Answer in report style.",
    "Compose a concise report of the findings visible on this chest film.",
    "Interpret this chest X-ray and write up the findings.",
    "Give a structured-prose findings paragraph for this frontal chest radiograph.",
    "Report on this chest X-ray: summarise every relevant finding.",
    "As the reading radiologist, what would you write in the findings for this image?",
    "Generate the report text for this chest radiograph.",
)

# Extra paragraph for base (non-radiology-tuned) models, which otherwise answer with headings,
# lists and disclaimers that no reference report contains.
REPORT_STYLE_CONSTRAINT = (
    "Answer with a single paragraph of free text describing the findings, in the objective "
    "style of a radiology report, without headings, lists or recommendations."
)

ANATOMY_QUESTIONS = (
    "Where is the {label} in this chest X-ray? Give its bounding box.",
    "Locate the {label} on this radiograph and return its box coordinates.",
    "Mark the region of the {label} in the image with a bounding box.",
    "Find the {label} in this chest image and give its position as a box.",
    "Which area of the image shows the {label}? Answer with box coordinates.",
)

ABNORMALITY_QUESTIONS = (
    "Where is the {label} on this chest X-ray? Give the bounding boxes.",
    "Locate every region showing {label} in this radiograph and return their boxes.",
    "Mark the {label} visible in this image with bounding boxes.",
    "Find the {label} on this chest film and give the box coordinates.",
    "Show where the {label} is in the image, as bounding boxes.",
)

PHRASE_QUESTIONS = (
    "Locate the finding described by this sentence in the image and give its bounding boxes: {label}",
    "Give the bounding boxes of the region that this report phrase refers to: {label}",
    "Where on the radiograph is the following finding? Answer with boxes. {label}",
    "Mark the area described here with bounding boxes: {label}",
)

DETECTION_QUESTIONS = (
    "Are there any abnormalities on this chest X-ray? Name each one and give its bounding boxes.",
    "List the abnormal findings in this radiograph with a bounding box for each.",
    "Detect the abnormalities in this chest image: label and box for every finding.",
    "Which abnormalities does this X-ray show, and where? Give labels and boxes.",
)

# How the answer's boxes must be written, per box format (see radvlm_verl.boxes).
BOX_FORMAT_HINTS = {
    RADVLM_NORM01: "Write each box as [x_min, y_min, x_max, y_max] with coordinates between 0 and 1 "
    "relative to the image width and height.",
    QWEN_REL1000: "Answer in JSON as a list of objects with a \"bbox_2d\" field "
    "[x_min, y_min, x_max, y_max] in integer coordinates from 0 to 1000, and a \"label\" field.",
    QWEN25_ABS: "Answer in JSON as a list of objects with a \"bbox_2d\" field "
    "[x_min, y_min, x_max, y_max] in pixel coordinates of the image you see, and a \"label\" field.",
}

TASK_QUESTIONS = {
    REPORT: REPORT_QUESTIONS,
    ANATOMY_GROUNDING: ANATOMY_QUESTIONS,
    ABNORMALITY_GROUNDING: ABNORMALITY_QUESTIONS,
    PHRASE_GROUNDING: PHRASE_QUESTIONS,
    ABNORMALITY_DETECTION: DETECTION_QUESTIONS,
}


def pick(pool: tuple[str, ...], key: str) -> str:
    """Choose one entry of ``pool`` as a stable function of ``key`` (not of Python's hash seed)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return pool[int.from_bytes(digest[:8], "big") % len(pool)]


def format_label(label: str) -> str:
    """Lower-case a finding label for use inside a sentence, keeping acronyms ("ILD") as they are."""
    label = label.strip()
    if label and label[0].isupper() and not label.isupper():
        return label[0].lower() + label[1:]
    return label


def render_question(
    task: str,
    *,
    key: str,
    label: str | None = None,
    box_format: str | None = None,
    style_constraint: bool = False,
) -> str:
    """The question text (no image token) for ``task``.

    Args:
        task: one of ``TASK_QUESTIONS`` (``report`` or a grounding task).
        key: stable key (row id) selecting the paraphrase.
        label: the anatomy/finding label or, for phrase grounding, the report phrase.
        box_format: when set, append the instruction for that box format (for models that were
            not fine-tuned on one, e.g. base Qwen3-VL with ``qwen_rel1000``).
        style_constraint: append the single-paragraph report constraint (base models).
    """
    if task not in TASK_QUESTIONS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASK_QUESTIONS)}")
    template = pick(TASK_QUESTIONS[task], key)
    if "{label}" in template:
        if not label:
            raise ValueError(f"task {task!r} needs a label or phrase for its question")
        shown = label.strip() if task == PHRASE_GROUNDING else format_label(label)
        template = template.format(label=shown)
    parts = [template]
    if task == REPORT and style_constraint:
        parts.append(REPORT_STYLE_CONSTRAINT)
    if task in GROUNDING_TASKS and box_format:
        if box_format not in BOX_FORMAT_HINTS:
            raise ValueError(f"unknown box_format {box_format!r}; expected one of {sorted(BOX_FORMAT_HINTS)}")
        parts.append(BOX_FORMAT_HINTS[box_format])
    return "\n\n".join(parts)


def render_prompt(
    task: str,
    *,
    key: str,
    label: str | None = None,
    thinking_suffix: bool = False,
    system_prompt: str | None = None,
    box_format: str | None = None,
    style_constraint: bool = False,
    question: str | None = None,
) -> list[dict[str, str]]:
    """Chat messages for one image: optional system message, then ``<image>\\n`` + question.

    ``question`` overrides the template (e.g. the original instruction of a RadVLM JSON row).
    ``thinking_suffix`` appends :data:`THINKING_SUFFIX` (RadVLM-Thinking style).
    """
    text = question if question is not None else render_question(
        task, key=key, label=label, box_format=box_format, style_constraint=style_constraint
    )
    text = text.replace(IMAGE_TOKEN, "").strip()
    if thinking_suffix and not text.endswith(THINKING_SUFFIX.strip()):
        text += THINKING_SUFFIX
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": f"{IMAGE_TOKEN}\n{text}"})
    return messages
