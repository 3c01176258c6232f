"""RadGraph F1 on annotation graphs (pure functions, no model).

An *annotation* is one report's RadGraph output: ``{"entities": {id: {"tokens", "label",
"relations": [[relation_type, target_id], ...]}, ...}}`` (extra keys are ignored).

Three reward levels, as defined by the ``radgraph`` package (0.1.18):

- ``simple``: entity set ``{(tokens, label)}``;
- ``partial``: ``(tokens, label)`` for entities without relations, ``(tokens, label, True)`` for
  entities with at least one relation;
- ``complete``: ``(tokens, label)`` for entities without relations, plus one
  ``(tokens, label, relation_type, target_tokens)`` per relation (these two token fields lower-cased).

Each level is the F1 of the two sets (precision over the hypothesis set, recall over the reference
set, 0 when precision + recall is 0); either side without entities scores 0 at every level.
``lowercase=True`` lower-cases every token field first (radgraph's unreleased fix; the project
lower-cases report text before the model anyway).

:func:`radgraph_combined` is RadCliQ-v1's feature: the mean of entity F1 (``(tokens, label)``) and
relation F1 (``((src_tokens, src_label), (tgt_tokens, tgt_label), relation_type)``), each 0 when
both sets are empty.

Example:
    >>> ann = {"entities": {"1": {"tokens": "effusion", "label": "OBS-DP", "relations": []}}}
    >>> radgraph_f1_levels(ann, ann)
    (1.0, 1.0, 1.0)
    >>> radgraph_combined(ann, ann)  # no relations on either side: relation F1 is 0
    0.5
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RADGRAPH_LEVELS = ("simple", "partial", "complete")


def set_f1(hypothesis: set, reference: set) -> float:
    """F1 of two sets: P = |H∩R|/|H|, R = |H∩R|/|R| (0 for an empty side); 0 when P + R = 0."""
    common = len(hypothesis & reference)
    precision = common / len(hypothesis) if hypothesis else 0.0
    recall = common / len(reference) if reference else 0.0
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _entities(annotation: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    try:
        entities = annotation["entities"]
    except (KeyError, TypeError):
        raise ValueError(f"a RadGraph annotation needs an 'entities' mapping, got {annotation!r:.200}") from None
    if not isinstance(entities, Mapping):
        raise ValueError(f"RadGraph 'entities' must be a mapping of id -> entity, got {type(entities).__name__}")
    return entities


def level_sets(annotation: Mapping[str, Any], lowercase: bool = False) -> tuple[set, set, set]:
    """The ``simple``, ``partial`` and ``complete`` sets of one annotation (see the module docstring)."""
    entities = _entities(annotation)
    lowered = {key: entity["tokens"].lower() for key, entity in entities.items()}  # once per entity
    simple, partial, complete = set(), set(), set()
    for key, entity in entities.items():
        tokens, label = (lowered[key] if lowercase else entity["tokens"]), entity["label"]
        simple.add((tokens, label))
        relations = entity.get("relations") or []
        if relations:
            partial.add((tokens, label, True))
            for rel_type, target in relations:  # the complete level lower-cases both token fields always
                complete.add((lowered[key], label, rel_type, lowered[str(target)]))
        else:
            partial.add((tokens, label))
            complete.add((tokens, label))
    return simple, partial, complete


def radgraph_f1_levels(
    hypothesis: Mapping[str, Any], reference: Mapping[str, Any], *, lowercase: bool = False
) -> tuple[float, float, float]:
    """``(simple, partial, complete)`` RadGraph F1 of two annotations, each in [0, 1]."""
    return f1_levels_of_sets(level_sets(hypothesis, lowercase), level_sets(reference, lowercase))


def f1_levels_of_sets(hypothesis: tuple[set, set, set], reference: tuple[set, set, set]) -> tuple[float, float, float]:
    """:func:`radgraph_f1_levels` from two annotations' :func:`level_sets` (a text's sets serve all its pairs)."""
    if not hypothesis[0] or not reference[0]:  # a side without entities scores 0 at every level
        return (0.0, 0.0, 0.0)
    return tuple(set_f1(h, r) for h, r in zip(hypothesis, reference, strict=True))  # type: ignore[return-value]


def radgraph_f1(
    hypothesis: Mapping[str, Any], reference: Mapping[str, Any], level: str = "partial", *, lowercase: bool = False
) -> float:
    """RadGraph F1 at one ``level`` (``simple``, ``partial`` or ``complete``), in [0, 1]."""
    if level not in RADGRAPH_LEVELS:
        raise ValueError(f"unknown RadGraph level {level!r}; expected one of {list(RADGRAPH_LEVELS)}")
    return radgraph_f1_levels(hypothesis, reference, lowercase=lowercase)[RADGRAPH_LEVELS.index(level)]


def entity_relation_sets(annotation: Mapping[str, Any]) -> tuple[set, set]:
    """RadCliQ's entity set ``{(tokens, label)}`` and relation set ``{(src, tgt, relation_type)}``."""
    entities = _entities(annotation)
    entity_set, relation_set = set(), set()
    for entity in entities.values():
        source = (entity["tokens"], entity["label"])
        entity_set.add(source)
        for rel_type, target in entity.get("relations") or []:
            tgt = entities[str(target)]
            relation_set.add((source, (tgt["tokens"], tgt["label"]), rel_type))
    return entity_set, relation_set


def radgraph_combined(hypothesis: Mapping[str, Any], reference: Mapping[str, Any]) -> float:
    """RadCliQ-v1's RadGraph feature: (entity F1 + relation F1) / 2, in [0, 1]."""
    return combined_of_sets(entity_relation_sets(hypothesis), entity_relation_sets(reference))


def combined_of_sets(hypothesis: tuple[set, set], reference: tuple[set, set]) -> float:
    """:func:`radgraph_combined` from two annotations' :func:`entity_relation_sets`."""
    return (set_f1(hypothesis[0], reference[0]) + set_f1(hypothesis[1], reference[1])) / 2
