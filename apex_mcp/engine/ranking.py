"""Passages and ranking: a page's text cut into passages, the best passage of each page, and
the order of the pages by how well their best passage answers the query.

BM25 is a small implementation here (a page has a few dozen passages, which needs neither
numpy nor an index); the embedding is WordLlama's (the ``embeddings`` extra), loaded on first
use. ``bench.quality`` measures each ranking (``RANKINGS``) on the project's quality set and
on a held-out one.
"""

from __future__ import annotations

import importlib.util
import math
import re
import textwrap
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

# How the pages are ordered and their passage picked (see ``rank_pages``); bench.quality
# measures each on the project's quality set.
RANKINGS = ("auto", "provider", "bm25", "embedding", "fusion")
DEFAULT_RANKING = "auto"
RRF_K = 60  # reciprocal rank fusion's damping, as in its paper


def split_passages(content: str, size: int = 500) -> list[str]:
    """``content`` in passages of at most ``size`` characters, cut between paragraphs where
    they fit, else between sentences, else between words."""
    pieces: list[tuple[str, str]] = []  # (text, what joins it to the piece before)
    for line in content.splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        joiner = "\n"
        for sentence in [line] if len(line) <= size else _SENTENCE_END.split(line):
            for part in textwrap.wrap(sentence, size, break_on_hyphens=False) or [sentence]:
                pieces.append((part, joiner))
                joiner = " "
    passages: list[str] = []
    current: list[tuple[str, str]] = []
    for text, joiner in pieces:
        if current and len(_joined(current)) + len(joiner) + len(text) > size:
            # A heading at the end of a full passage belongs with the text it heads.
            carry = []
            if len(current) > 1 and _is_heading(*current[-1]):
                carry = [current.pop()]
            passages.append(_joined(current))
            current = carry
        current.append((text, joiner))
    if current:
        passages.append(_joined(current))
    return passages


def best_passage(passages: Sequence[str], query: str) -> str:
    """The passage that scores best against ``query`` (the first one if none matches)."""
    if not passages:
        return ""
    scores = bm25_scores(passages, query)
    return passages[max(range(len(passages)), key=scores.__getitem__)]


def rank_pages(
    pages: Sequence[Sequence[str]], query: str, ranking: str = DEFAULT_RANKING
) -> list[tuple[int, int]]:
    """The pages (each a list of passages, in search order) from the one whose best passage
    answers ``query`` best, as ``(page index, best passage index)``.

    - ``provider``: search order; each page's best passage by BM25 over that page alone.
    - ``bm25``: BM25 over every passage of every page as one collection (the words rare
      across the pages weigh most).
    - ``embedding``: cosine similarity of query and passage in a static word-embedding model
      (WordLlama, the ``embeddings`` extra).
    - ``fusion``: reciprocal rank fusion of those two.
    - ``auto``: ``embedding`` where WordLlama is installed, else ``provider``: on questions
      it was not tuned on (``bench.quality --set heldout``) BM25's order does worse than the
      search engine's, the embedding's better.

    Except in search order, a passage is scored without the page's title line (a title that
    restates the query is the oldest bait there is), and its score is multiplied by
    ``(1 - d) ** 2``, ``d`` being the share of its words that are the query's: a passage made
    of the question's words restates it, it does not answer it. A page scores its best
    passage; ties keep search order; a page without passages comes last. With the embedding
    (``embedding``, ``fusion``) the passage returned is the one best by the sum of the damped
    embedding and BM25 scores, each scaled to the page's range.
    """
    ranking = resolve_ranking(ranking)
    if ranking == "provider":
        return [(i, _argmax(bm25_scores(p, query)) if p else 0) for i, p in enumerate(pages)]
    owners = [i for i, passages in enumerate(pages) for _ in passages]
    flat = [
        _without_title(passage) if j == 0 else passage
        for passages in pages
        for j, passage in enumerate(passages)
    ]
    terms = set(tokenize(query))
    damping = [(1 - _share_of(terms, passage)) ** 2 for passage in flat]
    lexical = [s * d for s, d in zip(bm25_scores(flat, query), damping, strict=True)]
    if ranking == "bm25":
        scores = within = lexical
    else:
        semantic = [s * d for s, d in zip(embedding_scores(flat, query), damping, strict=True)]
        scores = semantic if ranking == "embedding" else _fused(lexical, semantic)
        # Within a page the passage is the two together: the passage that restates the
        # question holds the query's words, the one that answers often only their meaning
        # (bench.quality: passage hit 0.97 against 0.94 for BM25 alone).
        within = _page_sum(owners, semantic, lexical)
    best: dict[int, int] = {}  # page -> index in flat of its best passage, for the order
    chosen: dict[int, int] = {}  # page -> index in flat of the passage returned
    first: dict[int, int] = {}
    for k, owner in enumerate(owners):
        first.setdefault(owner, k)
        if owner not in best or scores[k] > scores[best[owner]]:
            best[owner] = k
        if owner not in chosen or within[k] > within[chosen[owner]]:
            chosen[owner] = k
    order = sorted(best, key=lambda i: (-scores[best[i]], i))
    order += [i for i in range(len(pages)) if i not in best]
    return [(i, chosen[i] - first[i] if i in chosen else 0) for i in order]


