"""`python -m llmrouter_integrations.cli`: the `llmrouter` command."""

from .main import main

raise SystemExit(main())
