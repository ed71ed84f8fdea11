# checkout-ai: every set-up step lives here. On a fresh machine `make demo` and `make test` are enough.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
PORT        ?= 5055
# Who keeps the item and page features on the local stack (template parameter ItemPageFeatures): the demo
# runs the batch mode; `make demo ITEM_PAGES=stream` runs the per-event stream mode.
ITEM_PAGES  ?= batch
STATE       := .local
STACK       := $(STATE)/stack.json
ENDPOINT    := http://127.0.0.1:$(PORT)
DATA        ?= ../shared/data
CLI         := target/debug/checkout-ai

# Offline-friendly, non-interactive AWS tooling: dummy credentials, no telemetry, one region.
export AWS_DEFAULT_REGION    ?= us-east-1
export AWS_ACCESS_KEY_ID     ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export SAM_CLI_TELEMETRY      = 0
export SAM_CLI_DISABLE_VERSION_CHECK = 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: capacity help venv build demo test lint fmt-check clippy boundaries template-check moto-check sam-build unit-tests bench bench-model bench-decision bench-evaluate bench-ope bench-simulate bench-fraud fallback-model fallback-risk-model \
        stack-up stack-down schema fixtures clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt infra/constraints.txt infra/checkov-requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade 'pip==25.3'
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	python3 -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet --disable-pip-version-check --upgrade 'pip==25.3'
	$(VENV)/checkov/bin/python -m pip install --quiet --disable-pip-version-check -r infra/checkov-requirements.txt
	touch $@

venv: $(STAMP) ## Create the repo-local virtualenv (moto server, cargo-lambda, aws-sam-cli, cfn-lint, checkov; pinned)

# The demo runs the CLI and the in-process ingest handler from the dev profile: it is I/O bound on the
# local stack, and shares its build with `make test`. Deployable binaries come from `sam build`.
build: ## Build the operator CLI and the functions
	cargo build --locked -p checkout-ai -p ingest -p feature-updater

# ---- local stack ------------------------------------------------------------------------------
stack-up: $(STAMP) ## Start moto on 127.0.0.1:$(PORT) and create the template's resources
	$(PY) infra/localstack.py start --port $(PORT) --state $(STATE)
	$(PY) infra/localstack.py create --endpoint $(ENDPOINT) --prefix checkout-ai --out $(STACK) \
	    --param EventRetentionDays=36500 --param ItemPageFeatures=$(ITEM_PAGES)
	@echo "local stack described in $(STACK) (env for sam local: $(STATE)/stack.sam-env.json)"

stack-down: ## Stop the local stack
	-@$(PY) infra/localstack.py stop --state $(STATE) 2>/dev/null || true

# ---- the two commands ---------------------------------------------------------------------------
demo: $(STAMP) build ## Run the main job end to end on the local stack with real data
	@test -f $(DATA)/rees46-2019-10-01-head.csv || { echo "missing $(DATA)/rees46-2019-10-01-head.csv"; exit 1; }
	@$(MAKE) --no-print-directory stack-up
	@set -o pipefail; trap '$(MAKE) --no-print-directory stack-down' EXIT; \
	    $(CLI) demo --stack $(STACK) --file $(DATA)/rees46-2019-10-01-head.csv --out out

test: $(STAMP) fmt-check clippy boundaries template-check moto-check sam-build unit-tests ## All quality gates and all tests

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --locked --workspace --all-targets -- -D warnings

# The domain crate has no AWS dependency; each Lambda links only the SDK clients it calls.
boundaries:
	python3 infra/check_boundaries.py

# checkov runs offline (--skip-download); every check it skips is justified inline in the template and
# listed in docs/security.md.
template-check: $(STAMP)
	cfn-lint template.yaml
	$(PY) infra/check_archive_schema.py
	sam validate --lint --template template.yaml
	$(VENV)/checkov/bin/checkov -f template.yaml --framework cloudformation --skip-download --compact --quiet

# The release profile is tuned for Lambda (fat LTO, one codegen unit). Checking that the SAM build works
# does not need that optimisation, so `make test` builds unoptimised; `sam build` itself, as
# used for deployment, uses the tuned one. SAM records absolute paths in its `.aws-sam/build.toml`, so
# the check runs SAM from a temporary folder outside the repository (sources resolved with --base-dir).
# The bootstraps it builds land in target/sam-build (git-ignored), where the Runtime API test
# (tests/lambda_runtime.rs) runs them: one build of the function packages serves both.
SAM_BUILD := $(CURDIR)/target/sam-build
sam-build: $(STAMP)
	@rm -rf "$(SAM_BUILD)" && dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && cd "$$dir" && \
	CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_INCREMENTAL=false CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
	    sam build --template "$(CURDIR)/template.yaml" --base-dir "$(CURDIR)" \
	        --parameter-overrides Architecture=x86_64 --build-dir "$(SAM_BUILD)" --no-cached && \
	for f in IngestFunction FeatureUpdaterFunction ScorerFunction ExperimentEvaluatorFunction RecoverySweepFunction ReviewFunction ArchiverFunction ItemPageBatchFunction; do \
	    test -x "$(SAM_BUILD)/$$f/bootstrap" || { echo "sam build made no bootstrap for $$f"; exit 1; }; \
	done

