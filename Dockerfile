# smsbridge: slim, non-root, runs `smsbridge run`.
#   docker build -t smsbridge .
#   docker run -v $PWD/config.yaml:/config/config.yaml:ro -v smsbridge-data:/data \
#     -e SMSMOBILEAPI_KEY -e TELEGRAM_BOT_TOKEN -e TELEGRAM_CHAT_ID -e TELEGRAM_USER_ID \
#     -p 8080:8080 smsbridge
# In the container the config's server.host must be 0.0.0.0 to take webhooks.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SMSBRIDGE_DATA=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY connectors ./connectors
RUN pip install . \
 && useradd --create-home --uid 10001 smsbridge \
 && mkdir -p /data /config \
 && chown smsbridge /data

USER smsbridge
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"
CMD ["smsbridge", "run", "--config", "/config/config.yaml"]
