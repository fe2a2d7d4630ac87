# apex-mcp as a container: the MCP server over streamable HTTP at http://0.0.0.0:$PORT/mcp.
#
#   docker build -t apex-mcp .
#   docker run -p 8081:8081 -v apex-data:/data \
#     -e APEX_HTTP_TOKEN="$(openssl rand -hex 24)" -e APEX_MINER=openrouter \
#     -e APEX_MINER_API_KEY=sk-... apex-mcp
#
# Beyond loopback the server requires APEX_HTTP_TOKEN (clients send Authorization: Bearer ...)
# and refuses to start without it, unless APEX_HTTP_SESSION_CONFIG says a platform in front
# authenticates clients and passes each session's settings (smithery.yaml sets it). It accepts the Host names localhost/127.0.0.1 on $PORT;
# add the names clients use (another published port, a proxy) with APEX_HTTP_ALLOWED_HOSTS.
# Chats live in /data/apex.db: mount a volume there (or set APEX_DB=postgresql://user@host/db to
# keep them in PostgreSQL, shared by every replica). Extra arguments go to `apex-mcp serve`
# (e.g. --toolsets chat,search --read-only); `--entrypoint apex-mcp` runs other commands,
# such as `gateway --host 0.0.0.0`.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY apex_mcp ./apex_mcp
# [gateway]: gRPC, gRPC-Web and Connect binary for `apex-mcp gateway` (stdio never loads them);
# [postgres]: the PostgreSQL store, for APEX_DB=postgresql://... (replicas sharing one database);
# [embeddings]: web_search ranks pages with a static embedding model (README, bench.quality)
RUN python -m venv /opt/apex-mcp \
    && /opt/apex-mcp/bin/pip install ".[gateway,postgres,embeddings]"

FROM python:3.11-slim
LABEL org.opencontainers.image.title="apex-mcp" \
      org.opencontainers.image.description="MCP server for the Apex API of Bittensor Subnet 1, with an embedded engine" \
      org.opencontainers.image.source="https://github.com/apex-mcp/apex-mcp" \
      org.opencontainers.image.licenses="MIT" \
      io.modelcontextprotocol.server.name="io.github.apex-mcp/apex-mcp"
RUN groupadd --system --gid 10001 apex \
    && useradd --system --uid 10001 --gid apex --home-dir /data --create-home --shell /usr/sbin/nologin apex
COPY --from=build /opt/apex-mcp /opt/apex-mcp
ENV PATH="/opt/apex-mcp/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/data \
    PORT=8081 \
    APEX_DB=/data/apex.db
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8081'), timeout=4)"]
ENTRYPOINT ["/bin/sh", "-c", "exec apex-mcp serve --http --host 0.0.0.0 --port \"${PORT:-8081}\" \"$@\"", "apex-mcp"]
