"""LocalApex: the Apex service in-process, for one user, over the store and the miners."""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from ..apex.client import (
    ApexClient,
    CancelsResearch,
    HearsResearch,
    PagesChats,
    RecordsChats,
    WaitForNews,
)
from ..apex.errors import ApexError, Code, invalid_argument
from ..apex.models import (
    ChatCompletionChunkResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatPage,
    ChatSession,
    CreateChatAndCompletionRequest,
    CreateChatAndCompletionResponse,
    CreateCompletionRequest,
    CreateCompletionResponse,
    DeleteChatsRequest,
    DeleteChatsResponse,
    DeleteCompletionsRequest,
    DeleteCompletionsResponse,
    Empty,
    GetChatCompletionRequest,
    GetChatSessionsRequest,
    GetChatSessionsResponse,
    GetCompletionsWithDeepResearcherEntryResponse,
    GetDeepResearcherJobRequest,
    GetDeepResearcherJobResponse,
    GetStoredChatCompletionsRequest,
    GetStoredChatCompletionsResponse,
    SearchChatIdsByPromptAndCompletionTextRequest,
    SearchChatIdsByPromptAndCompletionTextResponse,
    SearchFilters,
    StoredChatCompletion,
    SubmitDeepResearcherJobResponse,
    UpdateChatAttributesRequest,
    UpdateChatAttributesResponse,
    UpdateCompletionAttributesRequest,
    UpdateCompletionAttributesResponse,
    WebRetrievalRequest,
    WebRetrievalResponse,
)
from .config import DEFAULT_USER, EngineConfig, MinerSet

if TYPE_CHECKING:
    import httpx2

    from .jobs import ResearchRunner
    from .miners import MinerPool
    from .researcher import Retriever
    from .store import Store

# The runner, the miners and the store load where first used: the MCP server imports this
# module at start-up to learn what LocalApex can do (server/inventory.py), and must not pay
# for SQLite, the HTTP clients and the researcher then.

CHAT_TYPES = ("apex", "gravity")
COMPLETION_TYPES = ("basic", "combined", "web-search", "chain-of-thought", "reasoning")
CHAT_ATTRIBUTES = {"title": "title", "chat_type": "chat_type", "chatType": "chat_type"}
# Far beyond any open model's context window; a larger prompt is a mistake, not a request.
MAX_PROMPT_CHARS = 1_000_000
MAX_TITLE_CHARS = 200
MAX_SEARCH_CHARS = 1000
MAX_IDS = 1000
CHAT_TIMEOUT_RANGE = (60, 300)  # seconds, as the hosted service clamped a request's timeout
MAX_MINER_SETS = 1024  # sessions' miner sets held at once; the least recently used are let go


