# Concerto: one-command set-up, run and test on a plain machine (no Docker needed).
#   make setup    install uv (into .tools), the Python workspace (.venv), the Kafka jars and Zipkin's
#   make run      the whole stack in the foreground; Ctrl-C stops it
#   make up/down  the same stack in the background / stop it;  make status
#   make logs ORDER=<id>  one order's log lines from every component, merged by time (its trace: the console)
#   make infra-up Kafka and Temporal only (for integration tests while you work)
#   make test     set-up, a fresh stack under .data/test, every test, stack down again
#   make test-packages  Debian's chromium and redis-server, for the tests that need them (make test does it)
#   make bench    orders/s and latency, platform beside its floor (BENCH_ARGS=--use-running: `make up`'s stack)
#   make compose-env  an .env of fresh random secrets for docker compose (which has no defaults)
#   make chaos    kill components in turn under load, replay and poison events, check the books
#   make load     Locust's web UI on :8089: demo customers load `make up`'s stack (LOAD_ARGS)
#   make lab N    the workshop's lab N in a scratch copy, .labs/lab-0N (docs/workshop/README.md)
#   make check-lab N   lab N's self-check: what is still missing, in plain words
# Everything the stack writes goes to .data/, every tool to .tools/ (both gitignored).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON      ?= python3
UV_VERSION  := 0.13.9
TOOLS       := .tools
UV          := $(TOOLS)/uv/bin/uv
KAFKA_LIBS  := $(TOOLS)/kafka/libs
ZIPKIN_DIR  := $(TOOLS)/zipkin
STACK       := .venv/bin/python infra/devstack/stack.py
TEST_DATA   := .data/test
PYTEST_ARGS ?= services libs tests infra/bench/tests
# The test stack gives up on a payment no gateway can take after this many seconds (default 300),
# so the end-to-end suite can watch an order cancelled `payment_unavailable`; and its circuit
# breakers try a gateway again after 5 s rather than 15.
TEST_PAYMENT_DEADLINE ?= 20
# The saga monitor's deadlines in the test stack (seconds per step, see docs/saga.md): short,
# so the suite can watch a silent service's saga time out and compensate, yet long enough that
# twenty orders at once on two cores never miss one; the payment and refund steps outlast the
# payment deadline above.
TEST_SAGA_DEADLINES ?= SAGA_DEADLINE_PAYMENT=45 SAGA_DEADLINE_REFUND=45 SAGA_DEADLINE_RESERVATION=20 \
	SAGA_DEADLINE_SHIPMENT=20 SAGA_DEADLINE_DISPATCH=20 SAGA_DEADLINE_COMPLETION=20 SAGA_DEADLINE_CANCELLATION=20 \
	SAGA_DEADLINE_RELEASE=40 SAGA_DEADLINE_POINTS_REVERSAL=30

# Schemathesis sends hundreds of calls without credentials from one address: in the test stack
# they get their 401, not the 429 a guesser gets after 20 a minute (the gateway's tests check that).
TEST_FAILED_AUTH_RATE_LIMIT ?= 100000/minute

# Use the Python already on the machine; never download one.
export UV_PYTHON_DOWNLOADS := never

.PHONY: help setup sync run up down status logs infra-up infra-down compose-env test test-packages browser bench chaos load lab check-lab

help:
	@sed -n 's/^#   /  /p' $(MAKEFILE_LIST)

setup: sync $(KAFKA_LIBS)/.complete $(ZIPKIN_DIR)/.complete

# uv is pinned and installed from PyPI into its own venv: nothing global is touched.
# The stamp carries the version, so changing UV_VERSION installs the new one.
$(TOOLS)/uv/.uv-$(UV_VERSION):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	touch $@

# --frozen: install exactly uv.lock, never re-resolve. Fast when nothing changed.
sync: $(TOOLS)/uv/.uv-$(UV_VERSION)
	$(UV) sync --frozen

# The Kafka broker's jars, from Maven Central, fetched again only when the pom changes.
$(KAFKA_LIBS)/.complete: infra/kafka/pom.xml
	rm -rf $(KAFKA_LIBS)
	mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory=$(abspath $(KAFKA_LIBS))
	touch $@

