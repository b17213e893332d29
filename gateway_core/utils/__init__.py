"""Small shared utilities (clock, task spawning, preflight checks)."""
