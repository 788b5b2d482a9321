"""canary: daily known-answer canaries for hosted LLMs, with Slack alerts on a quality drop."""