class LocalApex:
    """The embedded Apex engine, seen by one user. ``for_user`` gives another user's view,
    ``with_miners`` one that answers with other miners, ``for_session`` a hosted session's.

    It owns nothing but borrows the store and the miner pool; ``open`` makes and closes them.
    """

    def __init__(
        self,
        store: Store,
        miners: MinerPool,
        *,
        user_id: str,
        retriever: Retriever | None = None,
        research: ResearchRunner | None = None,
    ) -> None:
        self.store = store
        self.miners = miners
        self.user_id = user_id
        self.retriever = retriever
        self.research = research  # runs deep-research jobs; shared by every user's view
        self.miner_set: str | None = None  # the name of ``miners`` when not the engine's own
        # Sessions' miner sets by name, least recently used first: shared by every view.
        self._session_pools: OrderedDict[str, MinerPool] = OrderedDict()

    def __repr__(self) -> str:
        return f"LocalApex(user_id={self.user_id!r})"

    def for_user(self, user_id: str) -> LocalApex:
        view = copy.copy(self)
        view.user_id = user_id
        return view

    def with_miners(self, name: str, miners: MinerPool) -> LocalApex:
        """A view that chats and researches with ``miners``, known to the research runner as
        ``name`` (only the name is stored with a job, never what the miners hold)."""
        view = copy.copy(self)
        view.miners, view.miner_set = miners, name
        if self.research is not None:
            self.research.use_miners(name, miners)
        return view

    async def for_session(
        self,
        user_id: str,
        miners: MinerSet | None = None,
        *,
        http: httpx2.AsyncClient | None = None,
        admit: Callable[[MinerSet], Awaitable[None]] | None = None,
    ) -> LocalApex:
        """The view of a hosted session: ``user_id``'s, answering with the session's own
        ``miners`` when it brings some.

        Those become a pool on ``http`` (else the engine's HTTP client), made once per set
        name and vetted first by ``admit``; the research runner knows it by that name. The
        engine holds ``MAX_MINER_SETS`` sets and lets go of the one used longest ago: its
        running jobs keep their miners, its pending ones wait for its session to come back,
        as after a restart.
        """
        view = self.for_user(user_id)
        if miners is None:
            return view
        pools = self._session_pools
        pool = pools.get(miners.name)
        if pool is None:
            if admit is not None:
                await admit(miners)
            pool = pools[miners.name] = self.miners.sibling(miners.miners, http=http)
            if len(pools) > MAX_MINER_SETS:
                forgotten, _ = pools.popitem(last=False)
                if self.research is not None:
                    self.research.forget_miners(forgotten)
        pools.move_to_end(miners.name)
        return view.with_miners(miners.name, pool)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, config: EngineConfig, *, user_id: str | None = None
    ) -> AsyncIterator[LocalApex]:
        """The engine ``config`` describes, running until the block ends."""
        from .jobs import ResearchRunner
        from .miners import MinerPool
        from .retrieval import WebRetriever
        from .search import build_providers
        from .store import open_store

        store = await open_store(config.db)
        try:
            async with (
                MinerPool(
                    config.miners,
                    discover_local=config.discover_local_miners,
                    calls_per_user=config.miner_calls_per_user,
                    queue_seconds=config.miner_queue_seconds,
                ) as miners,
                WebRetriever(
                    build_providers(
                        config.search_provider,
                        config.searxng_url,
                        requests_per_second=config.search_requests_per_second,
                        api_keys=config.search_api_keys,
                    ),
                    allow_private_addresses=config.allow_private_addresses,
                    ranking=config.search_ranking,
                    cache=store,
                    cache_seconds=config.search_cache_seconds,
                    cache_pages=config.search_cache_pages,
                ) as retriever,
                # Inside the others: jobs stop (and say so in the store) before what they use.
                ResearchRunner(store, miners, retriever, config.research) as research,
            ):
                yield cls(
                    store,
                    miners,
                    user_id=user_id or DEFAULT_USER,
                    retriever=retriever,
                    research=research,
                )
        finally:
            await store.close()

    # --- chat -------------------------------------------------------------------------------

    async def chat_completion(
        self, request: ChatCompletionRequest, *, timeout: float | None = None
    ) -> ChatCompletionResponse:
        _check_chat_request(request)
        limit = answer_time_limit(request)
        with anyio.move_on_after(limit):
            return await self.miners.complete(request, user=self.user_id)
        raise _out_of_time(limit)

    async def chat_completion_stream(
        self, request: ChatCompletionRequest, *, timeout: float | None = None
    ) -> AsyncIterator[ChatCompletionChunkResponse]:
        _check_chat_request(request)
        limit = answer_time_limit(request)
        end = anyio.current_time() + limit
        # The deadline spans the whole answer; a cancel scope must not span a yield.
        async with aclosing(self.miners.stream(request, user=self.user_id)) as chunks:
            while True:
                with anyio.move_on_after(end - anyio.current_time()) as deadline:
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return
                if deadline.cancelled_caught:
                    raise _out_of_time(limit)
                yield chunk

    # --- retrieval and research (the engine's part 2) ----------------------------------------

    async def web_retrieval(
        self, request: WebRetrievalRequest, *, timeout: float | None = None
    ) -> WebRetrievalResponse:
        if self.retriever is None:
            raise _not_built("web retrieval")
        return await self.retriever.retrieve(request)

    async def web_retrieval_filtered(
        self, request: WebRetrievalRequest, filters: SearchFilters
    ) -> WebRetrievalResponse:
        if self.retriever is None:
            raise _not_built("web retrieval")
        return await self.retriever.retrieve(request, filters=filters)

    async def submit_deep_researcher_job(
        self, request: ChatCompletionRequest, *, timeout: float | None = None
    ) -> SubmitDeepResearcherJobResponse:
        _check_chat_request(request)
        from .jobs import submit_response

        job = await self._research().submit(self.user_id, request, miners=self.miner_set)
        return submit_response(job)

    async def submit_deep_researcher_job_filtered(
        self, request: ChatCompletionRequest, filters: SearchFilters
    ) -> SubmitDeepResearcherJobResponse:
        """A research job whose searches keep to ``filters`` (beyond apex.v1)."""
        _check_chat_request(request)
        from .jobs import submit_response

        job = await self._research().submit(
            self.user_id, request, miners=self.miner_set, filters=filters
        )
        return submit_response(job)

    async def get_deep_researcher_job(
        self, request: GetDeepResearcherJobRequest, *, timeout: float | None = None
    ) -> GetDeepResearcherJobResponse:
        from .jobs import job_response

        return job_response(await self._research().get(self.user_id, request.job_id))

    def research_news(self, job_id: str) -> AbstractAsyncContextManager[WaitForNews]:
        """A job's news, as the store hears it: at once for a change this process makes, and
        on PostgreSQL for any replica's (see ``HearsResearch``)."""
        return self.store.job_news(job_id)

    async def cancel_deep_researcher_job(self, job_id: str) -> GetDeepResearcherJobResponse:
        """Cancel one of the user's pending or running jobs (not part of apex.v1)."""
        from .jobs import job_response

        return job_response(await self._research().cancel(self.user_id, job_id))

    def _research(self) -> ResearchRunner:
        if self.research is None:
            raise _not_built("deep research")
        return self.research

    # --- stored chats and completions --------------------------------------------------------

    async def get_chat_sessions(
        self, request: GetChatSessionsRequest, *, timeout: float | None = None
    ) -> GetChatSessionsResponse:
        chat_type = _optional_choice("chat_type", request.chat_type, CHAT_TYPES)
        sessions = await self.store.list_chats(self.user_id, chat_type)
        return GetChatSessionsResponse(chat_sessions=sessions)

    async def get_stored_chat_completions(
        self, request: GetStoredChatCompletionsRequest, *, timeout: float | None = None
    ) -> GetStoredChatCompletionsResponse:
        completions = await self.store.list_completions(self.user_id, request.chat_id)
        return GetStoredChatCompletionsResponse(chat_completions=completions)

    async def get_chat_completion(
        self, request: GetChatCompletionRequest, *, timeout: float | None = None
    ) -> StoredChatCompletion:
        return await self.store.get_completion(self.user_id, request.completion_id)

    async def update_chat_attributes(
        self, request: UpdateChatAttributesRequest, *, timeout: float | None = None
    ) -> UpdateChatAttributesResponse:
        unknown = sorted(set(request.attributes) - set(CHAT_ATTRIBUTES))
        if unknown:
            raise invalid_argument(
                f"only title and chat_type can be updated, not {', '.join(unknown)}"
            )
        if not request.attributes:
            raise invalid_argument("attributes is empty: give a title or a chat_type to set")
        changes = {CHAT_ATTRIBUTES[k]: v for k, v in request.attributes.items()}
        title = changes.get("title")
        if title is not None:
            title = _title(title)
        chat_type = changes.get("chat_type")
        if chat_type is not None:
            chat_type = _optional_choice("chat_type", chat_type, CHAT_TYPES)
            if chat_type is None:
                raise invalid_argument(f"chat_type must be one of {', '.join(CHAT_TYPES)}")
        chat = await self.store.update_chat(
            self.user_id, request.chat_id, title=title, chat_type=chat_type
        )
        return UpdateChatAttributesResponse(chat=chat)

    async def delete_chats(
        self, request: DeleteChatsRequest, *, timeout: float | None = None
    ) -> DeleteChatsResponse:
        ids = _ids("chat_ids", request.chat_ids)
        for chat_id in ids:  # all or nothing: refuse before deleting anything
            await self.store.get_chat(self.user_id, chat_id)
        await self.store.delete_chats(self.user_id, ids)
        return DeleteChatsResponse(success=True)

    async def create_chat_and_completion(
        self, request: CreateChatAndCompletionRequest, *, timeout: float | None = None
    ) -> CreateChatAndCompletionResponse:
        return await self.create_chat_with_metadata(request, None)

    async def create_chat_with_metadata(
        self, request: CreateChatAndCompletionRequest, metadata: dict[str, Any] | None
    ) -> CreateChatAndCompletionResponse:
        """CreateChatAndCompletion whose completion starts with ``metadata``, in one write
        (not part of apex.v1)."""
        prompt = _prompt(request.user_prompt)
        chat, completion = await self.store.create_chat(
            self.user_id,
            user_prompt=prompt,
            chat_type=_choice("chat_type", request.chat_type, CHAT_TYPES, default="apex"),
            completion_type=_choice(
                "completion_type", request.completion_type, COMPLETION_TYPES, default="basic"
            ),
            title=_title(request.title) if request.title else None,  # the store titles by prompt
            metadata=metadata,
        )
        return CreateChatAndCompletionResponse(parsed_chat=chat, parsed_completion=completion)

    async def create_completion(
        self, request: CreateCompletionRequest, *, timeout: float | None = None
    ) -> CreateCompletionResponse:
        completion = await self.store.create_completion(
            self.user_id,
            request.chat_id,
            user_prompt=_prompt(request.user_prompt),
            completion_type=_choice(
                "completion_type", request.completion_type, COMPLETION_TYPES, default="basic"
            ),
        )
        return CreateCompletionResponse(parsed_completion=completion)

    async def delete_completions(
        self, request: DeleteCompletionsRequest, *, timeout: float | None = None
    ) -> DeleteCompletionsResponse:
        ids = _ids("completion_ids", request.completion_ids)
        for completion_id in ids:
            await self.store.get_completion(self.user_id, completion_id)
        await self.store.delete_completions(self.user_id, ids)
        return DeleteCompletionsResponse(success=True)

    async def search_chat_ids_by_prompt_and_completion_text(
        self,
        request: SearchChatIdsByPromptAndCompletionTextRequest,
        *,
        timeout: float | None = None,
    ) -> SearchChatIdsByPromptAndCompletionTextResponse:
        ids = await self.store.search_chat_ids(self.user_id, _search_term(request.search_term))
        return SearchChatIdsByPromptAndCompletionTextResponse(chat_ids=ids)

    async def update_completion_attributes(
        self, request: UpdateCompletionAttributesRequest, *, timeout: float | None = None
    ) -> UpdateCompletionAttributesResponse:
        if (
            request.completion_text is None
            and request.user_prompt_text is None
            and request.metadata is None
        ):
            raise invalid_argument(
                "nothing to update: give completion_text, user_prompt_text or metadata"
            )
        for name, text in (
            ("completion_text", request.completion_text),
            ("user_prompt_text", request.user_prompt_text),
        ):
            if text is not None and len(text) > MAX_PROMPT_CHARS:
                raise invalid_argument(f"{name} is over {MAX_PROMPT_CHARS:,} characters")
        completion = await self.store.update_completion(
            self.user_id,
            request.completion_id,
            completion_text=request.completion_text,
            user_prompt_text=request.user_prompt_text,
            metadata=request.metadata,
        )
        return UpdateCompletionAttributesResponse(completion=completion)

    # --- paged reads (not part of apex.v1) ---------------------------------------------------

    async def list_chats_page(
        self, *, chat_type: str | None = None, cursor: str | None = None, limit: int = 20
    ) -> ChatPage:
        chats = await self.store.list_chats_page(
            self.user_id,
            chat_type=_optional_choice("chat_type", chat_type or "", CHAT_TYPES),
            cursor=cursor,
            limit=limit,
        )
        return ChatPage(chats.chats, chats.next_cursor)

    async def get_chat(self, chat_id: str) -> ChatSession:
        return await self.store.get_chat(self.user_id, chat_id)

    async def search_chats_page(
        self, search_term: str, *, cursor: str | None = None, limit: int = 20
    ) -> ChatPage:
        found = await self.store.search_chats_page(
            self.user_id, _search_term(search_term), cursor=cursor, limit=limit
        )
        return ChatPage(found.chats, found.next_cursor)

    async def get_completions_with_deep_researcher_entry(
        self, request: Empty, *, timeout: float | None = None
    ) -> GetCompletionsWithDeepResearcherEntryResponse:
        completions = await self.store.list_deep_research_completions(self.user_id)
        return GetCompletionsWithDeepResearcherEntryResponse(completions=completions)


