# hrtem: `make demo` runs the main job on the bundled fixtures, `make test` runs the tests.
# Both install the missing Debian packages first (apt-get update only when something is missing).

SWIFT ?= swift
APT_PACKAGES := libsqlite3-dev libtiff-dev libcurl4-openssl-dev libopenblas-dev libpng-dev \
                libssl-dev libhdf5-dev pkg-config
# Numeric code is only usable optimized, so tests run on a release build with testability on.
BUILD_FLAGS := -c release -Xswiftc -enable-testing
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build test demo bench peers clean fuzz fixtures docs tsan downstream test-tools

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# Headless Chromium and wrk (Debian's), which the browser tests and bench-serve drive from
# outside the server; best effort: without them those checks skip with a message.
test-tools:
	@./scripts/ensure-test-tools.sh

build: deps
	$(SWIFT) build $(BUILD_FLAGS) --product hrtem

# Python peers (NumPy, scikit-image, ncempy, h5py; PyTorch from its own file) for parity tests and benchmarks; best effort:
# tests that need a peer skip with a message when it is missing.
peers:
	@[ -x .venv/bin/python3 ] || python3 -m venv --system-site-packages .venv || true
	@.venv/bin/python3 -m pip install -q -r Benchmarks/peers/requirements.txt 2>&1 | tail -2 || echo "peers: install failed; peer checks will skip"
	@.venv/bin/python3 -c "import torch" 2>/dev/null || .venv/bin/python3 -m pip install -q -r Benchmarks/peers/requirements-torch.txt 2>&1 | tail -2 \
	  || echo "peers: torch install failed; PyTorch parity checks will skip"

# The whole suite runs last, so its summary is the run's closing line.
test: deps peers test-tools
	@$(MAKE) --no-print-directory downstream
	@$(MAKE) --no-print-directory tsan
	@mkdir -p .build
	bash -o pipefail -c '$(SWIFT) build $(BUILD_FLAGS) --build-tests 2>&1 | tee .build/test-build.log'
	@! grep -E "^$(CURDIR)/(Sources|Tests|Benchmarks)/[^:]*:[0-9]+:[0-9]+: warning:" .build/test-build.log \
	  || { echo "the build above warns (concurrency diagnostics included); fix the warnings"; exit 1; }
	$(SWIFT) test $(BUILD_FLAGS) --skip-build --disable-swift-testing

# A package that depends on hrtem's libraries by version builds (SwiftPM refuses a versioned
# dependency with unsafeFlags, which hrtem's own builds never notice).
downstream: deps
	SWIFT=$(SWIFT) ./scripts/check-downstream.sh

# The concurrent code under ThreadSanitizer, in its own scratch folder: parallel matrix units,
# the downloader with several jobs, parallel ingest hashing, dataset builds with --jobs, and
# training with several compute threads, the server's request handling and background picture
# work, and ensembles. Any report fails the run (halt_on_error).
TSAN_FLAGS := $(BUILD_FLAGS) --sanitize=thread --scratch-path .build-tsan
TSAN_TESTS := ExperimentsTests.MatrixRunnerTests \
  MirrorsTests.DownloaderTests/testManyFilesInParallel MirrorsTests.DownloaderTests/testTheSameURLTwice \
  HrtemCLITests.FetchCommandTests/testImportFromStudyThenFetch \
  HrtemCLITests.IngestCommandTests/testIngestJoins CatalogTests.DatasetBuildTests/testBuildWritesAConsistent \
  SegmentationTests.TrainingTests/testShortTraining HrtemCLITests.MatrixEndToEndTests \
  HrtemCLITests.ServeCommandTests/testPagesShowTheCatalogAFrameAndItsPictures \
  HrtemCLITests.ServeCommandTests/testAllowWritesCreatesARecipeFromThePage HrtemCLITests.SegmentEnsembleTests \
  SegmentationTests.EnsembleTests
tsan: deps
	$(SWIFT) build $(TSAN_FLAGS) --build-tests
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test $(TSAN_FLAGS) --skip-build --disable-swift-testing \
	  $(foreach t,$(TSAN_TESTS),--filter $(t))

demo: build
	./scripts/demo.sh

# Regenerates Fixtures/synthetic bit-exactly from its seed (see scripts/make-fixtures.sh).
fixtures: build
	./scripts/make-fixtures.sh

BENCHMARKS := catalog formats mirrors preprocessing synthesis trainer torch-import ensemble serve
bench: deps peers
	@for b in $(BENCHMARKS); do $(MAKE) --no-print-directory bench-$$b || exit 1; done

bench-serve: test-tools
bench-%: deps
	$(SWIFT) build -c release --product bench-$*
	HRTEM_PYTHON=$(CURDIR)/.venv/bin/python3 .build/release/bench-$*

# Long robustness soak of the DM3/DM4/TIFF/PNG readers (FUZZ_CASES mutated files, FUZZ_SEED).
FUZZ_CASES ?= 200000
FUZZ_SEED ?= 1
fuzz: deps
	$(SWIFT) build $(BUILD_FLAGS) --build-tests
	HRTEM_FUZZ_CASES=$(FUZZ_CASES) HRTEM_FUZZ_SEED=$(FUZZ_SEED) $(SWIFT) test $(BUILD_FLAGS) --skip-build \
	  --disable-swift-testing --filter FuzzTests

# DocC documentation of every library (Sources/<Module>/<Module>.docc) into .build/docs/; a
# symbol link that resolves to nothing fails it. Uses the toolchain's docc; no plugin needed.
LIBRARIES := Micrograph Preprocessing Catalog Mirrors Segmentation Synthesis Experiments CatalogServer
DOCS_SCRATCH := .build-docs
docs: deps
	$(SWIFT) build --scratch-path $(DOCS_SCRATCH) \
	  -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc $(CURDIR)/$(DOCS_SCRATCH)/symbol-graphs
	@mkdir -p .build/docs
	@set -e; for m in $(LIBRARIES); do \
	  rm -rf $(DOCS_SCRATCH)/graphs-$$m && mkdir -p $(DOCS_SCRATCH)/graphs-$$m; \
	  cp $(DOCS_SCRATCH)/symbol-graphs/$$m.symbols.json $(DOCS_SCRATCH)/symbol-graphs/$$m@*.symbols.json $(DOCS_SCRATCH)/graphs-$$m/ 2>/dev/null || \
	    cp $(DOCS_SCRATCH)/symbol-graphs/$$m.symbols.json $(DOCS_SCRATCH)/graphs-$$m/; \
	  docc convert Sources/$$m/$$m.docc --additional-symbol-graph-dir $(DOCS_SCRATCH)/graphs-$$m \
	    --fallback-display-name $$m --fallback-bundle-identifier org.hrtem.$$m \
	    --output-path .build/docs/$$m.doccarchive > $(DOCS_SCRATCH)/docc-$$m.log 2>&1; \
	  if grep -E "doesn't exist at|Can't resolve|No symbol matched" $(DOCS_SCRATCH)/docc-$$m.log; then \
	    echo "docs: $$m has broken symbol links (above; the whole log: $(DOCS_SCRATCH)/docc-$$m.log)"; exit 1; fi; \
	  echo "docs: $$m -> .build/docs/$$m.doccarchive"; \
	done

clean:
	rm -rf .build .build-tsan .build-downstream demo-output
