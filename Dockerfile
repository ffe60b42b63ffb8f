# syntax=docker/dockerfile:1
# The GovTalk reference hub as a container image; docker-compose.yml runs it as a shared hub.
#   docker build -t govtalk-gateway-hub .
#   docker run -p 8080:8080 -p 8443:8443 govtalk-gateway-hub     # SQLite and PKI in the container

# --- build: the hub as a wheel, installed with its dependencies into a virtualenv -------------
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY connectors ./connectors
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install /wheels/*.whl

# --- run: the virtualenv, the example back office, and an unprivileged user --------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/gateway
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --home-dir /var/lib/gateway --no-create-home \
        --shell /usr/sbin/nologin gateway \
 && install -d -o gateway -g gateway -m 0750 /var/lib/gateway
COPY --from=builder /opt/venv /opt/venv
# Not part of the package: `python -m examples.supplier_backoffice` (the compose backoffice).
COPY examples /opt/gateway/examples
COPY gateway.example.toml /opt/gateway/gateway.example.toml
# Relative paths (var/, certs/) land here when no configuration says otherwise.
WORKDIR /var/lib/gateway
USER 10001:10001
# Plain HTTP (password clients, CRL and OCSP) and HTTPS (client certificates optional).
EXPOSE 8080 8443
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8080", "--https-port", "8443"]
