# Ringmail — the two commands a new user needs are `make run` and `make test`.
# Build directories: build/debug (tests), build/release (run, bench),
# build/asan (sanitizer unit tests), build/fuzz (libFuzzer targets, clang).

JOBS        ?= $(shell nproc)
CMAKE_GEN   := -G Ninja
FUZZ_SECONDS ?= 30
DEV_CONFIG  := conf/ringmail.dev.yaml

.PHONY: all deps build release debug asan fuzz run test unit integration test-asan \
        test-fuzz format format-check bench clean

all: build

deps:
	@bash scripts/deps.sh

build/debug/build.ninja:
	cmake -S . -B build/debug $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DRINGMAIL_BENCH=OFF

build/release/build.ninja:
	cmake -S . -B build/release $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build/asan/build.ninja:
	cmake -S . -B build/asan $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DRINGMAIL_SANITIZE=ON \
	  -DRINGMAIL_BENCH=OFF

build/fuzz/build.ninja:
	CC=clang CXX=clang++ cmake -S . -B build/fuzz $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug \
	  -DRINGMAIL_FUZZ=ON -DRINGMAIL_BENCH=OFF

debug: build/debug/build.ninja
	ninja -C build/debug -j$(JOBS)

release: build/release/build.ninja
	ninja -C build/release -j$(JOBS)

build: debug

# First run generates var/ (TLS cert, DKIM key, admin token, a dev user),
# then runs the daemon in the foreground on 127.0.0.1:2587 and :2525.
run: deps build/release/build.ninja
	ninja -C build/release -j$(JOBS) ringmaild
	@bash scripts/dev-setup.sh
	exec build/release/ringmaild -c $(DEV_CONFIG)

test: deps format-check debug unit integration test-asan test-fuzz
	@echo "make test: all suites passed"

unit: debug
	cd build/debug && ctest --output-on-failure -L unit -j$(JOBS)

integration: debug
	cd build/debug && ctest --output-on-failure -L 'integration|systemd'

asan: build/asan/build.ninja
	ninja -C build/asan -j$(JOBS) mail_tests runtime_tests conf_tests queue_tests policy_tests mta_tests \
	  admin_api_tests admin_ctl_tests

test-asan: asan
	cd build/asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L unit -j$(JOBS)

fuzz: build/fuzz/build.ninja
	ninja -C build/fuzz -j$(JOBS) smtp_session_fuzz milter_protocol_fuzz smtp_client_session_fuzz \
	  admin_router_fuzz admin_injection_fuzz feedback_report_fuzz feedback_token_fuzz \
	  sender_auth_records_fuzz unsubscribe_request_fuzz

test-fuzz: fuzz
	@mkdir -p build/fuzz/corpus-smtp_session build/fuzz/corpus-milter_protocol \
	  build/fuzz/corpus-smtp_client_session build/fuzz/corpus-admin_router \
	  build/fuzz/corpus-admin_injection build/fuzz/corpus-feedback_report \
	  build/fuzz/corpus-feedback_token build/fuzz/corpus-sender_auth_records \
	  build/fuzz/corpus-unsubscribe_request
	build/fuzz/smtp_session_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus-smtp_session tests/fuzz/corpus/smtp_session
	build/fuzz/milter_protocol_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus-milter_protocol tests/fuzz/corpus/milter_protocol
	build/fuzz/smtp_client_session_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus-smtp_client_session tests/fuzz/corpus/smtp_client_session
	build/fuzz/admin_router_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus-admin_router tests/fuzz/corpus/admin_router
	# GMime's own leak on some malformed mailboxes is suppressed (tests/fuzz/lsan.supp);
	# the full unwinder lets the suppression see GMime's frames.
	ASAN_OPTIONS=fast_unwind_on_malloc=0 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp \
	  build/fuzz/admin_injection_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus-admin_injection tests/fuzz/corpus/admin_injection
	build/fuzz/feedback_report_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
	  -print_final_stats=1 build/fuzz/corpus-feedback_report tests/mail/feedback_corpus
	build/fuzz/feedback_token_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus-feedback_token tests/fuzz/corpus/feedback_token
	build/fuzz/sender_auth_records_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus-sender_auth_records tests/fuzz/corpus/sender_auth_records
	build/fuzz/unsubscribe_request_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus-unsubscribe_request tests/fuzz/corpus/unsubscribe_request

FORMAT_FILES = $(shell git ls-files '*.cc' '*.h')

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "format-check: ok"

bench: release
	for b in build/release/*_bench; do echo "== $$b"; $$b || exit 1; done
	bash bench/run_inbound.sh
	bash bench/run_relay.sh

clean:
	rm -rf build
