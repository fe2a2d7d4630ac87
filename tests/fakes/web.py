"""A fake piece of the web: HTML pages served for real, and fake search engines pointing at them.

    web = FakeWeb(ARTICLE_PAGES | {"/gone": Page(b"...", status=404)})
    with serve_web(web) as base:              # http://127.0.0.1:<port>
        search = FakeSearch(hits=[hit(base, "/bees")])
        ...
        web.requests                          # (path, headers) of each request, in order

- ``FakeWeb`` answers ``GET <path>`` with the ``Page`` registered at that path (a trailing
  slash and the query string are ignored), 404 for anything else. A page can be slow
  (``delay``; it gives up early when the client goes away), redirect (``location``), be sent
  in pieces without a length (``chunked``), and have any status and content type.
- ``FakeSearch`` is a ``SearchProvider`` in-process: it answers every query with ``hits`` (a
  list, or a function of the query), after ``delay``, or raises ``error``; ``queries`` lists
  what it was asked.
- ``FakeSearxng`` is a SearXNG instance over HTTP: ``GET /search?q=...&format=json``.

The articles are real-looking pages: the article amid navigation, a cookie banner, ads, a
"most read" box, a newsletter form and a footer. ``BOILERPLATE`` lists strings of that clutter,
none of which may reach an extracted text.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import anyio

from apex_mcp.engine.search import SearchHit
from tests.fakes import answer_lifespan
from tests.servers import serve_asgi

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


# --- pages ------------------------------------------------------------------------------------


@dataclass
class Article:
    title: str
    paragraphs: list[str]
    headings: dict[int, str] = field(default_factory=dict)  # a heading before paragraph i


BEES = Article(
    "How honeybees share the way to flowers",
    [
        "Honeybees live in colonies of up to sixty thousand workers, a single queen and a few "
        "hundred drones. The workers are all female, and over a summer of about six weeks each "
        "of them moves through a series of jobs: cleaning cells, feeding larvae, building wax "
        "comb, guarding the entrance and, at the end of her life, flying out to forage.",
        "A forager that has found a rich patch of flowers tells her sisters where it is with the "
        "waggle dance. On the vertical comb she runs a straight line while shaking her abdomen, "
        "then loops back and repeats it. The angle of that run from the vertical gives the "
        "direction of the food relative to the sun, and the length of the waggle gives its "
        "distance: about one second of waggling for every kilometre of flight.",
        "The wax that the colony builds with comes from eight glands on the underside of young "
        "workers. Producing it is costly: a colony burns several kilograms of honey for each "
        "kilogram of wax, which is why beekeepers return empty combs to the hive after harvest.",
        "Honey itself is nectar that has been concentrated and changed. Workers add enzymes that "
        "split sucrose into simpler sugars, then fan their wings over the open cells until the "
        "water content falls below about eighteen percent, when the cell is capped with wax.",
        "In winter the colony does not hibernate. The bees form a tight cluster around the queen "
        "and shiver their flight muscles to keep its core warm, slowly eating the stored honey. "
        "A strong colony needs twenty kilograms or more of it to survive until spring.",
    ],
    {1: "The waggle dance"},
)

TIDES = Article(
    "Why the sea rises and falls twice a day",
    [
        "Anyone who has spent a day at the coast has watched the water creep up the beach and "
        "retreat again. Sailors, fishers and harbour masters have planned around this rhythm "
        "for thousands of years, long before anyone could say what drove it.",
        "Tides are caused mainly by the gravity of the Moon. The Moon pulls hardest on the side "
        "of the Earth facing it and least on the far side, so the oceans bulge out in two places "
        "at once. As the Earth turns beneath these two bulges, most coasts see two high tides "
        "and two low tides in a little over twenty-four hours.",
        "The Sun adds a smaller pull of its own. When Sun and Moon line up, at new and full "
        "moon, their effects add and the range between high and low water is largest: these are "
        "spring tides. A week later, at the quarter moons, the pulls partly cancel and the "
        "neap tides follow.",
        "The shape of a coast matters as much as the sky. In the Bay of Fundy in Canada the "
        "water can rise by sixteen metres, while parts of the Mediterranean barely see thirty "
        "centimetres, because the size and depth of a basin decide how strongly it resonates.",
    ],
)

SOURDOUGH = Article(
    "A beginner's guide to sourdough bread",
    [
        "Sourdough is bread raised without commercial yeast. Instead the baker keeps a starter, "
        "a paste of flour and water in which wild yeasts and lactic acid bacteria live together "
        "and which is refreshed with new flour and water every day or two.",
        "The bacteria produce lactic and acetic acids, which give the bread its tang and help it "
        "keep for longer, while the yeasts produce the carbon dioxide that makes the dough rise. "
        "Because wild yeasts work slowly, a sourdough loaf often takes a whole day to make.",
        "A typical loaf uses five hundred grams of flour, three hundred and fifty grams of "
        "water, a hundred grams of active starter and ten grams of salt. The dough is folded a "
        "few times over several hours, shaped, left to rise overnight in the fridge and baked "
        "in a very hot covered pot.",
        "Beginners most often go wrong with a starter that is not yet strong enough. A healthy "
        "starter doubles in size within six to eight hours of a feed and smells pleasantly sour; "
        "until it does that reliably, it is better to keep feeding it than to bake.",
    ],
)

LIGHTHOUSES = Article(
    "The quiet end of the lighthouse keeper",
    [
        "For more than two centuries lighthouses were tended by keepers who lived at the foot "
        "of the tower, often with their families. They trimmed wicks, wound the clockwork that "
        "turned the lens, polished the brass and kept a log of every passing ship and storm.",
        "The great change came with the Fresnel lens, invented in France in 1822. By arranging "
        "rings of prisms around a single lamp it could throw a beam more than twenty miles out "
        "to sea, and within a few decades it had been fitted to lighthouses around the world.",
        "Electrification and then automation made the keepers unnecessary. Britain's last "
        "manned lighthouse, North Foreland in Kent, was automated in 1998, and today most "
        "lights are monitored remotely and visited only for maintenance.",
        "Many keepers' cottages have since become holiday lets or small museums, where visitors "
        "can climb the spiral stairs and see the lamp rooms that once had to be lit by hand "
        "every evening at sunset.",
    ],
)

VOLCANOES = Article(
    "What happens inside a volcano before it erupts",
    [
        "A volcano is an opening in the crust through which molten rock, gas and ash escape. "
        "Beneath most of them lies a magma chamber a few kilometres down, a region of partly "
        "molten rock that slowly fills from deeper in the mantle.",
        "As fresh magma arrives, the pressure in the chamber rises and the ground above it "
        "swells by a few centimetres, which satellites and tiltmeters can measure. Small "
        "earthquakes become more frequent as the rock around the chamber cracks.",
        "Gas is the engine of an eruption. Magma holds water and carbon dioxide dissolved under "
        "pressure; as it rises the pressure drops and the gas comes out of solution like the "
        "bubbles in an opened bottle, and in sticky magma it can shatter the rock into ash.",
        "Volcanologists combine these signs, swelling ground, swarms of earthquakes and changes "
        "in the gases at the surface, to warn people nearby, although the exact hour of an "
        "eruption still cannot be predicted.",
    ],
)

ARTICLES = {
    "bees": BEES,
    "tides": TIDES,
    "sourdough": SOURDOUGH,
    "lighthouses": LIGHTHOUSES,
    "volcanoes": VOLCANOES,
}

# The clutter around every article; none of it may reach an extracted text.
BOILERPLATE = (
    "Accept all cookies",
    "SuperPhone X",
    "Sign up for our newsletter",
    "Most read this week",
    "© 2024 ACME Media Group",
    "Subscribe for £1",
)


def article_html(article: Article, *, site: str = "ACME Daily", padding: int = 0) -> str:
    """A page as news sites build them, with ``article`` somewhere inside. ``padding`` adds
    that many more links to the menus and the "most read" box, to make a page realistically
    heavy."""
    esc = html.escape
    body = []
    for i, text in enumerate(article.paragraphs):
        if i in article.headings:
            body.append(f"<h2>{esc(article.headings[i])}</h2>")
        body.append(f"<p>{esc(text)}</p>")
    menu = "".join(f'<li><a href="/section/{i}">Section {i}</a></li>' for i in range(padding))
    most_read = "".join(
        f'<li><a href="/story/{i}">Story number {i} that everyone is reading</a></li>'
        for i in range(padding)
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(article.title)} | {esc(site)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}
gtag('js', new Date()); gtag('config', 'G-FAKE');</script>
<style>body {{ font-family: sans-serif; }} .ad {{ border: 1px solid #ccc; }}</style>
</head>
<body>
<div id="cookie-banner" class="cookie-consent">
  <p>We value your privacy. We and our 143 partners use cookies to personalise content and ads.</p>
  <button>Accept all cookies</button> <button>Manage options</button>
</div>
<header class="site-header">
  <a class="logo" href="/">{esc(site)}</a>
  <nav class="main-nav"><ul>
    <li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li>
    <li><a href="/weather">Weather</a></li><li><a href="/culture">Culture</a></li>
    <li><a href="/subscribe">Subscribe for £1</a></li>{menu}
  </ul></nav>
</header>
<div class="ad ad-leaderboard">Advertisement: the SuperPhone X, now only $99. Buy today!</div>
<main>
<article>
<h1>{esc(article.title)}</h1>
<p class="byline">By Jane Writer, science correspondent</p>
{"".join(body)}
</article>
<aside class="sidebar">
  <h3>Most read this week</h3>
  <ol>
    <li><a href="/a">Ten gadgets you need this summer</a></li>
    <li><a href="/b">Celebrity chef opens new restaurant</a></li>{most_read}
  </ol>
  <div class="ad ad-box">Sponsored: the SuperPhone X camera sees in the dark.</div>
</aside>
</main>
<section class="newsletter">
  <h3>Sign up for our newsletter</h3>
  <form><input type="email" placeholder="Your email"><button>Sign up</button></form>
</section>
<footer class="site-footer">
  <p>© 2024 ACME Media Group. All rights reserved.</p>
  <p><a href="/privacy">Privacy</a> · <a href="/terms">Terms</a></p>
</footer>
</body>
</html>
"""


