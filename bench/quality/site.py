"""The quality set served for real: its pages as HTML amid boilerplate, and a SearXNG.

One ASGI app on 127.0.0.1: ``GET /search?q=<question>&format=json`` answers like a SearXNG
instance with the question's five pages in a fixed shuffled order (the same on every run);
every other path is a page. Each page is laid out as one of three kinds of site (a news site,
a blog, a reference site), chosen by the page, with a cookie banner, navigation, "related"
links that repeat the question's words, a newsletter box and a footer. ``BOILERPLATE`` holds
a string of each piece of clutter: none of them belongs in an extracted text.
"""

from __future__ import annotations

import html
import json
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from tests.fakes import answer_lifespan

from .questions import QUESTIONS, Doc, Question

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SHUFFLE_SEED = 16  # the provider's order of each question's pages: fixed, not good

BOILERPLATE = (
    "We use cookies to improve your experience",
    "Accept all",
    "Subscribe to our weekly digest",
    "You might also like",
    "All rights reserved",
    "Skip to main content",
    "Share this article",
    "Was this page helpful?",
)


@dataclass(frozen=True)
class Candidate:
    question: int
    kind: str  # "answer", "title_trap", "stuffed", "near", "other"
    path: str
    doc: Doc


def candidates(index: int, question: Question) -> list[Candidate]:
    """A question's pages in the fake provider's order: shuffled, the same on every run."""
    found = [
        Candidate(index, kind, f"/{index}/{_slug(doc.title)}", doc)
        for kind, doc in question.candidates().items()
    ]
    random.Random(SHUFFLE_SEED * 1000 + index).shuffle(found)
    return found


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60]


def page_html(candidate: Candidate, related: list[str]) -> str:
    """The page as a site would serve it. ``related`` are titles for the "related" box."""
    doc = candidate.doc
    esc = html.escape
    body = "".join(f"<p>{esc(p)}</p>" for p in doc.paragraphs)
    links = "".join(f'<li><a href="/related/{i}">{esc(t)}</a></li>' for i, t in enumerate(related))
    layout = hash_layout(candidate.path)
    cookie = (
        '<div class="cookie-consent" role="dialog"><p>We use cookies to improve your experience '
        "and to show you personalised ads. See our cookie policy.</p><button>Accept all</button>"
        "<button>Reject</button></div>"
    )
    nav = (
        '<a class="skip" href="#main">Skip to main content</a><nav><ul><li><a href="/">Home'
        '</a></li><li><a href="/topics">Topics</a></li><li><a href="/about">About us</a></li>'
        '<li><a href="/contact">Contact</a></li></ul></nav>'
    )
    related_box = f'<aside class="related"><h3>You might also like</h3><ul>{links}</ul></aside>'
    share = (
        '<div class="share">Share this article: <a href="#">Facebook</a> <a href="#">X</a></div>'
    )
    newsletter = (
        '<section class="newsletter"><h3>Subscribe to our weekly digest</h3><form><input '
        'type="email" placeholder="you@example.com"><button>Subscribe</button></form></section>'
    )
    footer = (
        '<footer><p>Was this page helpful? <a href="#">Yes</a> <a href="#">No</a></p>'
        "<p>© 2025 Example Publishing Ltd. All rights reserved. <a href='/privacy'>Privacy</a>"
        "</p></footer>"
    )
    if layout == 0:  # a news site: article, then the related box and the newsletter
        main = (
            f'<main id="main"><article><h1>{esc(doc.title)}</h1><p class="byline">By Sam '
            f"Reporter · 6 min read</p>{share}{body}</article>{related_box}</main>{newsletter}"
        )
    elif layout == 1:  # a blog: a sidebar first, comments count after the post
        main = (
            f'<div class="wrap">{related_box}<main id="main"><div class="post"><h1 class="entry-'
            f'title">{esc(doc.title)}</h1><div class="entry-content">{body}</div>{share}'
            f'<div class="comments">12 comments</div></div></main></div>{newsletter}'
        )
    else:  # a reference site: breadcrumbs, the text in sections, related links in the text
        main = (
            f'<main id="main"><div class="crumbs"><a href="/">Home</a> › <a href="/topics">'
            f'Topics</a></div><div class="content"><h1>{esc(doc.title)}</h1>{body}</div>'
            f"{related_box}</main>"
        )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(doc.title)}'
        f" | Example</title><script>var ads = [];</script></head><body>{cookie}"
        f"<header>{nav}</header>{main}{footer}</body></html>"
    )


def hash_layout(path: str) -> int:
    return sum(path.encode()) % 3


@dataclass
class QualitySite:
    """The pages and the fake SearXNG of a set of questions (the quality set unless told), as
    one ASGI app. A question's provider order is seeded by its position in ``questions``."""

    questions: list[Question] = field(default_factory=lambda: QUESTIONS)

    def __post_init__(self) -> None:
        self.by_query: dict[str, list[Candidate]] = {}
        self.pages: dict[str, bytes] = {}
        titles = [q.query[:1].upper() + q.query[1:] + "?" for q in self.questions]
        for index, question in enumerate(self.questions):
            found = candidates(index, question)
            self.by_query[question.query] = found
            # "Related" links: the question itself, reworded, and two other questions.
            related = [titles[index], titles[(index + 1) % len(titles)], titles[index - 1]]
            for candidate in found:
                self.pages[candidate.path] = page_html(candidate, related).encode()
        self.base = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        path = scope["path"]
        if path == "/search":
            query = parse_qs(scope["query_string"].decode()).get("q", [""])[0]
            results = [
                {"url": self.base + c.path, "title": c.doc.title, "content": "", "engine": "x"}
                for c in self.by_query.get(query, [])
            ]
            body = json.dumps({"query": query, "results": results}).encode()
            await _send(send, 200, "application/json", body)
        elif path in self.pages:
            await _send(send, 200, "text/html; charset=utf-8", self.pages[path])
        else:
            await _send(send, 404, "text/plain", b"not found")


async def _send(send: Send, status: int, content_type: str, body: bytes) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
