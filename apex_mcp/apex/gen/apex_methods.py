"""Generated from apex_mcp/apex/apex.proto by scripts/gen_proto.py: do not edit."""

from typing import NamedTuple

SERVICE = "apex.v1.ApexService"


class Method(NamedTuple):
    name: str  # the RPC's name, as on the wire
    request: str  # the request message's name in package apex.v1 (or Empty)
    response: str
    streaming: bool  # server streaming
    read_only: bool  # idempotency_level = NO_SIDE_EFFECTS: safe to retry, GET-able


METHODS = (
    Method("ChatCompletion", "ChatCompletionRequest", "ChatCompletionResponse", streaming=False, read_only=False),
    Method("ChatCompletionStream", "ChatCompletionRequest", "ChatCompletionChunkResponse", streaming=True, read_only=False),
    Method("WebRetrieval", "WebRetrievalRequest", "WebRetrievalResponse", streaming=False, read_only=True),
    Method("SubmitDeepResearcherJob", "ChatCompletionRequest", "SubmitDeepResearcherJobResponse", streaming=False, read_only=False),
    Method("GetDeepResearcherJob", "GetDeepResearcherJobRequest", "GetDeepResearcherJobResponse", streaming=False, read_only=True),
    Method("GetChatSessions", "GetChatSessionsRequest", "GetChatSessionsResponse", streaming=False, read_only=True),
    Method("GetStoredChatCompletions", "GetStoredChatCompletionsRequest", "GetStoredChatCompletionsResponse", streaming=False, read_only=True),
    Method("GetChatCompletion", "GetChatCompletionRequest", "StoredChatCompletion", streaming=False, read_only=True),
    Method("UpdateChatAttributes", "UpdateChatAttributesRequest", "UpdateChatAttributesResponse", streaming=False, read_only=False),
    Method("DeleteChats", "DeleteChatsRequest", "DeleteChatsResponse", streaming=False, read_only=False),
    Method("CreateChatAndCompletion", "CreateChatAndCompletionRequest", "CreateChatAndCompletionResponse", streaming=False, read_only=False),
    Method("CreateCompletion", "CreateCompletionRequest", "CreateCompletionResponse", streaming=False, read_only=False),
    Method("DeleteCompletions", "DeleteCompletionsRequest", "DeleteCompletionsResponse", streaming=False, read_only=False),
    Method("SearchChatIdsByPromptAndCompletionText", "SearchChatIdsByPromptAndCompletionTextRequest", "SearchChatIdsByPromptAndCompletionTextResponse", streaming=False, read_only=True),
    Method("UpdateCompletionAttributes", "UpdateCompletionAttributesRequest", "UpdateCompletionAttributesResponse", streaming=False, read_only=False),
    Method("GetCompletionsWithDeepResearcherEntry", "Empty", "GetCompletionsWithDeepResearcherEntryResponse", streaming=False, read_only=True),
)