JS_SHELL = """<!DOCTYPE html><html><head><title>Loading</title></head>
<body><div id="root"></div><noscript>Please enable JavaScript to continue.</noscript>
<script src="/app.js"></script></body></html>"""

ERROR_PAGE = """<!DOCTYPE html><html><head><title>Page not found</title></head><body>
<h1>Page not found</h1><p>Sorry, the page you were looking for does not exist. It may have
been moved or deleted. Try the search box above or go back to the home page, where you can find
our latest stories, the weather and the sport results, all updated every hour of the day.</p>
</body></html>"""


@dataclass
class Page:
    body: bytes | str
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    delay: float = 0.0  # seconds before the answer; ends early when the client goes away
    location: str | None = None  # a redirect's target
    chunked: bool = False  # sent in pieces, without content-length

    @classmethod
    def article(cls, article: Article, **fields: Any) -> Page:
        return cls(article_html(article), **fields)

    @classmethod
    def redirect(cls, location: str, status: int = 301) -> Page:
        return cls(b"", status=status, location=location)


def article_pages() -> dict[str, Page]:
    """Every article at ``/<name>``."""
    return {f"/{name}": Page.article(article) for name, article in ARTICLES.items()}


@dataclass
class Request:
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class FakeWeb:
    pages: dict[str, Page] = field(default_factory=article_pages)
    requests: list[Request] = field(default_factory=list)
    base: str = ""  # set while served: http://127.0.0.1:<port>

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def hits_for(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path.rstrip("/") == path.rstrip("/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"].rstrip("/") or "/"
        self.requests.append(Request(path, scope["query_string"].decode("latin-1"), headers))
        page = self.pages.get(path)
        if page is None:
            await _send(send, 404, "text/html", ERROR_PAGE.encode())
            return
        if page.delay and await _client_left_within(receive, page.delay):
            return
        body = page.body.encode() if isinstance(page.body, str) else page.body
        extra = [(b"location", page.location.encode())] if page.location else []
        if not page.chunked:
            await _send(send, page.status, page.content_type, body, extra)
            return
        start = {"type": "http.response.start", "status": page.status}
        start["headers"] = [(b"content-type", page.content_type.encode()), *extra]
        await send(start)
        for i in range(0, len(body), 16_384):
            piece = body[i : i + 16_384]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


@contextmanager
def serve_web(web: FakeWeb) -> Iterator[str]:
    """Serve ``web`` on 127.0.0.1; yields its base URL (no trailing slash)."""
    with serve_asgi(web) as url:
        web.base = url
        yield url


# --- search engines ---------------------------------------------------------------------------


def hit(base: str, path: str, title: str = "") -> SearchHit:
    return SearchHit(url=f"{base}{path}", title=title or path.strip("/"), snippet="")


Hits = list[SearchHit] | Callable[[str], list[SearchHit]]


@dataclass
class FakeSearch:
    """A ``SearchProvider`` in-process."""

    hits: Hits = field(default_factory=list)
    name: str = "fake"
    delay: float = 0.0
    error: Exception | None = None
    queries: list[str] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)  # the max_results asked for

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        self.queries.append(query)
        self.limits.append(max_results)
        if self.delay:
            await anyio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        hits = self.hits(query) if callable(self.hits) else self.hits
        return list(hits[:max_results])


