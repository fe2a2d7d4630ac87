"""Deep research: the orchestrator that writes a cited report (``jobs.py`` runs it durably).

``Researcher`` does one job's research with the miners and the web retriever, and reports its
progress as it goes through an ``emit`` callback:

1. plan: a miner breaks the question into web searches (a JSON list; a model that answers
   badly leaves the question itself as the one search);
2. for each search, retrieval, then for each new source (URLs deduplicated across searches,
   at most ``max_sources`` per job) a miner notes what the source says about the question;
3. a miner drafts a markdown report from the notes, citing the sources as [1], [2]…;
4. the citations are verified here, not trusted to the model (``verify_citations``): a
   citation stays only where the cited source's text supports its sentence (at least
   ``SUPPORT_THRESHOLD`` of the sentence's words in one passage of it); one that does not is
   moved to the source that does, or removed, as is a number no source has. Links and URLs
   to pages the job did not read are removed. The "Sources" list, with the passage of each
   source that supports what cites it, is added here too.

Chunks, in the Apex format (``json.dumps([{"content": ...}])``): ``## Generating Research
Plan``, the plan, ``## Searching: <query>``, ``### Reading: <title> (<url>)``, the notes,
``## Drafting report``, and last the report, which is the final answer.

Those chunks are also the job's checkpoint: a job run again (its engine stopped, or died and
another took it over) ``resume``s from them. Its plan and the sources it read with their
notes are kept (their text too, where the retriever's page cache still holds it, for the
citations); the search it was in is done again, skipping the sources already read.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from ..apex.errors import ApexError, Code, invalid_argument
from ..apex.models import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    SamplingParameters,
    SearchFilters,
    WebRetrievalRequest,
    WebRetrievalResponse,
    WebSearchResult,
)
from .config import ResearchLimits

# One name for deep research's log, the orchestrator's and the runner's: clients hear it so.
log = logging.getLogger("apex_mcp.engine.research")

MAX_SOURCE_CHARS = 12_000  # of a page's text shown to the note taker
MAX_VERIFIED_CHARS = 50_000  # of a page's text that citations are checked against
# A cited sentence is supported by a source when at least this share of its words (stop
# words out, plurals folded) is in one passage of the source's text.
SUPPORT_THRESHOLD = 0.5
MAX_QUERY_CHARS = 300
FALLBACK_NOTES_CHARS = 1_500

# The SDK's sampling for deep research (see the shared Apex README).
DEFAULT_SAMPLING = SamplingParameters(
    temperature=0.7, top_p=0.95, max_new_tokens=8192, do_sample=False
)

PLAN_PROMPT = """\
You plan web research. Break the user's question into at most {count} focused web search \
queries that together find what is needed to answer it well. Answer with a JSON list of \
strings and nothing else, for example: ["first query", "second query"]"""

NOTES_PROMPT = """\
You take notes for a research report. From the source below, note briefly, as bullet points, \
the facts that help answer the question. Use only what the source says. If it says nothing \
useful, answer "Nothing relevant." """

REPORT_PROMPT = """\
You write a research report in markdown that answers the user's question from the numbered \
sources below. Cite each claim taken from a source with the source's number in square \
brackets, e.g. [1] or [2][3], using only the numbers given. Where the sources are silent, say \
so rather than guess. Do not end with a list of sources: it is added for you."""

# What to do when a part of a job fails, named in the job's error. A job runs in the engine:
# none of its failures is the remote Apex server's, whose advice a code gives by default.
SEARCH_HINT = "check the web search: the network, APEX_SEARCH_PROVIDER and APEX_SEARXNG_URL"
ENGINE_MINERS_HINT = (
    "check the miners and their keys (APEX_MINER, APEX_MINER_API_KEY and APEX_MINER_MODEL, or "
    "[[miners]] in the config file): `apex-mcp doctor` tries each"
)
SESSION_MINERS_HINT = "check the miner, its API key and its model in this session's settings"
NO_SOURCES_PROMPT = """\
You write a research report in markdown that answers the user's question. The web search \
found no sources, so answer from what you know and say plainly, at the start, that the report \
is not backed by web sources."""


