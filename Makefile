# Atoll — run `make` for the list of targets.

GO          ?= go
# The release version: the git tag on HEAD, else VERSION (the next release)
# marked -dev. `atoll version` prints it; `make image` tags the image with it.
VERSION     ?= $(shell git describe --tags --exact-match 2>/dev/null || echo "$$(cat VERSION)-dev")
IMAGE       ?= ghcr.io/atoll-dev/atoll:$(VERSION)
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Unit packages: everything but the end-to-end suites under test/e2e.
UNIT_PKGS    = $(shell $(GO) list ./... | grep -v /test/e2e/)
E2E_TIMEOUT ?= 60m
# How long `make fuzz` runs each fuzz target.
FUZZTIME    ?= 30s
# Flags of `make bench`, e.g. BENCH_ARGS='-pods 5000 -idle-nodes 100'.
BENCH_ARGS  ?=
# kustomize's Go plugin loader imports package plugin, which makes the linker
# export every symbol and keep every exported method: twice the code, mapped
# into every Atoll process. Atoll renders with plugins off, so every go
# command here builds without that loader (test/testenv.BuildAtoll checks).
export GOFLAGS += -tags=kustomize_disable_go_plugin_support

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/atoll
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/atoll ./cmd/atoll

.PHONY: image
image: ## Build Atoll's OCI image without Docker: bin/atoll-image.tar (docker/podman load it)
	$(GO) run ./release/image build -version $(VERSION) -o bin/atoll-image.tar

.PHONY: push
push: ## Push bin/atoll-image.tar to IMAGE (default ghcr.io/atoll-dev/atoll:VERSION; credentials: ~/.docker/config.json)
	$(GO) run ./release/image push -i bin/atoll-image.tar $(IMAGE)

.PHONY: testenv
testenv: ## Build and cache the test bed's binaries: Kubernetes, etcd, kwok and Gitea
	$(GO) run ./test/env build

.PHONY: test
test: lint testenv test-unit e2e ## Lint, unit tests (race) and end-to-end tests: the full check

.PHONY: test-unit
test-unit: ## Unit tests with the race detector
	$(GO) test -race -count=1 $(UNIT_PKGS)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s); test-unit runs their seeds
	@set -e; for pkg in $(UNIT_PKGS); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

.PHONY: e2e
e2e: testenv ## End-to-end suites on the local multi-cluster bed (one package at a time)
	$(GO) test -p 1 -count=1 -timeout $(E2E_TIMEOUT) ./test/e2e/...

.PHONY: bench
bench: testenv ## Benchmarks on the local bed: one table, JSON in test/bench/out/ (never part of `make test`)
	$(GO) test -run '^$$' -bench '^BenchmarkAtoll$$' -benchtime 1x -timeout 90m ./test/bench -args $(BENCH_ARGS)

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>&1); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

.PHONY: demo
demo: ## Local test bed (master + 2 remotes) with `atoll watch` on a copy of examples/fleet; Ctrl-C stops it
	GO=$(GO) ./test/demo/demo.sh
