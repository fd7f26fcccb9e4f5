"""End-to-end tests against real control-plane components; see docs/e2e.md."""
