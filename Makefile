# Entry points: `make` builds build/sluice; `make demo` runs the embedded demo; `make check` runs
# every test. Both install missing Debian packages first when run as root.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60

.PHONY: all deps build asan fuzz check unit demo bench reliability install clean format

PREFIX ?= /usr/local

all: build

deps:
	@sh scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_FUZZ=ON -DSLUICE_SANITIZE=ON -DSLUICE_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS)

# The whole suite: unit + integration tests on the release build, unit + integration tests again
# under ASan+UBSan, and a 60 s libFuzzer smoke of every fuzz target (FUZZ_SECONDS, two at a time).
# The release tests run four at a time: they mostly wait on timers and sockets (0.8 of a core for
# -j4 on 2 cores), and -j4 took them from 351 s to 186 s, which pays for the longer fuzz smoke.
# The sanitizer run stays at -j2: its longest test alone takes most of its time.
check: build asan fuzz
	cd $(BUILD) && ctest --output-on-failure -j4
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2 -L 'unit|asan'
	cd $(FUZZ_BUILD) && ctest --output-on-failure -j2 -L fuzz

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

# The crash, fault, rebalance, hostile-input and memcheck tests (docs/reliability.md). A short
# setting of each also runs in make check; RELIABILITY_LONG=1 runs the long settings: the crash loop
# (50 kill -9 on 1,000,000 records), the fault matrix (100,000 records per scenario, 60 s stall),
# Kafka faults (4 fault rounds on 300,000), scale-out (4 kill/join rounds on 600,000), the seed
# chain (15 kill -9 on 500,000), test_forward_stored (5 kill -9 rounds on 500,000 events, 8
# disk-full cycles on 600,000, 10 read-only cycles on 171,000) and test_dead_letter_disk (8
# disk-full cycles on 80,000 records, 8 read-only cycles on 96,000).
reliability: build
	cd $(BUILD) && RELIABILITY_LONG=$(RELIABILITY_LONG) ctest --output-on-failure -L reliability

# make install PREFIX=/usr DESTDIR=/tmp/pkg: the binary, docs, example config, systemd unit.
install: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j$(JOBS) --target sluice
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

# Not a test: prints events/s, MB/s, CPU per event, peak RSS and the ratio to a bare librdkafka
# consumer on the same backlog (docs/performance.md): first on librdkafka's mock cluster into the
# Elasticsearch emulator (bench/run.py), then on a real Kafka broker into the emulator and into a
# real OpenSearch node (bench/real.py; the servers' jars are fetched into the build tree once),
# then end-to-end latency at 100, 1,000 and 10,000 events/s and a synchronous Forward client's
# acks per second (bench/latency.py). Every part runs even when an earlier one reports a failed
# run; make exits 1 if any did.
bench: build
	@rc=0; \
	/usr/bin/python3 bench/run.py --build $(BUILD) || rc=1; \
	{ sh tests/servers/fetch.sh $(BUILD)/servers && \
	  /usr/bin/python3 bench/real.py --build $(BUILD); } || rc=1; \
	/usr/bin/python3 bench/latency.py --build $(BUILD) --real-kafka || rc=1; \
	exit $$rc

demo: build
	/usr/bin/python3 scripts/demo.py --build $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
