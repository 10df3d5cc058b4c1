# One entry point for people and CI. Everything runs inside the uv-managed virtualenv.
UV ?= uv
RUN := $(UV) run --frozen
export XDG_RUNTIME_DIR ?= /tmp/team-runtime-$(shell id -u)

.PHONY: install fmt lint test run token reset openapi compose-check k8s-check bench help

help:
	@echo "make install        install every package (uv sync --frozen)"
	@echo "make run            the whole system on embedded peers (Ctrl-C stops it)"
	@echo "make token USER=u   print a bearer token for a demo user or client"
	@echo "make reset          wipe the dev stack's state (.local/)"
	@echo "make test           the whole test suite against real components"
	@echo "make lint           ruff (format + lint) and mypy --strict"
	@echo "make openapi        regenerate openapi/*.json"
	@echo "make compose-check  validate docker-compose.yml offline"
	@echo "make k8s-check      validate deploy/k8s against the Kubernetes schemas (offline)"
	@echo "make bench [QUICK=1] the benchmarks; figures in bench/results.json"

install:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	$(UV) sync --frozen --all-packages

fmt: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

lint: install
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) mypy

test: install
	$(RUN) pytest $(PYTEST_ARGS)

run: install
	$(RUN) python -m devstack

token:
	@$(RUN) python -m devstack.token $(USER)

reset:
	@if [ -f .local/stack.json ]; then echo "the stack is running (.local/stack.json): stop it first"; exit 1; fi
	rm -rf .local
	@echo "dev state wiped"

openapi: install
	$(RUN) python scripts/gen_openapi.py

compose-check:
	@command -v docker-compose >/dev/null 2>&1 || { echo "docker-compose missing: apt-get install -y docker-compose"; exit 1; }
	docker-compose -f docker-compose.yml config -q
	@echo "docker-compose.yml is valid"

bench: install
	$(RUN) python -m bench.run $(if $(QUICK),--quick,) $(if $(ONLY),--only $(ONLY),)

K8S_RESOURCES := $(filter-out deploy/k8s/kustomization.yaml,$(wildcard deploy/k8s/*.yaml))
k8s-check:
	@out=$$($(UV) tool run --from kubernetes-validate==1.37.0 kubernetes-validate --strict $(K8S_RESOURCES) 2>&1); rc=$$?; \
	echo "$$out" | grep -v " passed for resource " || true; \
	if [ $$rc -ne 0 ] || echo "$$out" | grep -q "ERROR"; then echo "Kubernetes manifests: invalid"; exit 1; fi; \
	echo "Kubernetes manifests are valid ($(words $(K8S_RESOURCES)) files)"
