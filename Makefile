# Gatehouse — the two commands a new user runs: `make run` and `make test`.
# Needs Debian 12 with the Swift 6.3 toolchain on PATH; everything else is installed here.

SWIFT ?= swift
# A crash ends with its message and no backtracer: here the backtracer of a crashed run once sat
# for half an hour holding the descriptors (and a build lock) it inherited.
export SWIFT_BACKTRACE := enable=no
# C libraries the package links (system-library targets) and the tools the build needs.
SYSTEM_PACKAGES := pkg-config libssl-dev libargon2-dev libpq-dev libsqlite3-dev
# The tests start their own throwaway PostgreSQL server on 127.0.0.1 (never a mock); browser mode
# and TLS are tested through curl, with certificates made by openssl; forward-auth behind nginx;
# strace shows how `keys generate` creates the private key file; PyJWT (pip, below) is a verifier
# that ignores `typ`, refusing refresh tokens as access tokens. WebSockets are tested with real
# clients: Python's `websockets` (pip, below) and Autobahn|Testsuite, which needs Python 2.7 (pyenv's
# 2.7.18 on this machine image) and installs itself into .build/autobahn (Tests/WebSocket/autobahn.sh).
TEST_PACKAGES := postgresql-15 curl openssl nginx strace python3-pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test build deps test-deps install check-swift sanitize fuzz bench-jose clean

# ./gateway.conf when there is one, else the development setup (state in ./.gatehouse/).
run: deps build
	.build/debug/gatehouse serve

# One test at a time: many tests talk to real servers over real sockets with blocking reads and
# check timeouts, and on two cores parallel tests starve each other's threads (a timing test then
# fails for want of a thread, not for a bug); suites that measure whole processes (the streaming
# tests' RSS, the login flood's p99, revocation latency across five processes) need the machine
# to themselves anyway. Serial costs about 15 s more than parallel here. Each fuzzer runs for 10 s
# first (`make fuzz` runs them longer), so that the test summary is the last line.
test: deps test-deps build
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

build: check-swift
	$(SWIFT) build

# Installs only what is missing, so a prepared machine makes no network call.
deps:
	@$(MAKE) --no-print-directory install PACKAGES="$(SYSTEM_PACKAGES)"

test-deps:
	@$(MAKE) --no-print-directory install PACKAGES="$(TEST_PACKAGES)"
	@python3 -c 'import jwt' 2>/dev/null || python3 -m pip install -q PyJWT \
		|| python3 -m pip install -q --break-system-packages PyJWT
	@python3 -c 'import websockets' 2>/dev/null || python3 -m pip install -q websockets \
		|| python3 -m pip install -q --break-system-packages websockets
	@Tests/WebSocket/autobahn.sh --install || [ $$? = 77 ]

install:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

check-swift:
	@command -v $(SWIFT) >/dev/null || { echo "swift not found: install the Swift 6.3 toolchain and put it on PATH"; exit 1; }

# AddressSanitizer over the C wrappers (libcrypto, libargon2, SQLite, libpq) and the JOSE core,
# ThreadSanitizer over the per-thread libcrypto contexts (kept out of `make test`: CI time is tight).
# The store's tests run without leak detection: in one of three runs with them, LeakSanitizer
# reported ~3 KiB allocated inside libcrypto at process exit, with no caller frames to tell whose;
# not yet explained. Memory errors are still caught.
sanitize: deps check-swift
	LSAN_OPTIONS=suppressions=$(CURDIR)/.lsan-suppressions \
		$(SWIFT) test --sanitize=address --scratch-path .build-asan --filter 'GatehouseCryptoTests|GatehouseJOSETests|GatehousePasswordTests'
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --sanitize=address --scratch-path .build-asan --skip-build --filter 'GatehouseStoreTests'
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan --filter 'GatehouseCryptoTests|RobustnessTests'

# libFuzzer (with AddressSanitizer) over the JWS verifier and JSON reader, the configuration parser
# and the gateway's request-head handling, FUZZ_SECONDS each. New inputs collect in
# .build-fuzz/corpus/; a crash stops with its input in .build-fuzz/artifacts/ — fix it and copy the
# input to Fuzz/regressions/<harness>-<name>, which `make test` replays from then on. A harness
# with a Fuzz/<harness>.dict gets it as libFuzzer's dictionary.
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES := jose config head http1 websocket
fuzz: deps check-swift
	$(foreach harness,$(FUZZ_HARNESSES),$(SWIFT) build -c release --product fuzz-$(harness) --scratch-path .build-fuzz \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING &&) true
	@mkdir -p .build-fuzz/artifacts
	@for harness in $(FUZZ_HARNESSES); do \
		mkdir -p .build-fuzz/corpus/$$harness; \
		echo "fuzzing $$harness for $(FUZZ_SECONDS) s"; \
		dict=""; [ -f Fuzz/$$harness.dict ] && dict="-dict=Fuzz/$$harness.dict"; \
		LSAN_OPTIONS=suppressions=$(CURDIR)/.lsan-suppressions .build-fuzz/release/fuzz-$$harness $$dict -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=.build-fuzz/artifacts/$$harness- .build-fuzz/corpus/$$harness Fuzz/corpus/$$harness \
			2>.build-fuzz/$$harness.log || { tail -40 .build-fuzz/$$harness.log; exit 1; }; \
		grep -E "^stat::number_of_executed_units|^stat::new_units_added" .build-fuzz/$$harness.log | sed "s/^/  $$harness /"; \
	done

# Verifier vs bare libcrypto, release build, pinned to one core (see bench/README.md).
bench-jose: deps check-swift
	$(SWIFT) build -c release --product gatehouse-bench-jose
	taskset -c 1 .build/release/gatehouse-bench-jose 15

clean:
	rm -rf .build .build-asan .build-tsan .build-fuzz