if TYPE_CHECKING:
    _local_is_a_client: type[ApexClient] = LocalApex
    _local_cancels_research: type[CancelsResearch] = LocalApex
    _local_hears_research: type[HearsResearch] = LocalApex
    _local_pages_chats: type[PagesChats] = LocalApex
    _local_records_chats: type[RecordsChats] = LocalApex


# --- checks ---------------------------------------------------------------------------------


def answer_time_limit(request: ChatCompletionRequest) -> float:
    """Seconds a chat answer may take: the request's ``timeout``, clamped as the hosted
    service clamped it; without one, the longest it allowed."""
    low, high = CHAT_TIMEOUT_RANGE
    return float(high if request.timeout is None else min(max(request.timeout, low), high))


def _out_of_time(limit: float) -> ApexError:
    return ApexError(
        Code.DEADLINE_EXCEEDED,
        f"no answer within the request's timeout of {limit:g} s",
        hint="ask for fewer tokens (max_new_tokens), or a larger timeout (at most "
        f"{CHAT_TIMEOUT_RANGE[1]} s)",
    )


def _check_chat_request(request: ChatCompletionRequest) -> None:
    if not request.messages:
        raise invalid_argument("messages is empty: give at least one message with role and content")
    size = sum(len(m.content) for m in request.messages)
    if size > MAX_PROMPT_CHARS:
        raise invalid_argument(
            f"the messages hold {size:,} characters, over the {MAX_PROMPT_CHARS:,} limit"
        )
    for i, message in enumerate(request.messages):
        if message.role not in ("system", "user", "assistant", "tool", "developer"):
            raise invalid_argument(
                f"messages[{i}].role is {message.role!r}: use system, user or assistant"
            )


