"""Resources: stored chats, completions and research reports, as markdown; argument
completion for their ids; subscriptions to research jobs."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp_types import Completion as Suggestions
from mcp_types import (
    CompletionArgument,
    CompletionContext,
    EmptyResult,
    PromptReference,
    ResourceTemplateReference,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

from ..apex import models as m
from ..apex.errors import ApexError, Code
from .conversation import (
    chats_page,
    read_chat,
    read_completion,
    research_job_ids,
    research_states,
)
from .inventory import Offer, Selection, Toolset, declare
from .state import HANDLING, AppState, follow_or_refuse, research_uri
from .views import chats_index, completion_markdown, report_markdown, transcript

if TYPE_CHECKING:
    from mcp.server import MCPServer, ServerRequestContext

MAX_COMPLETIONS = 100

Reader = Callable[..., Coroutine[Any, Any, str]]


def resource(toolset: Toolset, uri: str, *, name: str, title: str) -> Callable[[Reader], Reader]:
    """Declare a resource (a template if ``uri`` has parameters); they all only read."""

    def add(fn: Reader) -> Reader:
        def install(mcp: MCPServer[AppState]) -> None:
            mcp.resource(uri, name=name, title=title, mime_type="text/markdown")(fn)

        declare(Offer("template" if "{" in uri else "resource", uri, toolset), install)
        return fn

    return add


def _state() -> AppState:
    """The running state, for a static resource's reader (the SDK gives it no context)."""
    request = HANDLING.get()
    if request is None:
        raise RuntimeError("a resource read outside any request")
    state: AppState = request.lifespan_context
    return state


# A read costs the same however many chats there are: the index shows the newest, the
# list_chats tool pages through the rest, and completion offers ids of the newest.
INDEX_CHATS = 100
COMPLETION_CHATS = 1000


@resource("history", "apex://chats", name="chats", title="Stored chats")
async def chats() -> str:
    """The newest stored chats (up to 100), with their ids."""
    with _errors("apex://chats"):
        newest = await chats_page(await _state().apex(), None, None, INDEX_CHATS)
    return chats_index(newest.chats, more=newest.next_cursor is not None)


@resource("history", "apex://chats/{chat_id}", name="chat", title="A stored chat")
async def chat(chat_id: str, ctx: Context[AppState]) -> str:
    """A stored chat's transcript."""
    with _errors(f"apex://chats/{chat_id}"):
        client = await ctx.request_context.lifespan_context.apex()
        stored = await read_chat(client, chat_id)
        states = await research_states(client, stored.completions)
    return transcript(stored.chat, stored.completions, states=states) + "\n"


@resource(
    "history", "apex://completions/{completion_id}", name="completion", title="A stored completion"
)
async def completion(completion_id: str, ctx: Context[AppState]) -> str:
    """One prompt and its answer."""
    with _errors(f"apex://completions/{completion_id}"):
        client = await ctx.request_context.lifespan_context.apex()
        got = await read_completion(client, completion_id)
        states = await research_states(client, [got])
    return completion_markdown(got, states.get(got.id)) + "\n"


@resource("research", "apex://research/{job_id}", name="research", title="A deep research report")
async def research(job_id: str, ctx: Context[AppState]) -> str:
    """A deep research job: its report so far (subscribe to hear of each step)."""
    with _errors(research_uri(job_id)):
        client = await ctx.request_context.lifespan_context.apex()
        job = await client.get_deep_researcher_job(m.GetDeepResearcherJobRequest(job_id=job_id))
    return report_markdown(job)


def register(mcp: MCPServer[AppState], selection: Selection, served: list[Offer]) -> None:
    """Add what serves the resources and prompts ``served``: subscriptions, when a resource
    is served, and completion of their ids."""
    if any(offer.kind in ("resource", "template") for offer in served):
        _subscriptions(mcp)
    if not any(offer.kind in ("template", "prompt") for offer in served):
        return
    names = {offer.name for offer in served}

    @mcp.completion()  # type: ignore[no-untyped-call, untyped-decorator]  # the SDK's is untyped
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Suggestions:
        values = await _candidates(_state(), ref, argument.name, names)
        matches = [v for v in values if v.startswith(argument.value)]
        return Suggestions(
            values=matches[:MAX_COMPLETIONS],
            total=len(matches),
            has_more=len(matches) > MAX_COMPLETIONS,
        )


def _subscriptions(mcp: MCPServer[AppState]) -> None:
    lowlevel = mcp._lowlevel_server  # MCPServer has no public hook for these (mcp 2.3)

    async def subscribe(
        ctx: ServerRequestContext[AppState], params: SubscribeRequestParams
    ) -> EmptyResult:
        state = ctx.lifespan_context
        uri = str(params.uri)
        await follow_or_refuse(state, uri)  # first: another's job is not subscribed to
        state.subscribe(uri, ctx.session)
        return EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[AppState], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        ctx.lifespan_context.unsubscribe(str(params.uri), ctx.session)
        return EmptyResult()

    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


async def _candidates(
    state: AppState,
    ref: PromptReference | ResourceTemplateReference,
    argument: str,
    served: set[str],
) -> list[str]:
    """The ids that fit the argument being completed, for what this server serves."""
    target = ref.uri if isinstance(ref, ResourceTemplateReference) else ref.name
    if target not in served:
        return []
    wants_chat = target == "apex://chats/{chat_id}" or (
        target == "continue_chat" and argument == "chat_id"
    )
    try:
        client = await state.apex()
        if wants_chat:
            newest = await chats_page(client, None, None, COMPLETION_CHATS)
            return [c.id for c in newest.chats]
        if target == "apex://research/{job_id}":
            return await research_job_ids(client)
    except ApexError:
        return []  # completion is a convenience: no suggestions rather than an error
    return []


@contextmanager
def _errors(uri: str) -> Iterator[None]:
    """An ApexError reading a resource: not found stays not found, the rest say what failed."""
    try:
        yield
    except ApexError as error:
        if error.code in (Code.NOT_FOUND, Code.INVALID_ARGUMENT):
            raise ResourceNotFoundError(f"{uri}: {error.message}") from None
        raise ResourceError(f"{uri}: {error.explain()}") from None
