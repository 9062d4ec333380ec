# maskomaly — every target runs scripts/setup.sh first (idempotent: < 1 s once done).
INPUT ?= /input
OUTPUT ?= /output
JOB ?=
CARGO ?= cargo

.PHONY: setup build release run demo test test-cluster bench fmt lint clean

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build

release: setup
	$(CARGO) build --release

# The main job: every image under INPUT → score maps under OUTPUT.
run: release
	./target/release/maskomaly run --input "$(INPUT)" --output "$(OUTPUT)" $(if $(JOB),--job "$(JOB)")

# Sample images + the tiny model, whole pipeline, no network and no checkpoint.
demo: build
	./target/debug/maskomaly demo --dir .demo

test: setup
	$(CARGO) test --all-targets

# Slurm array (preempt + requeue) and container tests; each skips when its tools are absent
# (scripts/ci-deps.sh installs them).
test-cluster: build
	bash tests/slurm.sh
	bash tests/podman.sh

fmt:
	$(CARGO) fmt --all

lint: setup
	$(CARGO) clippy --all-targets

clean:
	$(CARGO) clean
