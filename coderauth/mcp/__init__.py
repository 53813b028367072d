"""The coderauth MCP server: a stdio MCP server that reports an AI assistant's work with the agent token alone.

It is a plain REST client of coderauth (httpx + the official `mcp` SDK) and imports no Django, so it runs
inside a workspace where only the project's Python package is installed. Run it as `python -m coderauth.mcp`.
"""
