"""Claude's free-text reply -> a clustering of the entities it was given (pure, no network).

The paper's prompt asks for "a meaningful cluster title and the products in that cluster" with no
fixed format, so replies come in many shapes. The parser reads them in two steps:

1. **Structure.** Each line is a blank, noise (preamble, notes, code fences, rules), a cluster title
   (a markdown heading, a bold line, ``Cluster 1: Title``, ``Title:``, ``Title: a, b, c``, a table row,
   or an unmarked line that heads an indented or bulleted list) or a member (bulleted, numbered or
   plain). A reply that is JSON (fenced or bare) is read as ``{title: [members]}`` or a list of
   ``{"title", "products"}`` objects instead.
2. **Matching.** Members are matched to entity texts: first exactly after normalisation (case,
   whitespace, quotes, trailing punctuation, markdown emphasis), then ignoring all punctuation, then
   approximately (edit-distance ratio, token order, truncation "Pilot G2 Premium Rol…") above a
   cut-off, assigning the best-scoring pairs first. An entity listed twice keeps its first place;
   members that match no entity are *invented* (ignored and counted); entities never listed are
   *missing*.

A reply with no text, or with no entity of the set in it, cannot be parsed: :func:`parse_reply`
raises :class:`ReplyParseError` and the caller discards the set, keeping the raw reply.

Example:
    >>> reply = "**Glue**\\n- glue stick\\n- Hot glue gun.\\n\\n**Tape**\\n- duct tape"
    >>> parsed = parse_reply(reply, ["glue stick", "duct tape", "hot glue gun"])
    >>> parsed.clusters, parsed.names
    ([[0, 2], [1]], ['Glue', 'Tape'])
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from cactus.teacher.config import TeacherError


class ReplyParseError(TeacherError):
    """The reply holds no clustering of the set (empty, a refusal, or no entity found in it)."""


@dataclass
class ParsedClustering:
    """A reply read as a clustering of the set's entities (indices into ``entity_texts``).

    Attributes:
        clusters: non-empty lists of entity indices, in reply order; each entity at most once.
        names: one title per cluster (``"Cluster k"`` where the reply gave none).
        missing: entities the reply never listed (to be dropped from the set), ascending.
        invented: member lines that matched no entity (ignored).
        duplicates: entities listed again after their first place (the first place is kept).
        approximate: ``(member text, entity index, similarity)`` for members matched inexactly.
        ignored: lines read as neither a title nor a member (preamble, notes).
    """

    clusters: list[list[int]]
    names: list[str]
    missing: list[int]
    invented: list[str] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    approximate: list[tuple[str, int, float]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def n_clustered(self) -> int:
        return sum(len(c) for c in self.clusters)

    def coverage(self) -> float:
        """Fraction of the set's entities that the reply clustered."""
        total = self.n_clustered + len(self.missing)
        return self.n_clustered / total if total else 0.0


# --- normalisation -----------------------------------------------------------------------------

_QUOTES = "\"'`“”‘’„«»「」"
_TRAILING = ".,;:!?" + _QUOTES
_ELLIPSIS = re.compile(r"(?:\.\.\.|…)\s*$")


def normalize(text: str) -> str:
    """Case-folded text without markdown emphasis, wrapping quotes or trailing punctuation."""
    text = unicodedata.normalize("NFKC", text).replace("**", "").replace("__", "").replace("`", "")
    text = " ".join(text.split()).casefold()
    previous = None
    while previous != text:
        previous = text
        text = text.strip().strip(_QUOTES).rstrip(_TRAILING).strip()
        if len(text) > 2 and text[0] == text[-1] and text[0] in "*_":  # *italic*
            text = text[1:-1]
    return text


def loose_key(text: str) -> str:
    """Only the words of the text (letters and digits), space-separated: punctuation-blind."""
    return " ".join(re.findall(r"\w+", normalize(text)))


def _variants(text: str) -> list[str]:
    """The member text and shorter readings of it: without a trailing note or explanation."""
    out = [text]
    bold = re.match(r"^\s*(\*\*|__)(.+?)\1", text)
    if bold:
        out.append(bold.group(2))
    without_paren = re.sub(r"\s*\([^()]*\)\s*$", "", text)
    if without_paren and without_paren != text:
        out.append(without_paren)
    for sep in (" - ", " – ", " — ", ": ", " (", " | "):
        if sep in text:
            out.append(text.split(sep, 1)[0])
    return [v for v in dict.fromkeys(v.strip() for v in out) if v]


