"""CXR task names, their two families, and the rule that routes a sample to a family.

Every row of the converted parquet carries one task in ``extra_info["task"]``:

=========================  ==========  ==================================================
task                       family      rows
=========================  ==========  ==================================================
``report``                 report      report generation
``phrase_grounding``       grounding   boxes of a report phrase (MS-CXR, PadChest-GR)
``anatomy_grounding``      grounding   box of an anatomical region (Chest ImaGenome)
``abnormality_grounding``  grounding   boxes of one finding (VinDr-CXR)
``abnormality_detection``  grounding   every finding with its boxes (VinDr-CXR)
=========================  ==========  ==================================================

The reward also accepts the generic task ``grounding`` (any grounding row, e.g. from the
drop-in grounding reward file). A row without a task is routed by its ``data_source``:
``cxr_report/<dataset>`` and ``cxr_grounding/<dataset>`` (what the converters write, see
:func:`data_source_for`), and the paper's code's ``mimic_grpo`` / ``mimic_grpo_reasoning`` report
sources, so parquet written by that pipeline still scores.

Example:
    >>> task_family(None, {"task": "phrase_grounding"})
    'grounding'
    >>> task_family("mimic_grpo_reasoning", {})
    'report'
    >>> data_source_for("anatomy_grounding", "chest_imagenome")
    'cxr_grounding/chest_imagenome'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REPORT = "report"
PHRASE_GROUNDING = "phrase_grounding"
ANATOMY_GROUNDING = "anatomy_grounding"
ABNORMALITY_GROUNDING = "abnormality_grounding"
ABNORMALITY_DETECTION = "abnormality_detection"
GROUNDING = "grounding"  # generic: a grounding row whose specific task is not named

# The family names are the names of the family's generic task.
REPORT_FAMILY = REPORT
GROUNDING_FAMILY = GROUNDING

# The grounding tasks rows are converted for, in the order prompts and messages list them.
GROUNDING_TASKS = (ANATOMY_GROUNDING, ABNORMALITY_GROUNDING, PHRASE_GROUNDING, ABNORMALITY_DETECTION)
# Every task a converted row may carry (the tasks with an RL reward).
RL_TASKS = (REPORT, PHRASE_GROUNDING, ANATOMY_GROUNDING, ABNORMALITY_GROUNDING, ABNORMALITY_DETECTION)
# Every task the reward accepts in extra_info["task"] -> its family.
TASK_FAMILIES: dict[str, str] = {
    REPORT: REPORT_FAMILY,
    GROUNDING: GROUNDING_FAMILY,
    **{task: GROUNDING_FAMILY for task in GROUNDING_TASKS},
}

# data_source prefix of each family's converted rows: "<prefix>/<dataset>".
SOURCE_PREFIXES = {REPORT_FAMILY: "cxr_report", GROUNDING_FAMILY: "cxr_grounding"}
# data_source values of the paper's code; all of them are report rows.
PAPER_REPORT_SOURCES = frozenset({"mimic_grpo", "mimic_grpo_reasoning"})

__all__ = [
    "ABNORMALITY_DETECTION",
    "ABNORMALITY_GROUNDING",
    "ANATOMY_GROUNDING",
    "GROUNDING",
    "GROUNDING_FAMILY",
    "GROUNDING_TASKS",
    "PAPER_REPORT_SOURCES",
    "PHRASE_GROUNDING",
    "REPORT",
    "REPORT_FAMILY",
    "RL_TASKS",
    "SOURCE_PREFIXES",
    "TASK_FAMILIES",
    "data_source_for",
    "family_of",
    "task_family",
]


def family_of(task: str) -> str:
    """``"report"`` or ``"grounding"`` for a task name; ``ValueError`` naming the tasks otherwise."""
    task = str(task)
    family = TASK_FAMILIES.get(task)
    if family is None:
        raise ValueError(f"extra_info['task']={task!r} is not a CXR task; expected one of {sorted(TASK_FAMILIES)}")
    return family


def task_family(data_source: str | None, extra_info: Mapping[str, Any]) -> str:
    """Return ``"report"`` or ``"grounding"`` for a sample; raise ``ValueError`` if it cannot tell."""
    task = extra_info.get("task")
    if task is not None:
        # a task named as it should be: the family without family_of's conversion and call
        family = TASK_FAMILIES.get(task) if task.__class__ is str else None
        return family if family is not None else family_of(task)
    source = str(data_source or "")
    if source.startswith(SOURCE_PREFIXES[REPORT_FAMILY]) or source in PAPER_REPORT_SOURCES:
        return REPORT_FAMILY
    if source.startswith(SOURCE_PREFIXES[GROUNDING_FAMILY]):
        return GROUNDING_FAMILY
    raise ValueError(
        f"cannot route sample with data_source={source!r}: set extra_info['task'] to 'report' or "
        "'grounding' (the project's converters always do)"
    )


def data_source_for(task: str, dataset: str) -> str:
    """The ``data_source`` a converter writes for a row of ``task`` from ``dataset``."""
    return f"{SOURCE_PREFIXES[family_of(task)]}/{dataset}"
