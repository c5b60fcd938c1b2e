"""The clustering prompt of Tipirneni et al. (2024), appendix A.

Example:
    >>> prompt = build_prompt(["glue stick", "  hot glue   gun "])
    >>> prompt.splitlines()[:3]
    ['Cluster these products:', 'glue stick', 'hot glue gun']
    >>> prompt.splitlines()[3].split(". ")[1]
    'Do not provide any explanation.'
"""

from __future__ import annotations

from collections.abc import Sequence


def prompt_line(text: str) -> str:
    """An entity text as one prompt line: inner newlines and runs of whitespace become one space."""
    return " ".join(text.split())


def build_prompt(entity_texts: Sequence[str], noun: str = "products") -> str:
    """The user message asking Claude to cluster ``entity_texts``, one per line.

    Args:
        entity_texts: the set's texts, in set order.
        noun: what the texts are ("products", "queries", ...), used twice as in the paper.

    Returns:
        The prompt; its exact text is part of the cache key, so any change re-asks every set.
    """
    noun = noun.strip()
    lines = [f"Cluster these {noun}:", *(prompt_line(t) for t in entity_texts)]
    lines.append(
        f"For each cluster, the answer should contain a meaningful cluster title and the {noun} in that "
        "cluster. Do not provide any explanation."
    )
    return "\n".join(lines)
