# pinlb: `make run` starts pinlb on conf/pinlb.json in front of three demo backends;
# `make test` runs every test. Both install what the build needs when they can.

CARGO ?= cargo
# Integration tests mostly wait on sockets: run more of them at once than there are cores.
TEST_THREADS ?= 8

.PHONY: all deps build run test bench callgrind soak fuzz fmt lint check-configs clean

all: build

# Pingora builds zlib-ng and zstd from C sources: it needs cmake and a C compiler.
deps:
	@scripts/install-build-deps.sh

# The release build is profile-guided (scripts/build-release.sh): an instrumented pinlb is
# trained on the traffic it serves, then rebuilt with the measured profile. PGO=off skips
# that for a build in half the time.
RELEASE = CARGO=$(CARGO) scripts/build-release.sh
export PGO
# Optimised builds without the profile (criterion, `make fuzz`) get a target folder of their
# own: built in target/release with other flags, they would make the next release build
# start over.
PLAIN_TARGET = $${CARGO_TARGET_DIR:-target}/plain

build: deps
	$(RELEASE) --example demo_backend

run: build
	@scripts/demo.sh

test: deps
	$(CARGO) test --locked --no-fail-fast -- --test-threads $(TEST_THREADS)
	@# The vendored Pingora crates' own tests of the code pinlb patches (vendor/README.md).
	$(CARGO) test --locked -p pingora-proxy --test task_pipe
	$(CARGO) test --locked -p pingora-http --lib
	$(CARGO) test --locked -p pingora-timeout --lib

# pinlb beside nginx and HAProxy (when installed) on the same upstream apps, plain and over
# TLS; needs wrk (h2load and openssl come with deps). Writes bench/results.svg (pygal, in a
# venv under the target dir). BENCH_ARGS passes options, e.g. BENCH_ARGS="--workers 2 --cases keepalive".
bench: deps
	$(RELEASE) --example demo_backend --example ws_bench
	python3 bench/bench.py $(BENCH_ARGS)
	CARGO_TARGET_DIR=$(PLAIN_TARGET) $(CARGO) bench --locked --bench hot_paths

# Instructions per proxied request (valgrind), for numbers that do not move with noise.
callgrind: deps
	@scripts/install-build-deps.sh callgrind
	$(RELEASE)
	bench/callgrind.sh

# Ten minutes of mixed load while backends die, the config reloads and the binary
# upgrades (SOAK_SECS to change); prints requests sent and failed, and RSS.
SOAK_SECS ?= 600
soak: build
	python3 bench/soak.py --secs $(SOAK_SECS)

# Property runs that are too long for `make test`: a million random nginx configs through
# the lexer and parser, a million random paths through the normaliser, and FUZZ_HEADS
# random request heads through Pingora's HTTP/1 reader under random limits; none may panic.
FUZZ_CASES ?= 1000000
FUZZ_HEADS ?= 100000
fuzz: deps
	PROPTEST_CASES=$(FUZZ_CASES) CARGO_TARGET_DIR=$(PLAIN_TARGET) $(CARGO) test --release --locked --lib -- never_panic
	CARGO_TARGET_DIR=$(PLAIN_TARGET) $(CARGO) test --release --locked --lib -- --ignored million_random_paths
	PROPTEST_CASES=$(FUZZ_HEADS) CARGO_TARGET_DIR=$(PLAIN_TARGET) $(CARGO) test --release --locked --test http1_head_props

# Instructions per proxied request with each feature (realip, sticky, limits, access log,
# TLS) switched on, beside the bench config without it.
.PHONY: callgrind-features
callgrind-features: deps
	@scripts/install-build-deps.sh callgrind
	$(RELEASE)
	bench/callgrind-features.py

# Instructions and first-level cache misses per proxied request under wrk's 50 keep-alive
# connections, for nginx, the minimal hyper proxy (when built) and pinlb.
.PHONY: callgrind-cache
callgrind-cache: deps
	@scripts/install-build-deps.sh callgrind-cache
	$(RELEASE)
	bench/callgrind-cache.py

# Fails when instructions per proxied request exceed bench/callgrind-budget.
.PHONY: callgrind-check
callgrind-check: deps
	@scripts/install-build-deps.sh callgrind
	$(RELEASE)
	bench/callgrind-check.sh

# vendor/ is the crates.io Pingora sources plus the patch queue vendor/patches (vendor/README.md).
.PHONY: vendor-check vendor-refresh
vendor-check: deps
	python3 scripts/vendor-patches.py check
vendor-refresh: deps
	python3 scripts/vendor-patches.py refresh $(VERSION)

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	scripts/module-graph.py

# Every shipped config must pass `pinlb -t` (names in contrib/docker only resolve inside
# a compose network, so those are checked without resolution), and the Kubernetes and ECS
# examples validate (scripts/check-configs.sh).
check-configs: deps
	$(CARGO) build --locked --bin pinlb
	scripts/check-configs.sh

clean:
	$(CARGO) clean
