"""`python -m coderauth.mcp` and the `coderauth-mcp` console script: the stdio MCP server."""

from coderauth.mcp.server import main

if __name__ == "__main__":
    raise SystemExit(main())