@dataclass
class FakeSearxng:
    """A SearXNG instance: ``GET /search?q=...&format=json`` answers ``hits`` as its JSON.

    ``status`` other than 200 answers that instead (SearXNG says 403 when JSON is disabled).
    """

    hits: list[SearchHit] = field(default_factory=list)
    status: int = 200
    retry_after: str | None = None  # sent with a status other than 200
    statuses: list[int] = field(default_factory=list)  # answered first, one per query
    times: list[float] = field(default_factory=list)  # time.monotonic() of each query
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        params = parse_qs(scope["query_string"].decode())
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"] != "/search":
            await _send(send, 404, "text/plain", b"not found")
            return
        self.queries.append(params)
        self.times.append(time.monotonic())
        self.user_agents.append(headers.get("user-agent", ""))
        status = self.statuses.pop(0) if self.statuses else self.status
        if status != 200:
            extra = [(b"retry-after", self.retry_after.encode())] if self.retry_after else []
            await _send(send, status, "text/html", b"<h1>Forbidden</h1>", extra)
            return
        query = params.get("q", [""])[0]
        results = [
            {
                "url": h.url,
                "title": h.title,
                "content": h.snippet,
                "engine": "fake",
                "engines": ["fake"],
                "score": 1.0 / (i + 1),
                "category": "general",
            }
            for i, h in enumerate(self.hits)
        ]
        data = {
            "query": query,
            "number_of_results": len(results),
            "results": results,
            "answers": [],
            "corrections": [],
            "infoboxes": [],
            "suggestions": [],
            "unresponsive_engines": [],
        }
        await _send(send, 200, "application/json", json.dumps(data).encode())


