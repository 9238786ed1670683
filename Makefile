# outboxd. Run `make help` for the targets.

GO            ?= go
GOLANGCI_LINT_VERSION := v2.15.0
BIN           := $(CURDIR)/bin
# Test packages run in parallel processes; each gets its databases from the
# harness in internal/pgtest (see README: "Test databases").
TEST_FLAGS    ?= -race -count=1 -timeout 8m

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## Run examples/crm-deals under a storm of signed webhooks and check every invariant (exits non-zero if one breaks).
	$(GO) run ./examples/crm-deals demo

.PHONY: build
build: ## Build the outboxd binary into bin/.
	$(GO) build -o $(BIN)/outboxd ./cmd/outboxd

FUZZTIME      ?= 5s

.PHONY: test
test: promtool ## Vet, run every test with the race detector against a real PostgreSQL, then a short fuzz run.
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) ./...
	$(MAKE) fuzz

# Debian's prometheus package ships promtool, which checks and unit-tests
# deploy/prometheus/alerts.yml. Its install would start a Prometheus
# server: policy-rc.d forbids that for the install's duration, and any
# server that started anyway is stopped and disabled.
.PHONY: promtool
promtool: ## Install promtool (Debian's prometheus package) when missing: the alert rule tests need it.
	@command -v promtool >/dev/null 2>&1 || { \
		set -e; \
		if [ "$$(id -u)" != 0 ]; then echo "promtool missing: run 'make promtool' as root, or apt-get install --no-install-recommends prometheus" >&2; exit 1; fi; \
		own_policy=; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1; fi; \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null || status=$$?; \
		if [ -n "$$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
		if [ -n "$${status:-}" ]; then echo "apt-get install prometheus failed" >&2; exit 1; fi; \
		if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi; \
		if command -v service >/dev/null 2>&1; then service prometheus stop >/dev/null 2>&1 || true; fi; \
	}
	@promtool --version 2>&1 | head -1

.PHONY: fuzz
fuzz: ## Fuzz the signature parsers and the receiver's request handling (FUZZTIME each, default 5s).
	$(GO) test -run '^$$' -fuzz '^FuzzSignatureHeaders$$' -fuzztime $(FUZZTIME) ./inbox/verify/
	$(GO) test -run '^$$' -fuzz '^FuzzReceiverRequests$$' -fuzztime $(FUZZTIME) ./inbox/

.PHONY: lint
lint: $(BIN)/golangci-lint ## Run golangci-lint (installed into bin/ at a pinned version).
	$(BIN)/golangci-lint run ./...

$(BIN)/golangci-lint:
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: bench
bench: bench-enqueue bench-receipt bench-dispatch bench-purge bench-webhook ## Run every benchmark (see docs/benchmarks.md).

.PHONY: bench-enqueue
bench-enqueue: ## Enqueue in one-message transactions (with a Notifier, and with NOTIFY inside) vs pgbench's plain INSERT, 1 and 16 connections.
	$(GO) run ./internal/bench/enqueue $(BENCH_ARGS)

.PHONY: bench-receipt
bench-receipt: ## Receipt transaction through outboxd vs pgbench on the same SQL without any NOTIFY, 1 and 16 connections.
	$(GO) run ./internal/bench/receipt $(BENCH_ARGS)

.PHONY: bench-dispatch
bench-dispatch: ## Dispatcher drain and latency (alone, beside a timing-out destination) vs a hand-written SKIP LOCKED poller and one River job per message.
	$(GO) run ./internal/bench/dispatch $(BENCH_ARGS)

.PHONY: bench-purge
bench-purge: ## Receipt p50/p99 at 16 connections with and without purging 1M expired inbox keys.
	$(GO) run ./internal/bench/receipt -purge 1000000 -duration 45s $(BENCH_ARGS)

.PHONY: bench-webhook
bench-webhook: ## Signed webhook receipt over HTTP (new events, duplicates) beside pgbench on the same SQL.
	$(GO) run ./internal/bench/receipt -http $(BENCH_ARGS)

.PHONY: tidy
tidy: ## go mod tidy.
	$(GO) mod tidy
