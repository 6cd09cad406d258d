# meridian — the two commands are `make demo` and `make test`; both install what is missing first.
.PHONY: all deps dev release test demo bench fuzz format format-check lint clean

all: release

deps:
	scripts/install-deps

dev: deps
	cmake --preset dev
	cmake --build --preset dev

release: deps
	cmake --preset release
	cmake --build --preset release

# Every test through ctest: ASan+UBSan (all tests), TSan (threaded tests), libFuzzer targets briefly, lint.
test: deps
	scripts/test

# The quickstart plan (three regions, `meridian run`) and an open-model `meridian load` against `meridian target`.
demo: release
	scripts/demo

# Throughput, memory and open-model benchmarks against the peers, then the distributed-run targets (skew, rate,
# ingest) and the JavaScript-scenario targets (script vs declarative, memory per VU); writes bench/out/ and
# bench/RESULTS.md.
bench: release
	bench/run
	bench/distributed
	bench/script/run
	bench/envpool/run

fuzz: deps
	cmake --preset fuzz
	cmake --build build/fuzz --target fuzz_all
	ctest --test-dir build/fuzz -L fuzz --output-on-failure

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.h')

lint:
	scripts/lint build/asan-ubsan

clean:
	rm -rf build
