"""Sequential self-edits as a continual stream, and the strategies against forgetting (`continual`, `compare`)."""
