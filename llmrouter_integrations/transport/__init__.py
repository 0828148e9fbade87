"""The HTTP seam: the transport protocol, aiohttp (default) and httpx, the SSE decoder."""
