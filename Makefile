# The two commands of the README:
#   make demo   bring up the embedded meta-cluster and run a sample SandboxPod end to end
#   make test   run the whole test suite (what CI runs)
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup binaries image images test-images test-long test-kind kind-up kind-down crds demo test lint unit e2e bench up down status conformance

setup:
	@bash hack/setup.sh

binaries:
	@bash hack/build-components.sh

image:
	@bash hack/build-image.sh

# The operator and control-plane images, built here without a registry (README "Images").
images: setup
	@bash hack/build-operator-image.sh
	@bash hack/build-controlplane-image.sh

# Builds the images and runs them with podman (minutes on a cold cache: not part of make test).
test-images: setup
	$(VENV)/python -m pytest tests/images -q -rfEs

# The kind test bed (README "The kind test bed"): a real 3-node kind cluster in podman,
# built offline; minutes on a cold cache, so not part of make test. SK8S_KIND_KEEP=1 keeps
# the cluster for the next run (make kind-down deletes it).
test-kind: setup
	$(VENV)/python -m pytest tests/kind -q -rfEs --durations=10

kind-up:
	@bash hack/kind.sh up

kind-down:
	@bash hack/kind.sh down

crds:
	$(VENV)/python -m operators.crdgen

demo: setup
	@bash hack/demo.sh

up: setup
	$(VENV)/sk8s up

down:
	$(VENV)/sk8s down

status:
	$(VENV)/sk8s status

lint: setup
	$(VENV)/lint-imports

unit: setup
	$(VENV)/python -m pytest tests/unit -q

e2e: setup
	$(VENV)/python -m pytest tests/e2e -q

test: setup lint
	$(VENV)/python -m pytest tests -q -rfEs --durations=25 --ignore=tests/images --ignore=tests/kind -m "not long"

# The chaos run left out of make test for its budget (components killed at random during churn).
test-long: setup
	$(VENV)/python -m pytest tests/e2e -q -rfEs -m long

# Upstream [Conformance] tests against a tenant cluster (hours; README "Conformance").
# CONFORMANCE_FOCUS=<regex> narrows it, e.g. CONFORMANCE_FOCUS='\[sig-node\] Pods .*\[Conformance\]'.
conformance: setup
	@bash hack/conformance.sh

bench: setup
	$(VENV)/python bench/sandbox_start.py
	$(VENV)/python bench/cluster_start.py
	$(VENV)/python bench/services.py
	$(VENV)/python bench/aliyun_start.py
	$(VENV)/python bench/burst_profile.py
	$(VENV)/python bench/sleep_wake.py
