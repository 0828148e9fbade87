"""Wire formats (dialects, pure code) and endpoints (data rows) of the LLM providers."""