# --- what the orchestrator needs --------------------------------------------------------------


class Completer(Protocol):
    """Answers a chat completion (``MinerPool``)."""

    async def complete(
        self, request: ChatCompletionRequest, *, user: str | None = None
    ) -> ChatCompletionResponse: ...


class Retriever(Protocol):
    """Searches the web and reads the pages found (``WebRetriever``)."""

    async def retrieve(
        self, request: WebRetrievalRequest, *, filters: SearchFilters | None = None
    ) -> WebRetrievalResponse: ...


@runtime_checkable
class KeepsPages(Protocol):
    """A retriever that gives back a page it read earlier (``WebRetriever``'s page cache)."""

    async def kept_page(self, url: str) -> str | None: ...


@dataclass(frozen=True)
class Source:
    """A source read, with the number the report cites it by and the notes taken on it."""

    number: int
    url: str
    title: str
    notes: str
    text: str = ""  # what was read: the title line, then the page's text


PLAN_STEP = "## Generating Research Plan\n"
SEARCH_STEP = "## Searching: "
READ_STEP = "### Reading: "
SEARCH_FAILED = "The search failed: "
DRAFT_STEP = "## Drafting report\n"


# --- the orchestrator -----------------------------------------------------------------------


Emit = Callable[[str], Awaitable[None]]


