# Everything a newcomer needs: `make run` and `make test`. Each target installs or builds
# what it needs, and caches it between runs.
SHELL := /bin/bash
CARGO ?= cargo
# The binary the generators and the e2e suite run. It is built with the whole workspace
# selected, so shared crates get the same features as in the e2e tests' build and compile
# once for both (a `cargo run --bin kuberhealthy` would pick other features and recompile
# most of the dependency tree).
KH := $(or $(CARGO_TARGET_DIR),target)/debug/kuberhealthy

.PHONY: build bin test unit lint fmt crds crds-check rbac chart-lint control-plane e2e run bench soak image fuzz

build:
	$(CARGO) build --workspace --bins

bin:
	@$(CARGO) build --quiet --workspace --bins

# Unit tests of every crate, then the end-to-end suite on a real control plane.
test: unit e2e

# The metrics tests run promtool and prometheus: install them first (once; idempotent).
unit:
	bash e2e/tools/install-prometheus.sh
	$(CARGO) test --workspace --lib --bins --tests --exclude kuberhealthy-e2e

# Fails on any finding. Only a toolchain without clippy or rustfmt skips that step, saying so.
lint:
	@if $(CARGO) fmt --version >/dev/null 2>&1; then $(CARGO) fmt --all -- --check; \
	  else echo "lint: rustfmt is not installed for this toolchain; skipping cargo fmt --check"; fi
	@if $(CARGO) clippy --version >/dev/null 2>&1; then $(CARGO) clippy --workspace --all-targets -- -D warnings; \
	  else echo "lint: clippy is not installed for this toolchain; skipping cargo clippy"; fi

fmt:
	$(CARGO) fmt --all

# Regenerates the committed CRDs from the Rust types: v2's in the chart's crds/, v3's
# HealthCheck in its files/ (a template installs it, so a value can turn it off).
crds: bin
	$(KH) crd --only v2 > charts/kuberhealthy/crds/crds.yaml
	$(KH) crd --only healthcheck > charts/kuberhealthy/files/healthcheck-crd.yaml

# Regenerates the committed RBAC (rbac/) from the code's declaration.
rbac: bin
	$(KH) rbac > rbac/kuberhealthy.yaml
	$(KH) rbac --target-namespace kuberhealthy > rbac/kuberhealthy-namespaced.yaml
	$(KH) rbac --rules controller > charts/kuberhealthy/files/controller-rules.yaml
	$(KH) rbac --rules auth > charts/kuberhealthy/files/auth-rules.yaml
	$(KH) rbac --rules healthchecks > charts/kuberhealthy/files/healthcheck-rules.yaml
	$(KH) rbac --rules lease > charts/kuberhealthy/files/lease-rules.yaml
	$(KH) rbac --rules checks > charts/kuberhealthy/files/check-rules.yaml
	rm -rf rbac/checks && mkdir -p rbac/checks
	$(KH) rbac --checks-dir rbac/checks

# Fails when the committed CRDs or RBAC differ from what the code generates.
crds-check: bin
	@$(KH) crd --only v2 | diff -u charts/kuberhealthy/crds/crds.yaml - \
	  || { echo "crds-check: charts/kuberhealthy/crds/crds.yaml is stale; run 'make crds' and commit it"; exit 1; }
	@$(KH) crd --only healthcheck | diff -u charts/kuberhealthy/files/healthcheck-crd.yaml - \
	  || { echo "crds-check: charts/kuberhealthy/files/healthcheck-crd.yaml is stale; run 'make crds' and commit it"; exit 1; }
	@$(KH) rbac | diff -u rbac/kuberhealthy.yaml - \
	  || { echo "crds-check: rbac/kuberhealthy.yaml is stale; run 'make rbac' and commit it"; exit 1; }
	@$(KH) rbac --target-namespace kuberhealthy | diff -u rbac/kuberhealthy-namespaced.yaml - \
	  || { echo "crds-check: rbac/kuberhealthy-namespaced.yaml is stale; run 'make rbac' and commit it"; exit 1; }
	@$(KH) rbac --rules controller | diff -u charts/kuberhealthy/files/controller-rules.yaml - \
	  || { echo "crds-check: the chart's controller rules are stale; run 'make rbac' and commit them"; exit 1; }
	@$(KH) rbac --rules auth | diff -u charts/kuberhealthy/files/auth-rules.yaml - \
	  || { echo "crds-check: the chart's auth rules are stale; run 'make rbac' and commit them"; exit 1; }
	@$(KH) rbac --rules healthchecks | diff -u charts/kuberhealthy/files/healthcheck-rules.yaml - \
	  || { echo "crds-check: the chart's HealthCheck rules are stale; run 'make rbac' and commit them"; exit 1; }
	@$(KH) rbac --rules lease | diff -u charts/kuberhealthy/files/lease-rules.yaml - \
	  || { echo "crds-check: the chart's lease rules are stale; run 'make rbac' and commit them"; exit 1; }
	@$(KH) rbac --rules checks | diff -u charts/kuberhealthy/files/check-rules.yaml - \
	  || { echo "crds-check: the chart's check rules are stale; run 'make rbac' and commit them"; exit 1; }
	@tmp=$$(mktemp -d) && $(KH) rbac --checks-dir $$tmp \
	  && diff -ru rbac/checks $$tmp; status=$$?; rm -rf $$tmp; \
	  [ $$status = 0 ] || { echo "crds-check: rbac/checks/ is stale; run 'make rbac' and commit it"; exit 1; }

