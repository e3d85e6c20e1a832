# Everything a newcomer needs: `make run` and `make test`. Each target installs or builds
# what it needs, and caches it between runs.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: build test unit lint fmt crds crds-check control-plane e2e run

build:
	$(CARGO) build --workspace --bins

# Unit tests of every crate, then the end-to-end suite on a real control plane.
test: unit e2e

unit:
	$(CARGO) test --workspace --lib --bins --tests --exclude kuberhealthy-e2e

# Fails on any finding. Only a toolchain without clippy or rustfmt skips that step, saying so.
lint:
	@if $(CARGO) fmt --version >/dev/null 2>&1; then $(CARGO) fmt --all -- --check; \
	  else echo "lint: rustfmt is not installed for this toolchain; skipping cargo fmt --check"; fi
	@if $(CARGO) clippy --version >/dev/null 2>&1; then $(CARGO) clippy --workspace --all-targets -- -D warnings; \
	  else echo "lint: clippy is not installed for this toolchain; skipping cargo clippy"; fi

fmt:
	$(CARGO) fmt --all

# Regenerates the committed CRDs from the Rust types.
crds:
	$(CARGO) run --quiet --bin kuberhealthy -- crd > charts/kuberhealthy/crds/crds.yaml

# Fails when the committed CRDs differ from what the code generates.
crds-check:
	@$(CARGO) run --quiet --bin kuberhealthy -- crd | diff -u charts/kuberhealthy/crds/crds.yaml - \
	  || { echo "crds-check: charts/kuberhealthy/crds/crds.yaml is stale; run 'make crds' and commit it"; exit 1; }
