"""Where state lives: cache entries and stores, ledger stores."""
