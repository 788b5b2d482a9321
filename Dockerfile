# canary daemon image.
#   docker build -t canary .
#   docker run -d --name canary -v canary-data:/data -v $PWD/canary.yaml:/config/canary.yaml:ro \
#     -v $PWD/prompts:/config/prompts:ro -e ANTHROPIC_API_KEY -e OPENAI_API_KEY -e SLACK_WEBHOOK_URL \
#     -p 127.0.0.1:8787:8787 canary
# In canary.yaml: `daemon: {http: "0.0.0.0:8787"}` (the default 127.0.0.1 is unreachable from
# outside the container) and `database: sqlite:////data/canary.db` or a PostgreSQL URL
# (needed for more than one replica). One pass for a cron job: `docker run ... canary daemon --once`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY canary ./canary
COPY migrations ./migrations
COPY prompts ./prompts
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /data canary && install -d -o canary /data /config
USER canary
WORKDIR /data
VOLUME ["/data"]
ENV CANARY_CONFIG=/config/canary.yaml
EXPOSE 8787

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=4)"

# docker stop sends SIGTERM, then SIGKILL after -t seconds (default 10): give it the grace,
# e.g. `docker stop -t 40 canary` (or stop_grace_period: 40s in compose)
STOPSIGNAL SIGTERM
ENTRYPOINT ["canary"]
CMD ["daemon", "--log-format", "json"]