class _Key:
    """A loose key with what the similarity needs, computed once: words, sorted words, letters."""

    __slots__ = ("chars", "sorted_text", "text", "words")

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = frozenset(text.split())
        self.sorted_text = " ".join(sorted(text.split()))
        self.chars = Counter(text)


def _key_similarity(
    m: _Key, e: _Key, floor: float = 0.0, matchers: tuple[SequenceMatcher, SequenceMatcher] | None = None
) -> float:
    """:func:`similarity` on prepared keys; ``matchers`` hold ``e``'s text and sorted text as seq2."""
    if not m.text or not e.text:
        return 0.0
    if m.text == e.text:
        return 1.0
    best = 0.0
    if e.text.startswith(m.text) and len(m.text) >= max(8, 0.4 * len(e.text)):
        best = 0.85 + 0.15 * len(m.text) / len(e.text)  # cut off by the model or a length limit
    if len(m.words) >= 3 and m.words <= e.words and len(m.words) >= 0.7 * len(e.words):
        best = max(best, 0.8 + 0.15 * len(m.words) / len(e.words))  # some words left out
    # Both ratios below are at most 2 * (letters in common) / (total length): skip them when that
    # bound cannot beat what we have (the same letters make up the text and its sorted words).
    total = len(m.text) + len(e.text)
    bar = max(best, floor)
    if 2 * min(len(m.text), len(e.text)) < bar * total:
        return best
    if 2 * sum((m.chars & e.chars).values()) < bar * total:
        return best
    if matchers is None:
        matchers = (SequenceMatcher(None, "", e.text, autojunk=False),
                    SequenceMatcher(None, "", e.sorted_text, autojunk=False))
    plain, by_words = matchers
    plain.set_seq1(m.text)
    best = max(best, plain.ratio())
    if m.sorted_text != m.text or e.sorted_text != e.text:  # the same words in another order
        by_words.set_seq1(m.sorted_text)
        best = max(best, by_words.ratio())
    return best


def similarity(mention: str, entity: str, floor: float = 0.0) -> float:
    """Similarity in [0, 1] of two loose keys: the best of edit ratio, token-order-blind ratio, a
    truncation score for a mention that is a long enough prefix of the entity, and a score for a
    mention that keeps most of the entity's words.

    Scores below ``floor`` may come back lower than they are (the edit ratios are skipped when a
    cheap upper bound already falls short).
    """
    return _key_similarity(_Key(mention), _Key(entity), floor)


class _Matcher:
    """Looks member texts up among the entity texts (exact, punctuation-blind, approximate)."""

    def __init__(self, entity_texts: Sequence[str], cutoff: float) -> None:
        self.cutoff = cutoff
        self.exact: dict[str, list[int]] = {}
        self.loose: dict[str, list[int]] = {}
        keys = [loose_key(t) for t in entity_texts]
        for i, text in enumerate(entity_texts):
            self.exact.setdefault(normalize(text), []).append(i)
            self.loose.setdefault(keys[i], []).append(i)
        self._keys = [_Key(k) for k in keys]
        self._matchers: list[tuple[SequenceMatcher, SequenceMatcher] | None] = [None] * len(keys)
        self._fuzzy_cache: dict[str, list[tuple[float, int]]] = {}

    def exact_candidates(self, text: str) -> list[int]:
        """Entities equal to a reading of ``text`` after normalisation, best reading first."""
        for variant in _variants(text):
            for table, key in ((self.exact, normalize(variant)), (self.loose, loose_key(variant))):
                if key in table:
                    return table[key]
        return []

    def fuzzy_candidates(self, text: str) -> list[tuple[float, int]]:
        """``(similarity, entity)`` for entities at or above the cut-off, best first."""
        if text not in self._fuzzy_cache:
            keys = [_Key(k) for k in dict.fromkeys(loose_key(_ELLIPSIS.sub("", v)) for v in _variants(text)) if k]
            scored = []
            for i, entity in enumerate(self._keys):
                if self._matchers[i] is None:  # built once per entity: the matcher caches seq2's index
                    self._matchers[i] = (SequenceMatcher(None, "", entity.text, autojunk=False),
                                         SequenceMatcher(None, "", entity.sorted_text, autojunk=False))
                score = max((_key_similarity(k, entity, self.cutoff, self._matchers[i]) for k in keys), default=0.0)
                if score >= self.cutoff:
                    scored.append((score, i))
            self._fuzzy_cache[text] = sorted(scored, key=lambda p: (-p[0], p[1]))
        return self._fuzzy_cache[text]

    def score(self, text: str) -> float:
        """1 for an exact match, the best similarity at or above the cut-off, else 0."""
        if self.exact_candidates(text):
            return 1.0
        fuzzy = self.fuzzy_candidates(text)
        return fuzzy[0][0] if fuzzy else 0.0

    def matches(self, text: str) -> bool:
        return self.score(text) > 0