def _prompt(text: str) -> str:
    if not text.strip():
        raise invalid_argument("user_prompt is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise invalid_argument(
            f"user_prompt is {len(text):,} characters, over the {MAX_PROMPT_CHARS:,} limit"
        )
    return text


def _search_term(term: str) -> str:
    if len(term) > MAX_SEARCH_CHARS:
        raise invalid_argument(
            f"search_term is over {MAX_SEARCH_CHARS} characters: search for less"
        )
    return term


def _title(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_TITLE_CHARS:
        raise invalid_argument(f"title is over {MAX_TITLE_CHARS} characters")
    return text


def _choice(name: str, value: str, allowed: tuple[str, ...], *, default: str) -> str:
    return _optional_choice(name, value, allowed) or default


def _optional_choice(name: str, value: str, allowed: tuple[str, ...]) -> str | None:
    """``value`` when allowed, None when empty; anything else is invalid_argument."""
    if not value:
        return None
    if value not in allowed:
        raise invalid_argument(f"{name} {value[:40]!r} is not one of {', '.join(allowed)}")
    return value


def _ids(name: str, ids: list[str]) -> list[str]:
    if not ids:
        raise invalid_argument(f"{name} is empty: give at least one id")
    if len(ids) > MAX_IDS:
        raise invalid_argument(f"{name} has {len(ids)} ids; at most {MAX_IDS} at a time")
    return list(dict.fromkeys(ids))


def _not_built(what: str) -> ApexError:
    # Only an engine assembled by hand (as some tests do) lacks these; LocalApex.open has both.
    return ApexError(Code.UNIMPLEMENTED, f"this engine was assembled without {what}")
