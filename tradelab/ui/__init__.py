"""The live console: Panel components, operator commands, auth for extra routes, /metrics."""
