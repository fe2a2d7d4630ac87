"""Resources: stored chats, completions and research reports, as markdown; argument
completion for their ids; subscriptions to research jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp_types import (
    CompleteRequestParams,
    CompleteResult,
    Completion,
    EmptyResult,
    PromptReference,
    ResourceTemplateReference,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

from ..apex import models as m
from ..apex.errors import ApexError, Code
from .outputs import Chat
from .outputs import Completion as CompletionOut
from .state import AppState, research_uri
from .tools.history import completion_markdown, find_chat, research_states, transcript
from .tools.research import report_markdown

if TYPE_CHECKING:
    from mcp.server import MCPServer, ServerRequestContext

MAX_COMPLETIONS = 100


def register(mcp: MCPServer[AppState], current: Callable[[], AppState]) -> None:
    """Add the resources. ``current`` gives the running state to handlers that get no context."""

    @mcp.resource("apex://chats", name="chats", title="Stored chats", mime_type="text/markdown")
    async def chats() -> str:
        """Every stored chat, newest first, with its id."""
        with _errors("apex://chats"):
            client = await current().apex()
            listed = await client.get_chat_sessions(m.GetChatSessionsRequest())
        lines = [
            f"- [{c.title or 'Untitled'}](apex://chats/{c.id}) · {c.chat_type}"
            for c in listed.chat_sessions
        ]
        return "# Stored chats\n\n" + ("\n".join(lines) or "_none yet_") + "\n"

    @mcp.resource(
        "apex://chats/{chat_id}", name="chat", title="A stored chat", mime_type="text/markdown"
    )
    async def chat(chat_id: str, ctx: Context[AppState]) -> str:
        """A stored chat's transcript."""
        with _errors(f"apex://chats/{chat_id}"):
            client = await ctx.request_context.lifespan_context.apex()
            found = await find_chat(client, chat_id)
            stored = await client.get_stored_chat_completions(
                m.GetStoredChatCompletionsRequest(chat_id=chat_id)
            )
            completions = [CompletionOut.of(c) for c in stored.chat_completions]
            states = await research_states(client, completions)
        return transcript(Chat.of(found), completions, states=states) + "\n"

    @mcp.resource(
        "apex://completions/{completion_id}",
        name="completion",
        title="A stored completion",
        mime_type="text/markdown",
    )
    async def completion(completion_id: str, ctx: Context[AppState]) -> str:
        """One prompt and its answer."""
        with _errors(f"apex://completions/{completion_id}"):
            client = await ctx.request_context.lifespan_context.apex()
            got = CompletionOut.of(
                await client.get_chat_completion(
                    m.GetChatCompletionRequest(completion_id=completion_id)
                )
            )
            states = await research_states(client, [got])
        return completion_markdown(got, states.get(got.id)) + "\n"

    @mcp.resource(
        "apex://research/{job_id}",
        name="research",
        title="A deep research report",
        mime_type="text/markdown",
    )
    async def research(job_id: str, ctx: Context[AppState]) -> str:
        """A deep research job: its report so far (subscribe to hear of each step)."""
        with _errors(research_uri(job_id)):
            client = await ctx.request_context.lifespan_context.apex()
            job = await client.get_deep_researcher_job(m.GetDeepResearcherJobRequest(job_id=job_id))
        return report_markdown(job)

    lowlevel = mcp._lowlevel_server  # no public hook for these in mcp 2.3

    async def subscribe(
        ctx: ServerRequestContext[AppState], params: SubscribeRequestParams
    ) -> EmptyResult:
        state = ctx.lifespan_context
        uri = str(params.uri)
        state.subscribe(uri, ctx.session)
        await state.follow(uri)
        return EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[AppState], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        ctx.lifespan_context.unsubscribe(str(params.uri), ctx.session)
        return EmptyResult()

    async def complete(
        ctx: ServerRequestContext[AppState], params: CompleteRequestParams
    ) -> CompleteResult:
        values = await _candidates(ctx.lifespan_context, params)
        prefix = params.argument.value
        matches = [v for v in values if v.startswith(prefix)]
        return CompleteResult(
            completion=Completion(
                values=matches[:100], total=len(matches), has_more=len(matches) > 100
            )
        )

    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("completion/complete", CompleteRequestParams, complete)


async def _candidates(state: AppState, params: CompleteRequestParams) -> list[str]:
    """The ids that fit the argument being completed."""
    ref, name = params.ref, params.argument.name
    wants_chat = (
        isinstance(ref, ResourceTemplateReference) and ref.uri == "apex://chats/{chat_id}"
    ) or (isinstance(ref, PromptReference) and ref.name == "continue_chat" and name == "chat_id")
    try:
        client = await state.apex()
        if wants_chat:
            listed = await client.get_chat_sessions(m.GetChatSessionsRequest())
            return [c.id for c in listed.chat_sessions]
        if isinstance(ref, ResourceTemplateReference) and ref.uri == "apex://research/{job_id}":
            research = await client.get_completions_with_deep_researcher_entry(m.Empty())
            jobs = [
                (c.metadata or {}).get("deep-researcher", {}).get("jobId")
                for c in research.completions
            ]
            return [j for j in jobs if isinstance(j, str)]
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