# --- structure -----------------------------------------------------------------------------------

_BULLET = re.compile(r"^(?:[-*•+‣◦▪·–—]|\[[ xX]?\])\s+")
_NUMBER = re.compile(r"^(?:\(?\d{1,3}[.)]|\d{1,3}\s*[-–:])\s+")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_BOLD_LINE = re.compile(r"^(\*\*|__)(.+?)\1\s*(:?)\s*$")
_BOLD_PREFIX = re.compile(r"^(\*\*|__)(.+?)\1\s*:?\s*(.+)$")
_CLUSTER_PREFIX = re.compile(r"^(?:cluster|group|category)\s*#?\s*\d+\b\s*[:.)\-–—]*\s*", re.IGNORECASE)
_TITLE_LABEL = re.compile(r"^(?:cluster\s+)?(?:title|name|label|theme)\s*:\s*(.+)$", re.IGNORECASE)
_MEMBERS_LABEL = re.compile(
    r"^(?:products?|items?|members?|entities|entity|queries|query|elements?|entries|texts?)"
    r"(?:\s+in\s+(?:this|the)\s+cluster)?\s*:\s*(.*)$",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"^(?:here\s+(?:are|is)|sure\b|certainly\b|below\b|i(?:'ve|\s+have)\b|the following\b|note\b|"
    r"these\s+(?:are|clusters)\b|okay\b|based on\b)",
    re.IGNORECASE,
)
_RULE = re.compile(r"^(?:[-*_=]\s*){3,}$")
_COUNT_SUFFIX = re.compile(r"\s*[(\[]\s*\d+\s*(?:\w+\s*)?[)\]]\s*$")
_INLINE_SPLIT = re.compile(r"\s*(?:;|,|<br\s*/?>|\s\|\s)\s*", re.IGNORECASE)
_TABLE_SEPARATOR = re.compile(r"^:?-{2,}:?$")


@dataclass
class _Line:
    number: int
    indent: int
    marker: str  # "bullet" | "number" | "plain"
    content: str  # without the list marker
    kind: str = ""  # "blank" | "noise" | "title" | "member" | "inline" | "unmatched"
    title: str = ""
    members: list[str] = field(default_factory=list)


@dataclass
class _Mention:
    text: str
    block: int  # index of the cluster title it follows


def clean_title(text: str) -> str:
    """A cluster title without markup, numbering, a ``Cluster 1:`` prefix or a member count."""
    text = text.strip()
    heading = _HEADING.match(text)
    if heading:
        text = heading.group(1)
    text = text.replace("**", "").replace("__", "").strip()
    text = _NUMBER.sub("", text)
    prefix = _CLUSTER_PREFIX.match(text)
    if prefix and text[prefix.end():].strip():
        text = text[prefix.end():]
    label = _TITLE_LABEL.match(text)
    if label:
        text = label.group(1)
    text = text.strip().rstrip(":").strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    text = _COUNT_SUFFIX.sub("", text).strip().strip(_QUOTES).strip()
    return text


