"""Joined-up transactions: one citizen request turned into several routed transactions at
several organisations, tracked as one (a journey), each leg with its own outcome and a declared
policy for failure (retry, compensate, required)."""