# The capacity and cost model (docs/capacity.md) from the feature updater's measured write and read units.
capacity: $(STAMP) build ## Measure the write path (REES46 and the skewed load) and write docs/capacity.md
	@test -f $(DATA)/rees46-2019-10-01-head.csv || { echo "missing $(DATA)/rees46-2019-10-01-head.csv"; exit 1; }
	@mkdir -p out
	$(CLI) write-cost --file $(DATA)/rees46-2019-10-01-head.csv > out/write-cost-rees46.json
	$(CLI) write-cost --skew-events 60000 --hot-share 0.05 --events-per-second 50000 > out/write-cost-skew.json
	$(PY) infra/capacity_model.py out/write-cost-rees46.json out/write-cost-skew.json docs/capacity.md > /dev/null
	@echo "docs/capacity.md written"

moto-check: $(STAMP)
	$(PY) infra/check_moto_server.py

# Built once, then run as two halves side by side: the integration tests (tests/, mostly waiting on the
# moto server, one per test binary) and every other package (mostly Rust on the CPU). Both select the
# whole workspace, so that cargo unifies the same features and the one build serves both; the first
# narrows to tests/'s targets by name. Each half's lines carry its name; the target fails when either
# half does.
INTEGRATION := checkout-ai-integration-tests
INTEGRATION_TESTS := $(shell awk '/^\[\[test\]\]/ {t = 1; next} t && /^name/ {gsub(/.*= "|"/, ""); print; t = 0}' tests/Cargo.toml)
unit-tests: $(STAMP) sam-build
	cargo test --locked --workspace --no-run
	@export CHECKOUT_AI_BOOTSTRAPS=$(SAM_BUILD); \
	( set -o pipefail; cargo test --locked --workspace --no-fail-fast $(addprefix --test ,$(INTEGRATION_TESTS)) 2>&1 \
	    | sed -u 's/^/[integration] /' ) & pid=$$!; \
	( set -o pipefail; cargo test --locked --workspace --exclude $(INTEGRATION) --no-fail-fast 2>&1 \
	    | sed -u 's/^/[crates] /' ); crates=$$?; \
	wait $$pid; integration=$$?; \
	echo "tests: crates exit $$crates, integration exit $$integration"; \
	test $$crates -eq 0 && test $$integration -eq 0

bench: bench-model bench-decision bench-evaluate bench-ope bench-simulate bench-fraud ## All benchmarks: ingest's pure part, the model and the scorer against scikit-learn, evaluate against gbstats, off-policy evaluation against numpy, the simulators
	cargo bench --locked -p checkout-ai --bench ingest_pure

bench-decision: $(STAMP) ## Scorer: decision compute vs scikit-learn predict_proba, cold start, binary size
	@$(MAKE) --no-print-directory stack-up
	@trap '$(MAKE) --no-print-directory stack-down' EXIT; \
	    BENCH_STACK=$(CURDIR)/$(STACK) cargo bench --locked -p scorer --bench decision && \
	    $(PY) infra/bench_decision.py target/bench/decision-rust.json

bench-ope: $(STAMP) ## Off-policy evaluation: 5 estimators + 2,000-resample bootstrap over 1,000,000 rows vs numpy, same run
	cargo bench --locked -p checkout-domain --bench ope

bench-simulate: $(STAMP) ## The closed-loop simulator with the default truth (6 rounds of 20,000 decisions)
	cargo build --locked --profile tool -p checkout-ai
	target/tool/checkout-ai simulate --out-dir target/bench/simulation

bench-fraud: ## Fraud: the handbook's simulator and protocol over 8 seeds; model quality and the cost of friction bands vs a block threshold
	cargo build --locked --profile tool -p checkout-ai
	target/tool/checkout-ai fraud-bench --out-dir target/bench/fraud

bench-model: $(STAMP) ## linfa vs scikit-learn: training time, same-fold AUC, single-row inference latency
	cargo bench --locked -p checkout-train --bench model
	$(PY) infra/bench_model.py target/bench/model-rust.json

bench-evaluate: $(STAMP) ## checkout-ai evaluate vs pandas + gbstats on a generated 1,000,000-row export, same run
	@mkdir -p target/bench
	$(PY) infra/gen_experiment_csv.py --rows 1000000 --seed 1 --out target/bench/experiment-1m.csv
	cargo build --locked --profile tool -p checkout-ai
	$(PY) infra/bench_evaluate.py target/tool/checkout-ai target/bench/experiment-1m.csv

fallback-risk-model: ## Retrain the fraud-risk model compiled into the scorer (shared/domain/models/) on the handbook's simulator, seed 0
	cargo run --quiet --locked -p checkout-ai -- fraud-bench --seeds 1 --out-dir target/fraud-fallback
	cp target/fraud-fallback/risk-model.json shared/domain/models/fraud-risk.json

fallback-model: ## Retrain the model compiled into the scorer (shared/domain/models/) from the UCI file
	cargo run --quiet --locked -p checkout-ai -- train --csv $(DATA)/online_shoppers_intention.csv \
	    --version builtin-uci-2 --out shared/domain/models/purchase-propensity.json

# ---- generated files -------------------------------------------------------------------------------
schema: ## Regenerate events/schema/event-v6.schema.json from the Rust types
	cargo run --quiet --locked -p checkout-ai -- schema > events/schema/event-v6.schema.json

fixtures: ## Regenerate the events/ Lambda fixtures
	python3 infra/make_fixtures.py

clean: stack-down
	rm -rf target .aws-sam $(STATE) out
