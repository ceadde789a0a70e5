.PHONY: run test lint fmt build

run:        ## Run Footfall locally (ClickHouse from Debian, data in ./data)
	scripts/run-local.sh

test:       ## The whole test suite, as CI runs it
	scripts/test.sh

lint:       ## Formatting and clippy
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --release --bin footfall