@dataclass
class Researcher:
    """One job's research. ``run`` returns the report; ``emit`` gets each progress chunk."""

    miners: Completer
    retriever: Retriever
    limits: ResearchLimits
    request: ChatCompletionRequest
    emit: Emit
    miners_hint: str = ENGINE_MINERS_HINT  # what to check when the miners fail
    user: str | None = None  # whose turns at the miners this research takes
    filters: SearchFilters | None = None  # what its searches may return (domains, recency)
    sources: list[Source] = field(default_factory=list)
    # What an earlier run of the job did (see ``resume``): its plan, the searches it finished.
    planned: list[str] | None = None
    searched: set[str] = field(default_factory=set)
    failures: dict[str, ApexError] = field(default_factory=dict)  # by search

    def resume(self, runs: Iterable[list[str]]) -> None:
        """Take up what earlier runs of this job recorded (the texts of each run's chunks):
        the plan, the searches finished, and the sources read with their notes. A search
        under way when a run stopped is done again; its sources read so far are kept."""
        for chunks in runs:
            in_progress: str | None = None
            reading: tuple[str, str] | None = None  # (title, url) of the source being noted
            expect_plan = False
            for text in chunks:
                if reading is not None:  # the chunk after a Reading one holds its notes
                    title, url = reading
                    if url not in {source.url for source in self.sources}:
                        notes = text.strip()
                        self.sources.append(Source(len(self.sources) + 1, url, title, notes))
                    reading = None
                elif expect_plan:
                    self.planned = [m.group(1) for m in _PLAN_LINE.finditer(text)] or None
                    expect_plan = False
                elif text == PLAN_STEP:
                    expect_plan = True
                elif text.startswith(SEARCH_STEP):
                    if in_progress is not None:
                        self.searched.add(in_progress)
                    in_progress = text[len(SEARCH_STEP) :].rstrip("\n")
                elif text.startswith(READ_STEP) and (read := _READ_LINE.match(text)):
                    reading = (read.group(1), read.group(2))
                elif text.startswith(SEARCH_FAILED) and in_progress is not None:
                    message = text[len(SEARCH_FAILED) :].strip()
                    self.failures[in_progress] = ApexError(Code.UNAVAILABLE, message)
                elif text == DRAFT_STEP and in_progress is not None:
                    self.searched.add(in_progress)
                    in_progress = None

    async def run(self) -> str:
        question = question_of(self.request)
        await self.recall_texts()
        searches = self.planned
        if searches is None:
            await self.emit(PLAN_STEP)
            searches = await self.plan(question)
            await self.emit("".join(f"{i}. {q}\n" for i, q in enumerate(searches, 1)))

        seen = {source.url for source in self.sources}
        for search in searches:
            room = self.limits.max_sources - len(self.sources)
            if room <= 0:
                break
            if search in self.searched:
                continue
            await self.emit(f"{SEARCH_STEP}{search}\n")
            try:
                found = await self.retriever.retrieve(
                    WebRetrievalRequest(
                        search_query=search, n_results=min(self.limits.results_per_search, room)
                    ),
                    filters=self.filters,
                )
            except ApexError as e:
                self.failures[search] = e
                await self.emit(f"{SEARCH_FAILED}{e.message}\n")
                continue
            for result in found.results:
                if len(self.sources) >= self.limits.max_sources:
                    break
                if not result.url or result.url in seen:
                    continue
                seen.add(result.url)
                title, _ = _split_title(result.content, result.url)
                await self.emit(f"{READ_STEP}{title} ({result.url})\n")
                notes = await self.notes(question, search, title, result)
                await self.emit(notes + "\n")
                text = result.content[:MAX_VERIFIED_CHARS]
                self.sources.append(Source(len(self.sources) + 1, result.url, title, notes, text))

        if not self.sources and self.failures and set(searches) <= set(self.failures):
            raise _every_search_failed(list(self.failures.values()))
        await self.emit(DRAFT_STEP)
        return await self.report(question)

    async def recall_texts(self) -> None:
        """The sources an earlier run read come back from its chunks with their notes only:
        their text too, where the retriever still keeps the page, so that their citations
        are checked against what the page says rather than against the notes."""
        if not isinstance(self.retriever, KeepsPages):
            return
        for i, source in enumerate(self.sources):
            if not source.text:
                text = await self.retriever.kept_page(source.url)
                if text:
                    self.sources[i] = replace(source, text=text[:MAX_VERIFIED_CHARS])

    async def plan(self, question: str) -> list[str]:
        count = self.limits.max_searches
        answer = await self.ask(PLAN_PROMPT.format(count=count), question)
        return parse_plan(answer, question, count)

    async def notes(self, question: str, search: str, title: str, page: WebSearchResult) -> str:
        _, text = _split_title(page.content, page.url)
        prompt = (
            f"Question: {question}\nSearch: {search}\n\n"
            f"Source: {title}\nURL: {page.url}\n\n{text[:MAX_SOURCE_CHARS]}"
        )
        try:
            notes = await self.ask(NOTES_PROMPT, prompt)
        except ApexError as e:
            # One failed note should not sink a long job: keep the retriever's best passage.
            log.warning("notes on %s failed (%s); keeping the passage instead", page.url, e)
            notes = ""
        return notes.strip() or (page.relevant or text)[:FALLBACK_NOTES_CHARS].strip()

    async def report(self, question: str) -> str:
        if not self.sources:
            answer = await self.ask(NO_SOURCES_PROMPT, question)
            return verify_citations(answer, [])[0].strip()
        listed = "\n\n".join(
            f"[{s.number}] {s.title} ({s.url})\nNotes:\n{s.notes}" for s in self.sources
        )
        body = await self.ask(REPORT_PROMPT, f"Question: {question}\n\nSources:\n\n{listed}")
        body, support = verify_citations(_without_sources_section(body), self.sources)
        if not support:
            return body.strip()
        sources = "\n".join(
            f"- [{s.number}] [{s.title}]({s.url})\n  > {' '.join(support[s.number].split())}"
            for s in self.sources
            if s.number in support
        )
        return f"{body.strip()}\n\n## Sources\n\n{sources}\n"

    async def ask(self, instructions: str, prompt: str) -> str:
        """One miner answer, with the request's model, seed and sampling."""
        request = ChatCompletionRequest(
            messages=[
                ChatMessage(role="system", content=instructions),
                ChatMessage(role="user", content=prompt),
            ],
            model=self.request.model,
            seed=self.request.seed,
            sampling_parameters=self.request.sampling_parameters or DEFAULT_SAMPLING,
        )
        try:
            response = await self.miners.complete(request, user=self.user)
        except ApexError as e:
            # Unless the error says already what to set (no miner at all), name the miners.
            raise e if "APEX_MINER" in e.message else e.with_hint(self.miners_hint) from None
        message = response.choices[0].message if response.choices else None
        return message.content if message is not None else ""


