# model-server image: `docker run -p 8080:8080 -p 8081:8081 IMAGE` serves the baked-in iris demo
# model over V1/V2 REST and V2 gRPC; KServe mounts the real model over /mnt/models.
# Build with scripts/build-image.sh. BASE_IMAGE: any Debian-based image with Python 3.11 and
# `python3 -m venv` (python:3.11-slim, or localhost/debian-python:bookworm from
# scripts/prepare-podman.sh where no registry can be reached).
ARG BASE_IMAGE=python:3.11-slim
# The image the demo models are trained and exported in: the build machine's platform, so that a
# cross-build (--platform linux/arm64) trains natively. The same as BASE_IMAGE otherwise.
ARG BUILD_BASE_IMAGE=${BASE_IMAGE}

# ---------------------------------------------------------------------------------------------
# demo: the demo models, trained and exported on the build platform. Its steps are the build
# stage's first ones, so when both platforms are one, the layers are shared.
FROM --platform=$BUILDPLATFORM ${BUILD_BASE_IMAGE} AS demo
# Index settings are passed in by scripts/build-image.sh, so no host is hard-coded here.
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_TRUSTED_HOST=""
# PIP_CERT: use the system CA bundle (the builder may mount the host's over it) instead of
# pip's bundled one, so TLS-inspecting proxies that the host trusts work.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies']))" > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt
COPY README.md ./
COPY model_server ./model_server
RUN /opt/venv/bin/pip install --no-deps .
# v1 is what the image serves by default, v2 is for canary demos (the kind workflow points a
# second revision at it), v1 exported to ONNX is the edge image's.
RUN /opt/venv/bin/python -m model_server.demo /export/mnt/models \
 && /opt/venv/bin/python -m model_server.demo /export/opt/model-server/demo-v2 --version 2 \
 && /opt/venv/bin/python -m model_server.export --model_dir /export/mnt/models --out /export-edge/mnt/models

# ---------------------------------------------------------------------------------------------
# build: the venv with the project, pruned. Dependencies in their own layer (read from
# pyproject.toml), so code changes rebuild quickly: the default install's, ONNX Runtime and the
# converter included (an ensemble served from its pickle is converted at load, --backend auto,
# and predicted many times faster; an exported ONNX directory serves without scikit-learn).
FROM ${BASE_IMAGE} AS build
# Index settings are passed in by scripts/build-image.sh, so no host is hard-coded here.
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_TRUSTED_HOST=""
# PIP_CERT: use the system CA bundle (the builder may mount the host's over it) instead of
# pip's bundled one, so TLS-inspecting proxies that the host trusts work.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies']))" > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt
COPY README.md ./
COPY model_server ./model_server
RUN /opt/venv/bin/pip install --no-deps .

# `strip` for the debug-info prune below; this stage only, so versions are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*

# Libraries the served models need beyond scikit-learn (XGBoost, LightGBM, a package of your
# own estimators): pip requirement specifiers, space-separated, e.g. "lightgbm==4.6.0".
ARG EXTRA_PACKAGES=""
# hadolint ignore=DL3013,SC2086
RUN if [ -n "$EXTRA_PACKAGES" ]; then /opt/venv/bin/pip install $EXTRA_PACKAGES; fi