def _split_inline(rest: str, matcher: _Matcher) -> list[str]:
    """Split ``a, b; c`` into members, keeping together the pieces of an entity that holds commas.

    Among the ways to join neighbouring pieces, take the one whose matched chunks cover the most
    pieces, then the one with the most exact matches, then the fewest chunks, then the highest
    total similarity; a chunk of several pieces must match an entity.
    """
    rest = rest.strip()
    if not rest:
        return []
    if matcher.exact_candidates(rest):
        return [rest]
    parts = [p for p in _INLINE_SPLIT.split(rest) if p.strip()]
    # best[i]: (pieces covered, exact chunks, -chunks, total similarity, chunks) for parts[:i]
    best: list[tuple[int, int, int, float, list[str]] | None] = [None] * (len(parts) + 1)
    best[0] = (0, 0, 0, 0.0, [])
    for i in range(1, len(parts) + 1):
        for j in range(max(0, i - 8), i):
            if best[j] is None:
                continue
            chunk = ", ".join(parts[j:i])
            score = matcher.score(chunk)
            if i - j > 1 and not score:
                continue
            covered, exact, neg_chunks, total, chunks = best[j]  # type: ignore[misc]
            candidate = (
                covered + (i - j if score else 0), exact + (score == 1.0), neg_chunks - 1, total + score,
                [*chunks, chunk],
            )
            if best[i] is None or candidate[:4] > best[i][:4]:  # type: ignore[index]
                best[i] = candidate
    return best[-1][4]  # type: ignore[index]


def _inline(title: str, rest: str, matcher: _Matcher) -> list[str] | None:
    """Members of a ``Title: a, b, c`` line; None unless one of them matches an entity."""
    pieces = _split_inline(rest, matcher)
    if not clean_title(title) or not any(matcher.matches(p) for p in pieces):
        return None
    return pieces


def _classify(line: _Line, matcher: _Matcher) -> None:
    """Set ``line.kind`` (and its title or members) from the line alone; context comes later."""
    content = line.content
    if not content:
        line.kind = "blank"
        return
    if content.startswith("```") or _RULE.match(content):
        line.kind = "noise"
        return
    if content.startswith("|") and content.endswith("|") and content.count("|") >= 3:
        _classify_table_row(line, matcher)
        return
    members_label = _MEMBERS_LABEL.match(content.replace("**", "").replace("__", ""))
    if members_label:  # "Products:" or "Products: a, b" under a title
        line.members = _split_inline(members_label.group(1), matcher)
        line.kind = "inline" if line.members else "noise"
        return
    if _PREAMBLE.match(content) and not matcher.exact_candidates(content):
        line.kind = "noise"
        return
    heading = _HEADING.match(content)
    bold = _BOLD_LINE.match(content)
    if heading or bold:
        line.kind, line.title = "title", clean_title(heading.group(1) if heading else bold.group(2))
        return
    bold_prefix = _BOLD_PREFIX.match(content)
    if bold_prefix and not matcher.exact_candidates(bold_prefix.group(2)):
        members = _inline(bold_prefix.group(2), bold_prefix.group(3), matcher)
        if members:  # "**Title:** a, b"
            line.kind, line.title, line.members = "inline", clean_title(bold_prefix.group(2)), members
            return
    unbold = content.replace("**", "").replace("__", "").strip()
    prefix = _CLUSTER_PREFIX.match(unbold)
    if prefix or _TITLE_LABEL.match(unbold):
        after = unbold[prefix.end():] if prefix else ""
        if ":" in after:  # "Cluster 1: Title: a, b"
            title, rest = after.split(":", 1)
            members = _inline(title, rest, matcher)
            if members:
                line.kind, line.title, line.members = "inline", clean_title(title), members
                return
        line.kind, line.title = "title", clean_title(unbold) or unbold
        return
    if unbold.endswith(":"):
        line.kind, line.title = "title", clean_title(unbold)
        return
    if matcher.matches(content):
        line.kind, line.members = "member", [content]
        return
    if ":" in content:
        title, rest = content.split(":", 1)
        members = _inline(title, rest, matcher)
        if members:  # "Title: a, b, c"
            line.kind, line.title, line.members = "inline", clean_title(title), members
            return
    line.kind = "unmatched"