def _page_sum(owners: Sequence[int], *scores: Sequence[float]) -> list[float]:
    """Per passage, the sum of ``scores``, each scaled to its page's range (0 for the page's
    lowest, 1 for its highest): for comparing the passages of one page."""
    spans: dict[int, tuple[int, int]] = {}
    for k, owner in enumerate(owners):
        start, _ = spans.get(owner, (k, k))
        spans[owner] = (start, k + 1)

    def scaled(values: Sequence[float], k: int) -> float:
        start, end = spans[owners[k]]
        low, high = min(values[start:end]), max(values[start:end])
        return (values[k] - low) / (high - low) if high > low else 0.0

    return [sum(scaled(values, k) for values in scores) for k in range(len(owners))]


def resolve_ranking(ranking: str) -> str:
    """``ranking``, with ``auto`` made ``embedding`` or ``provider`` (whether WordLlama is
    here; see ``rank_pages``)."""
    if ranking not in RANKINGS:
        raise ValueError(f"unknown ranking {ranking!r}: use one of {', '.join(RANKINGS)}")
    if ranking == "auto":
        return "embedding" if importlib.util.find_spec("wordllama") is not None else "provider"
    return ranking


def _without_title(passage: str) -> str:
    # A page's first passage starts with its title line (see extract_content).
    _, newline, rest = passage.partition("\n")
    return rest if newline and rest.strip() else passage


def _share_of(terms: set[str], passage: str) -> float:
    words = tokenize(passage)
    return sum(1 for w in words if w in terms) / len(words) if words else 0.0


def embedding_scores(passages: Sequence[str], query: str) -> list[float]:
    """Cosine similarity of each passage to ``query`` in WordLlama's 256-dimension space."""
    if not passages:
        return []
    vectors = _embedder().embed([query, *passages], norm=True)
    return [float(v) for v in vectors[1:] @ vectors[0]]


def _embedder() -> Any:
    """WordLlama, loaded once from the files its wheel ships (never from the network)."""
    global _EMBEDDER
    if _EMBEDDER is None:
        with _EMBEDDER_LOCK:
            if _EMBEDDER is None:
                _EMBEDDER = _load_wordllama()
    return _EMBEDDER


def _load_wordllama() -> Any:
    # Heavy (numpy, tokenizers, 16 MB of weights): loaded on first use. WordLlama.load would
    # look for the tokenizer where its wheel does not put it and then go to the network.
    from pathlib import Path

    try:
        import wordllama
        from safetensors import safe_open
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference
    except ImportError:
        raise RuntimeError(
            "the embedding ranking needs WordLlama: pip install 'apex-mcp[embeddings]'"
        ) from None
    root = Path(wordllama.__file__).parent
    with safe_open(root / "weights" / "l2_supercat_256.safetensors", "np") as weights:
        table = weights.get_tensor("embedding.weight")
    tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
    return WordLlamaInference(table, tokenizer)


_EMBEDDER: Any = None
_EMBEDDER_LOCK = threading.Lock()


def _fused(*rankings: Sequence[float]) -> list[float]:
    """Reciprocal rank fusion: each item's sum of 1 / (RRF_K + its rank) over the rankings."""
    fused = [0.0] * len(rankings[0])
    for scores in rankings:
        order = sorted(range(len(scores)), key=lambda k: -scores[k])
        for rank, k in enumerate(order):
            fused[k] += 1.0 / (RRF_K + rank + 1)
    return fused


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def bm25_scores(
    documents: Sequence[str], query: str, *, k1: float = 1.5, b: float = 0.75
) -> list[float]:
    """Okapi BM25 of each document for ``query``, the documents being the whole collection."""
    docs = [tokenize(d) for d in documents]
    terms = set(tokenize(query))
    if not docs or not terms:
        return [0.0] * len(docs)
    average = sum(len(d) for d in docs) / len(docs) or 1.0
    frequency = Counter(t for d in docs for t in set(d) if t in terms)
    idf = {t: math.log(1 + (len(docs) - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}
    scores = []
    for doc in docs:
        counts = Counter(doc)
        norm = k1 * (1 - b + b * len(doc) / average)
        scores.append(sum(w * counts[t] * (k1 + 1) / (counts[t] + norm) for t, w in idf.items()))
    return scores


def tokenize(text: str) -> list[str]:
    """Lowercased words without stop words, plural endings cut (bees -> bee)."""
    words = _WORD.findall(text.lower())
    # One letter is noise ("moon's" -> moon, s), except a digit.
    return [_stem(w) for w in words if w not in _STOP_WORDS and (len(w) > 1 or w.isdigit())]


# --- helpers ----------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_STOP_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
"""
_STOP_WORDS = frozenset(_STOP_TEXT.split())


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _joined(pieces: Sequence[tuple[str, str]]) -> str:
    return pieces[0][0] + "".join(joiner + text for text, joiner in pieces[1:])


def _is_heading(text: str, joiner: str) -> bool:
    # A short line of its own that does not end like a sentence.
    return joiner == "\n" and len(text) <= 100 and not text.endswith((".", "!", "?", ":", ";"))
