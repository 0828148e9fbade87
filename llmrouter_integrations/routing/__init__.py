"""Routing: the planner, the strategies, the model catalog and deployment health."""