# Coverage-guided fuzzing with AFL++ (the afl crate; stable toolchain; fuzz/ is a crate of
# its own, outside the workspace): each target of src/fuzz_targets.rs for FUZZ_SECONDS,
# growing its minimised corpus in fuzz/corpus/<target>/, which `make unit` replays
# (tests/fuzz_corpus.rs). Installs cargo-afl once; the first build takes minutes.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= report duration config resources status_page
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Builds etcd and kube-apiserver for the e2e tests (cached per version; minutes when cold).
control-plane:
	@dir=$$(bash e2e/control-plane/build.sh) && echo "control-plane binaries are in $$dir"

# The end-to-end suite on a real control plane (see e2e/README.md). Fails if any process
# the suite started is still alive afterwards.
e2e: control-plane
	bash e2e/tools/install-prometheus.sh
	bash e2e/tools/install-tools.sh
	bash e2e/tools/install-chromium.sh
	$(CARGO) build --workspace --bins
	@session=make-e2e-$$(date +%s%N); \
	KH_E2E_SESSION=$$session $(CARGO) test -p kuberhealthy-e2e; status=$$?; \
	bash e2e/leftovers.sh $$session || status=1; \
	exit $$status

# Benchmarks on a local control plane, release builds (see README, Performance): prints a
# table per scenario and writes the raw figures to target/bench/bench.json. The peer
# (Kuberhealthy v3, else v2) is built from the Go module proxy by e2e/tools/build-peer.sh.
# BENCH_ARGS="--quick" for development, "--only footprint,serving" for some scenarios.
bench: control-plane
	bash e2e/tools/install-tools.sh
	$(CARGO) build --release --bin kuberhealthy
	$(CARGO) build --release -p kuberhealthy-e2e --bins
	@session=make-bench-$$(date +%s%N); \
	KH_E2E_SESSION=$$session KH_BIN=$(CURDIR)/target/release/kuberhealthy \
	  $(CARGO) run --quiet --release -p kuberhealthy-e2e --bin bench -- $(BENCH_ARGS); status=$$?; \
	bash e2e/leftovers.sh $$session || status=1; \
	exit $$status

# A long failover soak, not in CI (see README, Soak): three replicas, two dozen checks, the
# leader killed, terminated, paused or cut off about every minute; prints the table from the
# pod runner's record and the audit log into target/soak/, fails on a duplicate or lost run.
DURATION ?= 30m
soak: control-plane
	bash e2e/tools/install-tools.sh
	$(CARGO) build --bin kuberhealthy
	$(CARGO) build -p kuberhealthy-e2e --bins
	@session=make-soak-$$(date +%s%N); \
	KH_E2E_SESSION=$$session $(CARGO) run --quiet -p kuberhealthy-e2e --bin soak -- --duration $(DURATION) $(SOAK_ARGS); status=$$?; \
	bash e2e/leftovers.sh $$session || status=1; \
	exit $$status

# A local cluster with example checks and three replicas, until Ctrl-C (see e2e/README.md).
run: control-plane
	bash e2e/tools/install-tools.sh
	$(CARGO) build --workspace --bins
	$(dir $(KH))local-cluster

# Builds the one image FROM scratch with buildah (installed from Debian if missing) from a
# static release binary, and proves it: one layer holding only the binary, user 65532, no
# shell, it runs and reads the chart's config. Not part of `make test`: the release build
# takes about ten minutes on two cores.
image:
	bash e2e/tools/test-image.sh

# Builds helm from the Go module proxy (cached) and lints the chart.
chart-lint:
	@helm=$$(bash e2e/tools/build-helm.sh) && $$helm lint charts/kuberhealthy
