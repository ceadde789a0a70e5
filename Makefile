.PHONY: run run-clickhouse test lint fmt build bench

run:        ## Run Footfall on the embedded store, data in ./data
	cargo run --release -- serve

run-clickhouse: ## Run Footfall on a local ClickHouse (Debian's package), data in ./data
	scripts/run-local.sh

bench:      ## Store insert throughput
	cargo bench --bench store_insert

test:       ## The whole test suite, as CI runs it
	scripts/test.sh

lint:       ## Formatting and clippy
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --release --bin footfall