def _every_search_failed(failures: list[ApexError]) -> ApexError:
    last = failures[-1]
    said = "" if all(f.message == last.message for f in failures) else ", the last with"
    return ApexError(
        Code.UNAVAILABLE,
        f"every web search failed{said}: {last.message}",
        hint=last.with_hint(SEARCH_HINT, keep_given=True).hint,
    )


def question_of(request: ChatCompletionRequest) -> str:
    """The question a research request asks: its last user message."""
    for message in reversed(request.messages):
        if message.role == "user" and message.content.strip():
            return message.content.strip()
    raise invalid_argument("deep research needs a user message with the question")


_PLAN_LINE = re.compile(r"^\d+\. (.+)$", re.MULTILINE)
_READ_LINE = re.compile(r"^### Reading: (.*) \((\S+)\)\n?$", re.DOTALL)
_FENCE = re.compile(r"^```[\w-]*\s*|\s*```$")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.+?)\s*$")


def parse_plan(answer: str, question: str, limit: int) -> list[str]:
    """The searches of a plan: a JSON list (or an object holding one), else a numbered or
    bulleted list; when neither is there, the question itself."""
    text = _FENCE.sub("", answer.strip())
    items: list[object] = []
    start, end = text.find("["), text.rfind("]")
    for candidate in (text, text[start : end + 1] if 0 <= start < end else ""):
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(parsed, dict):  # {"queries": [...]}
            parsed = next((v for v in parsed.values() if isinstance(v, list)), [])
        if isinstance(parsed, list):
            items = parsed
            break
    if not items:
        items = [m.group(1) for line in text.splitlines() if (m := _LIST_ITEM.match(line))]
    searches: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict):  # [{"query": "..."}]
            item = next((v for v in item.values() if isinstance(v, str)), "")
        if isinstance(item, str) and (query := " ".join(item.split())[:MAX_QUERY_CHARS]):
            searches.setdefault(query.lower(), query)
    return list(searches.values())[:limit] or [" ".join(question.split())[:MAX_QUERY_CHARS]]


def _split_title(content: str, url: str) -> tuple[str, str]:
    # The retriever's content is the page's title line, then its main text.
    title, _, text = content.strip().partition("\n")
    title = " ".join(title.split())[:200]
    return (title or url), (text.strip() or content)


_SOURCES_HEADING = re.compile(
    r"\n\s*(?:#{1,6}\s*|\*\*)(?:sources|references|bibliography)\b[^\n]*(?:\n|$)"
    r"(?!.*\n#{1,6}\s)",
    re.IGNORECASE | re.DOTALL,
)


def _without_sources_section(report: str) -> str:
    # Models add their own list of sources despite being told not to; ours replaces it.
    match = _SOURCES_HEADING.search("\n" + report)
    return report[: max(match.start() - 1, 0)] if match else report


# --- verified citations ----------------------------------------------------------------------

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_CITATIONS = re.compile(r"(?:\s*\[\d+(?:\s*,\s*\d+)*\])+")
# Sentences end at . ! ? followed by space, unless a citation follows ("... here. [2]").
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?!\[\d)")
_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\((\S+?)\)")
_BARE_URL = re.compile(r"<?\b(?:https?|ftp)://[^\s<>()\]]+>?", re.IGNORECASE)


