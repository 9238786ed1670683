# outboxd. Run `make help` for the targets.

GO            ?= go
GOLANGCI_LINT_VERSION := v2.15.0
BIN           := $(CURDIR)/bin
# Test packages run in parallel processes; each gets its databases from the
# harness in internal/pgtest (see README: "Test databases").
TEST_FLAGS    ?= -race -count=1 -timeout 8m
# The two slowest packages first: go test starts packages in the order
# given, as many at once as there are CPUs, and worker/ (about 4 minutes)
# started last kept the suite waiting for it (8m16s; 7m02s in this order,
# 2026-12-02). More at once (-p 3) was slower: the tests are CPU-bound here.
TEST_PKGS     ?= ./worker/ ./cmd/outboxd/ $(shell $(GO) list ./... | grep -v -e '/worker$$' -e '/cmd/outboxd$$')

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

# Fuzz budgets are execution counts, not durations: a duration -fuzztime
# races Go's fuzz coordinator at its deadline on a loaded machine and fails
# with a bare "context deadline exceeded" and no crasher (golang/go#75804,
# fixed in Go 1.27). Each count is a few seconds' work here.
FUZZ_VERIFY_EXECS   ?= 60000x
FUZZ_RECEIVER_EXECS ?= 10000x

.PHONY: test
test: promtool ## Vet, lint, run every test with the race detector against a real PostgreSQL, then a short fuzz run.
	$(GO) vet ./...
	$(MAKE) lint
	$(GO) test $(TEST_FLAGS) $(TEST_PKGS)
	$(MAKE) fuzz

# Debian's prometheus package ships promtool, which checks and unit-tests
# deploy/prometheus/alerts.yml. Its install would start a Prometheus
# server: install-promtool.sh forbids that with a policy-rc.d for the
# install's duration (removed however it ends, and only if it wrote it),
# and any server that started anyway is stopped and disabled.
.PHONY: promtool
promtool: ## Install promtool (Debian's prometheus package) when missing: the alert rule tests need it.
	@sh deploy/prometheus/install-promtool.sh
	@promtool --version 2>&1 | head -1

.PHONY: fuzz
fuzz: ## Fuzz the signature parsers and the receiver's request handling (FUZZ_VERIFY_EXECS, FUZZ_RECEIVER_EXECS executions).
	$(GO) test -run '^$$' -fuzz '^FuzzSignatureHeaders$$' -fuzztime $(FUZZ_VERIFY_EXECS) ./inbox/verify/
	$(GO) test -run '^$$' -fuzz '^FuzzReceiverRequests$$' -fuzztime $(FUZZ_RECEIVER_EXECS) ./inbox/

.PHONY: api
api: ## Regenerate api/, the committed dump of every public package's exported API (its test fails when it is stale).
	$(GO) run ./internal/apicheck -write

.PHONY: lint
lint: $(BIN)/golangci-lint ## Run golangci-lint (installed into bin/ at a pinned version).
	$(BIN)/golangci-lint run ./...

$(BIN)/golangci-lint:
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: bench
bench: bench-enqueue bench-receipt bench-dispatch bench-wakeup bench-backlog bench-record bench-purge bench-webhook bench-console ## Run every benchmark (see docs/benchmarks.md).

.PHONY: bench-enqueue
bench-enqueue: ## Enqueue in one-message transactions (with a Notifier, and with NOTIFY inside) vs pgbench's plain INSERT, 1 and 16 connections.
	$(GO) run ./internal/bench/enqueue $(BENCH_ARGS)

.PHONY: bench-receipt
bench-receipt: ## Receipt transaction through outboxd vs pgbench on the same SQL without any NOTIFY, 1 and 16 connections.
	$(GO) run ./internal/bench/receipt $(BENCH_ARGS)

.PHONY: bench-dispatch
bench-dispatch: ## Dispatcher drain and latency (alone, beside a timing-out destination) vs a hand-written SKIP LOCKED poller and one River job per message.
	$(GO) run ./internal/bench/dispatch $(BENCH_ARGS)

.PHONY: bench-wakeup
bench-wakeup: ## Commit-to-delivery latency split at the Notifier's announcement (its wait and question; the dispatcher's wake-up, claim and POST).
	$(GO) run ./internal/bench/wakeup $(BENCH_ARGS)

.PHONY: bench-backlog
bench-backlog: ## Claim time, dispatcher PG CPU and a healthy destination's latency with 10k vs 1M pending (failing destination) and 10k vs 1M retained rows.
	$(GO) run ./internal/bench/backlog $(BENCH_ARGS)

.PHONY: bench-record
bench-record: ## Server CPU, WAL and HOT updates per message of claiming and recording a batch: the dispatcher's statements vs the claim alone, a bare UPDATE (also without each part of the schema), both with the full key index migration 15 replaced, a queue-table prototype and the hand-written poller.
	$(GO) test -run '^$$' -bench RecordServerCPU -benchtime 200x -count 3 $(BENCH_ARGS) ./worker/

.PHONY: bench-levers
bench-levers: build ## WAL, HOT updates and attempt rows per first-try delivery and WAL per enqueue: today's schema vs the levers of issue 9 (psql, pgbench, pg_waldump).
	OUTBOXD=$(BIN)/outboxd internal/bench/levers/levers.sh

.PHONY: bench-purge
bench-purge: ## Receipt p50/p99 at 16 connections with and without purging 1M expired inbox keys.
	$(GO) run ./internal/bench/receipt -purge 1000000 -duration 45s $(BENCH_ARGS)

.PHONY: bench-console
bench-console: ## Console search endpoints (p50/p99) over 1M generated inbox events, never analyzed then analyzed, beside a primary-key fetch.
	$(GO) run ./internal/bench/console $(BENCH_ARGS)

.PHONY: bench-webhook
bench-webhook: ## Signed webhook receipt over HTTP (new events, duplicates) beside pgbench on the same SQL.
	$(GO) run ./internal/bench/receipt -http $(BENCH_ARGS)

.PHONY: tidy
tidy: ## go mod tidy.
	$(GO) mod tidy
