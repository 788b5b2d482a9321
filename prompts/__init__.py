"""The starter suites shipped with canary; `canary init` copies these YAML files (data only)."""