@contextmanager
def serve_searxng(fake: FakeSearxng) -> Iterator[str]:
    with serve_asgi(fake) as url:
        yield url


# --- ASGI helpers -----------------------------------------------------------------------------


async def _send(
    send: Send,
    status: int,
    content_type: str,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _client_left_within(receive: Receive, seconds: float) -> bool:
    """Wait ``seconds``; True if the client went away first."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), seconds)
    except TimeoutError:
        return False
    return True


@dataclass
class FakeSearchApi:
    """A keyed search API as documented: Brave (``GET /res/v1/web/search``, key in
    ``X-Subscription-Token``, hits in ``web.results`` with ``description``), Tavily (``POST
    /search``, ``Authorization: Bearer``, hits in ``results`` with ``content``) or Exa (``POST
    /search``, ``x-api-key``, hits in ``results`` with ``text``). A request without the key
    gets 401; ``statuses`` are answered first, one per request (429 with ``retry_after``)."""

    kind: str  # brave, tavily, exa
    key: str
    hits: list[SearchHit] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    retry_after: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)  # what each request said
    times: list[float] = field(default_factory=list)  # time.monotonic() of each request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        method, path = (
            ("GET", "/res/v1/web/search") if self.kind == "brave" else ("POST", "/search")
        )
        if (scope["method"], scope["path"]) != (method, path):
            await _send(send, 404, "application/json", b'{"error": "not found"}')
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.times.append(time.monotonic())
        self.requests.append(
            {
                "headers": headers,
                "params": parse_qs(scope["query_string"].decode()),
                "json": json.loads(body) if body else None,
            }
        )
        given = {
            "brave": headers.get("x-subscription-token"),
            "tavily": headers.get("authorization", "").removeprefix("Bearer "),
            "exa": headers.get("x-api-key"),
        }[self.kind]
        if given != self.key:
            await _send(send, 401, "application/json", b'{"error": "invalid API key"}')
            return
        status = self.statuses.pop(0) if self.statuses else 200
        if status != 200:
            extra = [(b"retry-after", self.retry_after.encode())] if self.retry_after else []
            await _send(send, status, "application/json", b'{"error": "rate limited"}', extra)
            return
        await _send(send, 200, "application/json", json.dumps(self.answer()).encode())

    def answer(self) -> dict[str, Any]:
        if self.kind == "brave":
            rows = [
                {"title": h.title, "url": h.url, "description": h.snippet, "type": "search_result"}
                for h in self.hits
            ]
            return {
                "type": "search",
                "query": {"original": "q"},
                "web": {"type": "search", "results": rows},
            }
        if self.kind == "tavily":
            rows = [
                {"title": h.title, "url": h.url, "content": h.snippet, "score": 0.9}
                for h in self.hits
            ]
            return {"query": "q", "results": rows, "response_time": 0.5}
        rows = [
            {"id": h.url, "title": h.title, "url": h.url, "publishedDate": None, "text": h.snippet}
            for h in self.hits
        ]
        return {"requestId": "r1", "resolvedSearchType": "neural", "results": rows}
