# spendcast API image: multi-stage, slim Python 3.11, non-root, configured by environment.
#   docker build -t spendcast .
#   docker run -p 8000:8000 -e SPENDCAST_API_KEYS=... -e MLFLOW_TRACKING_URI=... spendcast
# The base image is pinned by digest: the multi-platform index of python:3.11-slim (Python
# 3.11.15, Debian trixie) as recorded by docker-library/repo-info (repos/python/remote/
# 3.11-slim.md, 2026-08-05). To move it: `docker buildx imagetools inspect python:3.11-slim`
# and replace the digest in both FROM lines. Python packages come from requirements.lock
# (hashes checked; `make lock` refreshes it).

FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY forecasting/ forecasting/
COPY cli/ cli/
COPY service/ service/
RUN python -m venv /opt/venv
RUN /opt/venv/bin/pip install --require-hashes -r requirements.lock
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation .

FROM python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff AS runtime
RUN useradd --create-home --uid 10001 spendcast && mkdir -p /data && chown spendcast /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    UVICORN_PORT=8000 \
    SPENDCAST_MODEL_URI=models:/spendcast@champion \
    SPENDCAST_DATABASE_URL=sqlite:////data/spendcast.db \
    SPENDCAST_CACHE_DIR=/data/model-cache \
    MLFLOW_TRACKING_URI=sqlite:////data/mlflow.db
WORKDIR /data
USER spendcast
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]
CMD ["python", "-m", "uvicorn", "service.main:app", "--host", "0.0.0.0", "--proxy-headers", "--no-access-log"]