# The trace viewer, Zipkin's server: one jar with its UI, from Maven Central, the same way (ADR 18).
$(ZIPKIN_DIR)/.complete: infra/zipkin/pom.xml
	rm -rf $(ZIPKIN_DIR)
	mvn -q -B -f infra/zipkin/pom.xml dependency:copy-dependencies -DoutputDirectory=$(abspath $(ZIPKIN_DIR))
	touch $@

run: setup
	$(STACK) run

up: setup
	$(STACK) up

infra-up: setup
	$(STACK) up --only kafka,temporal

# down and status need no set-up: the launcher uses the standard library only.
down:
	$(PYTHON) infra/devstack/stack.py down

infra-down:
	$(PYTHON) infra/devstack/stack.py down --only kafka,temporal

status:
	$(PYTHON) infra/devstack/stack.py status

# One order's log lines, every component's, merged by time (concerto_observability.order_logs),
# from the stack's logs in .data/logs (LOGS_DATA=.data/test: the test stack's).
LOGS_DATA ?= .data
logs: sync
	@test -n "$(ORDER)" || { echo "which order? make logs ORDER=<order id>"; exit 2; }
	@.venv/bin/python -m concerto_observability.order_logs "$(ORDER)" --logs $(LOGS_DATA)/logs

# docker compose's secrets (see docker-compose.yml): an .env with fresh random values, written
# once and never overwritten (delete it to start again). Gitignored; compose reads it by itself.
# The gateway and payment each get an Ed25519 key pair for their service tokens (ADR 12), one
# line each: base64 of the DER form, as concerto_runtime.service_tokens reads it.
compose-env:
	@if [ -e .env ]; then echo ".env exists: compose uses it (delete it for new secrets)"; else \
	  umask 077; { \
	  $(PYTHON) -c 'import secrets; [print(f"{name}={secrets.token_hex(24)}") for name in ("CONCERTO_DB_PASSWORD", "TEMPORAL_DB_PASSWORD", "DEV_ISSUER_PASSWORD", "GRAFANA_ADMIN_PASSWORD")]'; \
	  for caller in GATEWAY PAYMENT; do \
	    key=$$(openssl genpkey -algorithm ed25519 -outform DER | openssl base64 -A); \
	    echo "$${caller}_SIGNING_KEY=$$key"; \
	    echo "$${caller}_PUBLIC_KEY=$$(echo "$$key" | openssl base64 -d -A | openssl pkey -inform DER -pubout -outform DER | openssl base64 -A)"; \
	  done; } > .env; \
	  echo "wrote .env: the demo users' password (DEV_ISSUER_PASSWORD) is in it"; fi

# Debian packages some tests need: chromium for the operator console's browser test
# (tests/e2e/test_e2e_console.py; Playwright drives it, nothing ever downloads a browser of its
# own) and redis-server for the gateway replicas' shared rate limits. Installed only when missing
# and apt-get is there (as root); otherwise, or if the install fails, `make test` goes on and
# those tests skip, saying how to install them.
TEST_PACKAGES := chromium redis-server
test-packages:
	@missing=""; for command in $(TEST_PACKAGES); do command -v $$command >/dev/null 2>&1 || missing="$$missing $$command"; done; \
	if [ -z "$$missing" ]; then \
	  echo "test packages: $(TEST_PACKAGES) installed"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "test packages: installing$$missing with apt-get"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
	    || echo "test packages: could not install$$missing (not root? offline?): the tests that need them will skip"; \
	else \
	  echo "test packages:$$missing not installed and there is no apt-get: the tests that need them will skip"; \
	fi
browser: test-packages

# A fresh stack just for the tests (a stack from `make up` is stopped first: same ports), and
# a throwaway PostgreSQL so the messaging tests also run on it (they skip, saying why, if it
# cannot start). Whatever happens (failure, Ctrl-C), both are stopped after, and the recipe's
# exit status is pytest's. PYTEST_ARGS narrows the run.
test: setup test-packages
	$(STACK) down
	$(STACK) down --data-dir $(TEST_DATA)
	rm -rf $(TEST_DATA)
	trap '$(STACK) down --data-dir $(TEST_DATA); infra/postgres/test-server.sh stop' EXIT; \
	PAYMENT_DEADLINE_SECONDS=$(TEST_PAYMENT_DEADLINE) BREAKER_RECOVERY_SECONDS=5 $(TEST_SAGA_DEADLINES) \
	FAILED_AUTH_RATE_LIMIT=$(TEST_FAILED_AUTH_RATE_LIMIT) $(STACK) up --data-dir $(TEST_DATA); \
	TEST_DATABASE_URL=$$(infra/postgres/test-server.sh start) || echo "PostgreSQL unavailable: its test variants will skip"; \
	TEST_DATABASE_URL=$$TEST_DATABASE_URL \
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 TEMPORAL_ADDRESS=127.0.0.1:7233 \
	GATEWAY_URL=http://127.0.0.1:8080 STACK_DATA_DIR=$(TEST_DATA) TEST_PAYMENT_DEADLINE_SECONDS=$(TEST_PAYMENT_DEADLINE) $(TEST_SAGA_DEADLINES) \
	.venv/bin/pytest $(PYTEST_ARGS)
	# Then the short chaos run, on its own stack (the test stack is down by now: same ports).
	.venv/bin/python infra/chaos/chaos.py --short

