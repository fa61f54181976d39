# syntax=docker/dockerfile:1
# lpqlc image. VARIANT=cpu (default): torch's CPU wheel. VARIANT=cuda: PyPI's CUDA torch wheel, which
# carries its CUDA libraries; the node supplies the NVIDIA driver (GPU worker pods). Two tags, two images:
#   docker build -t REGISTRY/lpqlc:0.1.0-cpu .   docker build --build-arg VARIANT=cuda -t REGISTRY/lpqlc:0.1.0-cuda .
# (cluster.kubernetes.image / gpu_image in the pipeline YAML). Contract (docs/deploy.md): ENTRYPOINT is
# `lpqlc`; the Job and CronJob give only args (`run --config …`), the dask pods set command `dask scheduler`
# / `dask worker`, which replaces it. tests/test_k8s_contract.py runs them all from this file.
ARG VARIANT=cpu
ARG PYTHON=3.11

FROM python:${PYTHON}-slim-bookworm AS base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

FROM base AS torch-cpu
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

FROM base AS torch-cuda
RUN pip install "torch==2.13.0"

FROM torch-${VARIANT} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lpqlc ./lpqlc
# lpqlc/data/stac links to the collection templates in stac/
COPY stac ./stac
COPY pipelines ./pipelines
RUN pip install ".[k8s]"

FROM python:${PYTHON}-slim-bookworm AS final
ARG VARIANT
LABEL org.opencontainers.image.title="lpqlc" \
      org.opencontainers.image.description="Quarterly land cover and RUSLE soil erosion from STAC archives, on Dask" \
      org.opencontainers.image.source="https://github.com/lpqlc/lpqlc" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0" \
      io.lpqlc.variant="${VARIANT}"
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 MPLBACKEND=Agg
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/pipelines /opt/lpqlc/pipelines
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin lpqlc
USER 10001
WORKDIR /home/lpqlc
# S3 credentials arrive at run time from a Kubernetes Secret (envFrom); none are baked in.
ENTRYPOINT ["lpqlc"]
CMD ["--help"]
