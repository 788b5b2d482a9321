"""The starter canary.yaml that `canary init` writes (data only)."""
