"""Infrastructure every layer shares: the ChatBackend seam, the clock, events, the sync bridge."""
