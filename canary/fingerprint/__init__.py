"""Fingerprints: noticing that the model behind a name was swapped, with one-token probes.

After Chauvin et al., "Token-Efficient Change Detection in LLM APIs" (ICML 2026) and "Log
Probability Tracking of LLM APIs" (ICLR 2026). `init` (phase 1) finds *border inputs*:
single-word prompts whose first output token is not always the same; it keeps the most
balanced and samples each for a reference distribution. A *probe* (phase 2) samples them
again, one output token a call; the day's value is the mean total-variation distance of
the answers from the references, judged against a trailing baseline (`rule`).

Modules: `words` (the candidate list), `rule` (pure: distances, selection, the judgement),
`calls` (one-token calls as stored samples), `phase1` (init), `series` (the current
fingerprint and its probes, judged: read as every series is read), `probe` (a probe, its
episode, ack), `views` (status, history, metrics, the report's section), `transfer` (its
lines in the JSONL export, and back). This package imports no heavy library at import time.
"""
SUITE = "fingerprint"  # the series name of every probe run: runs.suite, alerts.suite