# Orders at a steady rate while components are killed in turn, events replayed and poison mixed
# in, on a fresh stack with two replicas of each context (infra/chaos/chaos.py); prints a table
# of invariants and fails if one does not hold. A few minutes. CHAOS_ARGS passes options.
CHAOS_ARGS ?=
chaos: setup
	$(STACK) down
	.venv/bin/python infra/chaos/chaos.py $(CHAOS_ARGS)

# Load for demos (infra/load/README.md): Locust with its web UI, its users demo customers who
# browse, sign in, buy, cancel and look up their points through the gateway of the stack that
# `make up` or `make run` started (it starts none). The form is filled with LOAD_USERS users,
# LOAD_SPAWN_RATE a second; LOAD_ARGS passes Locust's options (`--headless -t 1m`, `-u 20`...).
LOAD_GATEWAY    ?= http://127.0.0.1:8080
LOAD_UI_PORT    ?= 8089
LOAD_USERS      ?= 10
LOAD_SPAWN_RATE ?= 2
LOAD_ARGS       ?=
load: sync
	@if ! .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health/ready", timeout=5)' \
	    $(LOAD_GATEWAY) 2>/dev/null; then \
	  echo "load: no stack answers ready at $(LOAD_GATEWAY). Start one first: \`make up\` (in the background;"; \
	  echo "      \`make status\` shows it) or \`make run\` (in another terminal), then \`make load\` again."; \
	  exit 1; fi
	@echo "load: Locust's UI on http://127.0.0.1:$(LOAD_UI_PORT) (press Start), load on $(LOAD_GATEWAY);"
	@echo "      watch it on the console's key figures, $(LOAD_GATEWAY)/console. Ctrl-C stops."
	.venv/bin/locust -f infra/load/locustfile.py --host $(LOAD_GATEWAY) --web-host 127.0.0.1 --web-port $(LOAD_UI_PORT) \
	  -u $(LOAD_USERS) -r $(LOAD_SPAWN_RATE) $(LOAD_ARGS)

# The workshop (docs/workshop/README.md): `make lab 3` copies the repository as committed to
# .labs/lab-03 with lab 3's starting point; `make check-lab 3` runs its checks there. The number
# is the word after the target; this makes `3` a target that does nothing.
ifneq ($(filter lab check-lab,$(firstword $(MAKECMDGOALS))),)
  LAB := $(word 2,$(MAKECMDGOALS))
  ifneq ($(LAB),)
    $(eval $(LAB):;@:)
  endif
endif
LAB_TOOL := .venv/bin/python infra/workshop/lab.py
lab: setup
	@test -n "$(LAB)" || { echo "which lab? make lab 1 (the labs: docs/workshop/README.md)"; exit 2; }
	@$(LAB_TOOL) prepare $(LAB)
check-lab: setup
	@test -n "$(LAB)" || { echo "which lab? make check-lab 1"; exit 2; }
	@$(LAB_TOOL) check $(LAB)

# The benchmark (infra/bench/concerto_bench/bench.py): by default a fresh stack under .data/bench
# (a stack from `make up` is stopped first: same ports), the floor then the platform, rates in
# steps; prints the table, writes docs/bench/results.json and docs/bench/latency.png and the
# table into docs/benchmarks.md. About 15 minutes. BENCH_ARGS passes options (see --help).
BENCH_ARGS ?=
bench: setup
	PYTHONPATH=infra/bench .venv/bin/python -m concerto_bench.bench $(BENCH_ARGS)
