# crmbot: one image for the Procfile's processes (web, console, worker, clock); compose.yaml runs them.
#   docker build -t crmbot .
#   docker run --init -p 8000:8000 --env-file .env -e REDIS_URL=redis://... crmbot   (web, the default command)
# Without REDIS_URL a process starts the embedded Redis in $CRMBOT_DATA_DIR (/data, a volume).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    CRMBOT_DATA_DIR=/data

# A fixed numeric user, so an orchestrator's "run as non-root" check can verify it.
RUN groupadd --system --gid 10001 crmbot \
    && useradd --system --uid 10001 --gid crmbot --create-home --home-dir /home/crmbot \
        --shell /usr/sbin/nologin crmbot \
    && install -d -o crmbot -g crmbot -m 0700 /data

WORKDIR /src

# The dependencies first, read from pyproject.toml alone: this layer is rebuilt only when they change.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself (README.md is its long description).
COPY README.md ./
COPY bot ./bot
COPY conversations ./conversations
COPY scoring ./scoring
RUN pip install --no-cache-dir --no-deps .

# Probes /readyz on $PORT (200 only while Redis answers and the content is loaded); stdlib only, no curl needed.
COPY deploy/healthcheck.py /usr/local/lib/crmbot/healthcheck.py

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/crmbot/healthcheck.py"]

# The Procfile's web: line; exec, so crmbot gets SIGTERM itself and stops cleanly.
CMD ["sh", "-c", "exec crmbot web --host 0.0.0.0 --port ${PORT:-8000}"]
