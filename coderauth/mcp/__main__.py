"""`python -m coderauth.mcp`: the stdio MCP server."""

from coderauth.mcp.server import main

raise SystemExit(main())