# Prune what the server never uses (the unpruned venv is ~770 MB; the budget for the image is 550):
# - distributions kserve requires only for features this server does not use: Pillow (images),
#   grpcio-tools (protoc), cryptography and aiohttp (client-side auth/HTTP), with the
#   dependencies only they need; then pip and setuptools, nothing installs at run time;
# - test suites, C/Cython sources and type stubs;
# - the Kubernetes API client (kubernetes, with what only it needs): only kserve/__init__ imports
#   it, for KServe's SDK client, and the server never runs that __init__ (kserve_import.py);
# - debug info in extension modules (uvloop alone carries 11 MB); only modules that have it, and
#   never the vendored `*.libs` (auditwheel-patched ELF files that `strip` corrupts); each
#   stripped module is loaded once to prove it still loads;
# - scipy's source, kept as compiled .pyc files (12 MB: tracebacks into scipy show no source line);
# - ONNX Runtime's transformers/quantization tools and onnx's reference evaluator (the converter
#   and the runtime use neither).
# The last steps import the whole server and the stream consumer, so a prune that removes an import fails the build;
# tests/container runs every protocol against the result.
WORKDIR /opt/venv/lib/python3.11/site-packages
RUN /opt/venv/bin/pip uninstall --yes --quiet \
      pillow grpcio-tools cryptography cffi pycparser \
      kubernetes durationpy websocket-client requests-oauthlib oauthlib \
      aiohttp aiohttp-retry aiohappyeyeballs aiosignal frozenlist multidict yarl propcache \
      pip setuptools \
 && find . -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
 && find . -type f \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' -o -name '*.c' -o -name '*.h' \
      -o -name '*.cpp' -o -name '*.hpp' \) -delete \
 && rm -rf onnxruntime/transformers onnxruntime/quantization onnxruntime/tools onnx/reference \
 && find . -type f -name '*.so' ! -path './*.libs/*' -exec sh -c 'for lib; do \
      if readelf -S "$lib" | grep -q "[.]debug_"; then \
        strip --strip-debug "$lib" \
        && /opt/venv/bin/python -c "import ctypes, sys; ctypes.CDLL(sys.argv[1])" "$lib" || exit 1; \
      fi; \
    done' sh {} + \
 && /opt/venv/bin/python -m compileall -q -b -j 0 scipy \
 && find scipy -name '*.py' -delete \
 && find scipy -type d -name __pycache__ -exec rm -rf {} + \
 && /opt/venv/bin/python -c "import scipy.sparse, scipy.special, scipy.stats, scipy.optimize, sklearn.ensemble, skl2onnx" \
 && /opt/venv/bin/python -m model_server --help > /dev/null \
 && /opt/venv/bin/python -c "from model_server.kserve.import_shim import skip_package_init; skip_package_init(); \
      import model_server.kserve.server, model_server.kserve.grpc, model_server.kserve.model" \
 && /opt/venv/bin/python -m model_server.stream --help > /dev/null

# ---------------------------------------------------------------------------------------------
# edge-build: the edge runtime's venv: ONNX Runtime, numpy, uvicorn and the package, nothing else
# (no KServe, scikit-learn, scipy or pandas).
FROM ${BASE_IMAGE} AS edge-build
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_TRUSTED_HOST=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c "import tomllib; \
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['edge']))" \
      > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt
COPY README.md ./
COPY model_server ./model_server
RUN /opt/venv/bin/pip install --no-deps .
WORKDIR /opt/venv/lib/python3.11/site-packages
# The same prune as the main image's, and a check that the runtime imports none of what it must not.
RUN /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
 && find . -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
 && find . -type f \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' -o -name '*.c' -o -name '*.h' \) -delete \
 && rm -rf onnxruntime/transformers onnxruntime/quantization onnxruntime/tools \
 && find . -type f -name '*.so' ! -path './*.libs/*' -exec sh -c 'for lib; do \
      if readelf -S "$lib" | grep -q "[.]debug_"; then strip --strip-debug "$lib" || exit 1; fi; \
    done' sh {} + \
 && /opt/venv/bin/python -c "import sys, model_server.edge.__main__; \
bad = [m for m in ('kserve', 'fastapi', 'pandas', 'sklearn', 'scipy') if m in sys.modules]; \
sys.exit(f'the edge runtime imports {bad}' if bad else 0)"

# ---------------------------------------------------------------------------------------------
# edge: the edge runtime (python -m model_server.edge) serving the demo model exported to ONNX.
# docker build --target edge (scripts/build-image.sh --target edge); non-root, read-only root fs.
FROM ${BASE_IMAGE} AS edge
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="model-server-edge" \
      org.opencontainers.image.description="ONNX models served over V1 and V2 REST, without KServe or scikit-learn" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
RUN id -u 1000 > /dev/null 2>&1 \
 || useradd --uid 1000 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin \
      --no-log-init model-server
COPY --from=edge-build /opt/venv /opt/venv
COPY --from=demo /export-edge/ /
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["/opt/venv/bin/python", "-m", "model_server.edge"]
CMD ["--model_name=iris", "--model_dir=/mnt/models"]

# ---------------------------------------------------------------------------------------------
# runtime (the default target): the base image plus the venv and the demo models; no compilers, no pip.
FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="model-server" \
      org.opencontainers.image.description="scikit-learn models on KServe: V1, V2 REST and V2 gRPC inference" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# libgomp: the OpenMP runtime that LightGBM and XGBoost load (scikit-learn carries its own copy);
# without it a model of theirs cannot load even with --extra-packages.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# UID 1000, no home: the root filesystem may be read-only, /tmp is the only place written to.
RUN id -u 1000 > /dev/null 2>&1 \
 || useradd --uid 1000 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin \
      --no-log-init model-server

COPY --from=build /opt/venv /opt/venv
COPY --from=demo /export/ /

ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 1000:1000
EXPOSE 8080 8081
ENTRYPOINT ["/opt/venv/bin/python", "-m", "model_server"]
CMD ["--model_name=iris", "--model_dir=/mnt/models"]