def verify_citations(report: str, sources: list[Source]) -> tuple[str, dict[int, str]]:
    """``report`` with only the citations its sources support, and for each source cited,
    the passage of its text that supports it best.

    A citation of a number no source has is removed. A cited sentence that its source does
    not support (``SUPPORT_THRESHOLD``) is cited to the source that supports it best instead,
    if one does, else left uncited. Markdown links and URLs to pages that are not among the
    sources are removed (a link keeps its text).
    """
    by_number = {s.number: s for s in sources}
    passages = {s.number: _passages(s) for s in sources}
    best: dict[int, tuple[float, str]] = {}
    read = {_url_key(s.url) for s in sources}

    def verified(sentence: str) -> str:
        cited = [int(n) for group in _CITATION.findall(sentence) for n in group.split(",")]
        if not cited:
            return sentence
        claim = _CITATIONS.sub("", sentence)
        kept: list[int] = []
        for number in dict.fromkeys(cited):
            if number not in by_number:
                log.info("citation [%d] removed: no source has that number", number)
                continue
            score, passage = _support(claim, passages[number])
            if score < SUPPORT_THRESHOLD:
                number, score, passage = _best_support(claim, passages)
                if score < SUPPORT_THRESHOLD:
                    log.info("a citation removed: no source supports %r", claim[:80])
                    continue
            if number not in kept:
                kept.append(number)
                if score > best.get(number, (-1.0, ""))[0]:
                    best[number] = (score, passage)
        marks = "".join(f"[{n}]" for n in kept)
        first = _CITATIONS.search(sentence)
        assert first is not None  # a sentence with a citation
        head = _CITATIONS.sub("", sentence[: first.start()])
        tail = _CITATIONS.sub("", sentence[first.end() :])
        return f"{head}{' ' if marks else ''}{marks}{tail}"

    def unread_links(text: str) -> str:
        text = _MARKDOWN_LINK.sub(
            lambda m: m.group(0) if _url_key(m.group(2)) in read else m.group(1), text
        )
        return _BARE_URL.sub(lambda m: m.group(0) if _url_key(m.group(0)) in read else "", text)

    lines = []
    for line in report.split("\n"):
        line = unread_links(line)
        lines.append("".join(verified(part) for part in _split_keeping(line)))
    return "\n".join(lines), {n: passage for n, (_, passage) in best.items()}


def _split_keeping(line: str) -> list[str]:
    """The line's sentences, each with the spaces that followed it (joined, the line again)."""
    parts: list[str] = []
    start = 0
    for match in _SENTENCE.finditer(line):
        parts.append(line[start : match.end()])
        start = match.end()
    parts.append(line[start:])
    return parts


def _passages(source: Source) -> list[tuple[set[str], str]]:
    from .ranking import split_passages, tokenize

    text = source.text or f"{source.title}\n{source.notes}"
    return [(set(tokenize(p)), p) for p in split_passages(text)]


def _support(claim: str, passages: list[tuple[set[str], str]]) -> tuple[float, str]:
    """The share of the claim's words in the passage that has most of them, and that passage."""
    from .ranking import tokenize

    words = set(tokenize(claim))
    if not words or not passages:
        return 0.0, ""
    words_in, passage = max(((len(words & p), text) for p, text in passages), key=lambda x: x[0])
    return words_in / len(words), passage


def _best_support(
    claim: str, passages: dict[int, list[tuple[set[str], str]]]
) -> tuple[int, float, str]:
    scored = [(number, *_support(claim, p)) for number, p in passages.items()]
    return max(scored, key=lambda x: x[1], default=(0, 0.0, ""))


def _url_key(url: str) -> str:
    from .retrieval import normalize_url

    return normalize_url(url.strip("<>").rstrip(".,;:"))
