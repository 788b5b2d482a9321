"""One file a revision, append-only, one concern each."""