def _classify_table_row(line: _Line, matcher: _Matcher) -> None:
    """A markdown table row ``| Title | a, b |``: the first cell titles the rest; others are noise."""
    cells = [c.strip() for c in line.content.strip().strip("|").split("|")]
    cells = [c for c in cells if not re.fullmatch(r"\d+\.?", c)]  # a "#" column
    if len(cells) < 2 or all(_TABLE_SEPARATOR.match(c.replace(" ", "")) for c in cells if c):
        line.kind = "noise"
        return
    pieces = [p for cell in cells[1:] for p in _split_inline(cell, matcher)]
    if not any(matcher.matches(p) for p in pieces):
        line.kind = "noise"  # the header row, or a row of nothing we know
        return
    line.kind, line.title, line.members = "inline", clean_title(cells[0]), pieces


def _split_lines(text: str) -> list[_Line]:
    """The reply's lines with their indentation and list marker taken off."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        expanded = raw.replace("\t", "    ").rstrip()
        content = expanded.strip()
        indent = len(expanded) - len(expanded.lstrip())
        marker = "plain"
        for name, pattern in (("bullet", _BULLET), ("number", _NUMBER)):
            found = pattern.match(content)
            if found:
                marker, content = name, content[found.end():].strip()
                break
        lines.append(_Line(number, indent, marker, content))
    return lines


def _resolve_unmatched(lines: list[_Line]) -> None:
    """Decide from context whether each unmatched line heads a list (a title), is an invented
    member, or is noise (a sentence before, between or after the clusters)."""
    meaningful = [i for i, ln in enumerate(lines) if ln.kind not in ("blank", "noise")]
    for k, i in enumerate(meaningful):
        line = lines[i]
        if line.kind != "unmatched":
            continue
        nxt = lines[meaningful[k + 1]] if k + 1 < len(meaningful) else None
        prev = lines[meaningful[k - 1]] if k > 0 else None
        after_break = i == 0 or lines[i - 1].kind in ("blank", "noise", "title")
        next_is_member = nxt is not None and (
            nxt.kind in ("member", "inline") or (nxt.kind == "unmatched" and nxt.marker != "plain")
        )
        heads_list = next_is_member and (
            nxt.indent > line.indent  # "Title" then indented members
            or (nxt.marker != "plain" and nxt.marker != line.marker)  # "1. Title" then "- member"
            or (line.marker == "plain" and after_break)  # a plain title line after a blank line
        )
        if heads_list:
            line.kind, line.title = "title", clean_title(line.content)
        elif line.marker != "plain" or (prev is not None and prev.kind == "member" and next_is_member):
            line.kind, line.members = "member", [line.content]  # matches no entity: invented
        else:
            line.kind = "noise"


def _blocks_from_lines(text: str, matcher: _Matcher) -> tuple[list[str | None], list[_Mention], list[str]]:
    """Cluster titles (None: untitled), member mentions and ignored lines of a free-text reply."""
    lines = _split_lines(text)
    for line in lines:
        _classify(line, matcher)
    _resolve_unmatched(lines)
    has_titles = any(ln.kind in ("title", "inline") and ln.title for ln in lines)
    titles: list[str | None] = []
    mentions: list[_Mention] = []
    ignored: list[str] = []
    open_block = False  # whether the last block still takes members
    for line in lines:
        if line.kind == "noise":
            if not line.content.startswith("```") and not _RULE.match(line.content):
                ignored.append(line.content)
            continue
        if line.kind == "blank":
            if not has_titles:
                open_block = False  # without titles, blank lines separate the clusters
            continue
        if line.kind == "title" or (line.kind == "inline" and line.title):
            titles.append(line.title or None)
            open_block = True
        elif not open_block:  # members before any title
            titles.append(None)
            open_block = True
        mentions.extend(_Mention(member, len(titles) - 1) for member in line.members)
    return titles, mentions, ignored


# --- JSON replies --------------------------------------------------------------------------------

_JSON_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)\n\s*```", re.DOTALL | re.IGNORECASE)
_TITLE_KEYS = ("title", "cluster_title", "name", "cluster_name", "cluster", "label", "category", "theme")
_MEMBER_KEYS = ("products", "items", "members", "entities", "queries", "texts", "elements", "entries")


def _json_blocks(text: str) -> list[tuple[str | None, list[str]]] | None:
    """``[(title, members)]`` when the reply is a JSON clustering, else None."""
    fenced = _JSON_FENCE.search(text)
    candidate = fenced.group(1) if fenced else text.strip()
    if not candidate.startswith(("{", "[")):
        return None
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict):
        for key in ("clusters", "groups", "categories"):
            if isinstance(data.get(key), (list, dict)):
                data = data[key]
                break
    blocks: list[tuple[str | None, list[str]]] = []
    if isinstance(data, dict):
        for title, members in data.items():
            if isinstance(members, list):
                blocks.append((str(title), [str(m) for m in members if isinstance(m, (str, int, float))]))
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, list):
                blocks.append((None, [str(m) for m in item if isinstance(m, str)]))
            elif isinstance(item, dict):
                title = next((item[k] for k in _TITLE_KEYS if isinstance(item.get(k), str)), None)
                members = next((item[k] for k in _MEMBER_KEYS if isinstance(item.get(k), list)), None)
                if members is None:
                    members = next((v for v in item.values() if isinstance(v, list)), [])
                blocks.append((title, [str(m) for m in members if isinstance(m, str)]))
    return blocks or None


# --- assignment ----------------------------------------------------------------------------------


def parse_reply(reply_text: str, entity_texts: Sequence[str], *, match_cutoff: float = 0.8) -> ParsedClustering:
    """Read Claude's reply as a clustering of ``entity_texts``.

    Args:
        reply_text: the reply, as received.
        entity_texts: the set's texts in set order (the order of the prompt lines).
        match_cutoff: least similarity in (0, 1] for an inexact member to count as an entity.

    Returns:
        The clusters over entity indices, their names, and what did not fit (missing, invented,
        duplicates, approximate matches, ignored lines).

    Raises:
        ReplyParseError: the reply is empty or names no entity of the set.
    """
    if not reply_text or not reply_text.strip():
        raise ReplyParseError("the reply is empty")
    matcher = _Matcher(entity_texts, match_cutoff)
    json_blocks = _json_blocks(reply_text)
    if json_blocks is not None:
        titles: list[str | None] = [clean_title(t) if t else None for t, _ in json_blocks]
        mentions = [_Mention(m, b) for b, (_, members) in enumerate(json_blocks) for m in members]
        ignored: list[str] = []
    else:
        titles, mentions, ignored = _blocks_from_lines(reply_text, matcher)

    owner: dict[int, int] = {}  # entity -> mention that holds it
    assigned: dict[int, int] = {}  # mention -> entity
    duplicates: list[int] = []
    pending: list[int] = []
    for m, mention in enumerate(mentions):  # exact and punctuation-blind matches, in reply order
        candidates = matcher.exact_candidates(mention.text)
        free = [e for e in candidates if e not in owner]
        if free:
            owner[free[0]] = m
            assigned[m] = free[0]
        elif candidates:
            duplicates.append(candidates[0])
        else:
            pending.append(m)

    pairs = sorted(
        ((score, m, e) for m in pending for score, e in matcher.fuzzy_candidates(mentions[m].text)),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    approximate: list[tuple[str, int, float]] = []
    for score, m, e in pairs:  # best-scoring approximate pairs first
        if m not in assigned and e not in owner:
            owner[e] = m
            assigned[m] = e
            approximate.append((mentions[m].text, e, round(score, 3)))
    invented: list[str] = []
    for m in pending:
        if m in assigned:
            continue
        fuzzy = matcher.fuzzy_candidates(mentions[m].text)
        if fuzzy:
            duplicates.append(fuzzy[0][1])  # close to an entity already placed
        else:
            invented.append(mentions[m].text)

    members: list[list[int]] = [[] for _ in titles]
    for m in sorted(assigned):
        members[mentions[m].block].append(assigned[m])
    clusters, names = [], []
    for block, block_members in enumerate(members):
        if block_members:
            clusters.append(block_members)
            names.append(titles[block] or f"Cluster {len(clusters)}")
    if not clusters:
        shown = reply_text.strip().splitlines()[0][:80]
        raise ReplyParseError(f"no entity of the set was found in the reply (it begins: {shown!r})")
    missing = [i for i in range(len(entity_texts)) if i not in owner]
    return ParsedClustering(clusters, names, missing, invented, duplicates, approximate, ignored)
