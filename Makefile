# Convenience targets; the scripts are the real entry points.
.PHONY: all test test-quick demo bench clean
all:
	cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build/release
test:
	scripts/test
test-quick:
	scripts/test --quick
demo:
	scripts/demo
bench:
	scripts/bench
clean:
	rm -rf build
