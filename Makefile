# dtrain — build, test, benchmark, data.
#   make            build ./dtrain
#   make check      unit suites (Check) + MPI integration tests
#   make check-memory  ASan + UBSan build (build-asan/) of the unit suites and short runs
#                   of every model; valgrind over a short run of each (sees inside OpenBLAS)
#   make check-slurm  the jobs/ batch scripts on a one-node SLURM cluster started here
#   make check-fuzz the libFuzzer harnesses of the file readers, ~3 minutes (clang)
#   make bench      performance figures (nothing asserted)
#   make bench-torch  dtrain against PyTorch on the same data, runs alternated (python3-torch)
#   make deps       install the Debian packages dtrain needs (root)
#   make data       fetch the four MNIST files into data/mnist (checks SHA-256)
#   make DEBUG=1    -O0 -g;   make SANITIZE=1   AddressSanitizer + UBSan
PKGS    := hdf5-openmpi openblas mpi-c libpng zlib
CC      ?= cc
ifeq ($(origin CC),default)
CC      := mpicc
endif
ifeq ($(shell command -v $(CC) 2>/dev/null),)
CC      := cc
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

ifeq ($(PKG_LIBS),)
$(info dtrain: pkg-config did not find $(PKGS); run 'make deps' first)
endif

OPT := -O2 -march=x86-64-v2 -mtune=generic -ftree-vectorize -fno-math-errno
ifeq ($(shell uname -m),x86_64)
else
OPT := -O2 -ftree-vectorize
endif
ifdef DEBUG
OPT := -O0 -g
endif
SAN :=
ifdef SANITIZE
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g
endif

WARN := -Wall -Wextra -Wno-unused-parameter
ifdef WERROR
WARN += -Werror
endif

GIT_REV := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
CFLAGS  := -std=c11 -D_GNU_SOURCE -ffp-contract=off -fopenmp $(WARN) $(OPT) $(SAN) \
           -Iinclude $(PKG_CFLAGS) -MMD -MP \
           -DDT_GIT_REV='"$(GIT_REV)"' -DDT_CC='"$(CC) $(shell $(CC) -dumpfullversion 2>/dev/null)"' \
           -DDT_CFLAGS='"-ffp-contract=off $(OPT) $(SAN)"'
LDLIBS  := $(PKG_LIBS) -lm
LDFLAGS := -fopenmp $(SAN)

BUILD   := build
LIB_SRC := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_RUN := $(BUILD)/tests/unit/check_run.o
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Small MPI programs the integration tests launch with mpirun.
MPI_SRC := $(wildcard tests/mpi/*.c)
MPI_BIN := $(MPI_SRC:tests/mpi/%.c=$(BUILD)/tests/mpi/%)

.PHONY: all check check-memory check-fuzz check-slurm unit integration test-bins bench bench-torch deps data demo clean
all: dtrain

dtrain: $(BUILD)/src/cli/main.o $(BUILD)/libdtrain.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the same program inside a build folder (check-memory's sanitizer build)
$(BUILD)/dtrain: $(BUILD)/src/cli/main.o $(BUILD)/libdtrain.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libdtrain.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(TEST_RUN) $(BUILD)/libdtrain.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

# Unit suites run one after another; each exits non-zero on any failure.
unit: $(TEST_BIN)
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; $$t; done

$(BUILD)/tests/mpi/%: $(BUILD)/tests/mpi/%.o $(BUILD)/libdtrain.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/mpi/%.o: tests/mpi/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

integration: dtrain $(MPI_BIN)
	@bash tests/integration/run.sh

test-bins: $(TEST_BIN) $(MPI_BIN)

# check and demo install missing packages first, then build with them found.
check:
	@bash scripts/deps.sh
	@$(MAKE) --no-print-directory unit integration

# ASan + UBSan over the unit suites and every model, then valgrind (tests/memory/run.sh)
check-memory:
	@bash scripts/deps.sh
	@$(MAKE) --no-print-directory dtrain
	@$(MAKE) --no-print-directory SANITIZE=1 BUILD=build-asan build-asan/dtrain test-bins
	@bash tests/memory/run.sh

# a one-node SLURM cluster on this machine (tests/slurm/run.sh installs it)
check-slurm:
	@bash scripts/deps.sh
	@$(MAKE) --no-print-directory dtrain $(BUILD)/tests/mpi/ckpt_diff
	@bash tests/slurm/run.sh

# libFuzzer harnesses (tests/fuzz/): the library again, built by clang with
# ASan + UBSan and coverage into build/fuzz/; run.sh fuzzes two at a time.
FUZZ       := $(BUILD)/fuzz
FUZZ_CC    := OMPI_CC=clang mpicc
FUZZ_SAN   := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -Iinclude $(PKG_CFLAGS) $(FUZZ_SAN)
FUZZ_NAMES := idx_raw idx_gz data_raw data_struct ckpt
FUZZ_BIN   := $(FUZZ_NAMES:%=$(FUZZ)/fuzz_%)

$(FUZZ)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ)/libdtrain.a: $(LIB_SRC:%.c=$(FUZZ)/%.o)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(FUZZ)/libdtrain.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ)/libdtrain.a $(LDLIBS)

$(FUZZ)/mkseeds: tests/fuzz/mkseeds.c $(wildcard tests/fuzz/*.h) $(FUZZ)/libdtrain.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ)/libdtrain.a $(LDLIBS)

check-fuzz:
	@bash tests/fuzz/deps.sh
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	@bash tests/fuzz/run.sh $(FUZZ_BIN)

demo:
	@bash scripts/deps.sh
	@$(MAKE) --no-print-directory dtrain
	@bash scripts/demo.sh

bench: dtrain $(BUILD)/dtrain-bench
	@bash scripts/bench.sh

bench-torch: dtrain
	@bash scripts/bench-torch.sh

$(BUILD)/dtrain-bench: $(BUILD)/bench/bench.o $(BUILD)/libdtrain.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	bash scripts/deps.sh

data:
	bash scripts/fetch-mnist.sh data/mnist

clean:
	rm -rf $(BUILD) build-asan dtrain

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# keep test objects between runs
.SECONDARY:
