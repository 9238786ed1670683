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
demo: ## Run examples/crm-deals under a storm of signed webhooks and check every invariant (exits non-zero if one breaks); CONSOLE=1 then serves the operator console.
	$(GO) run ./examples/crm-deals demo $(if $(CONSOLE),--console)

.PHONY: build
build: ## Build the outboxd binary into bin/.
	$(GO) build -o $(BIN)/outboxd ./cmd/outboxd

FUZZTIME      ?= 5s

.PHONY: test
test: ## Vet, run every test with the race detector against a real PostgreSQL, then a short fuzz run.
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) ./...
	$(MAKE) fuzz

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
bench: bench-enqueue bench-receipt bench-dispatch bench-purge bench-webhook bench-console ## Run every benchmark (see docs/benchmarks.md).

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

.PHONY: bench-console
bench-console: ## Console search endpoints (p50/p99) over 1M generated inbox events, beside a primary-key fetch and without the search index.
	$(GO) run ./internal/bench/console $(BENCH_ARGS)

.PHONY: bench-webhook
bench-webhook: ## Signed webhook receipt over HTTP (new events, duplicates) beside pgbench on the same SQL.
	$(GO) run ./internal/bench/receipt -http $(BENCH_ARGS)

.PHONY: tidy
tidy: ## go mod tidy.
	$(GO) mod tidy
