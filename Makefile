# Two commands do everything on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST_SYSTEM := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
FMNIST_LOCAL := .cache/dataset-fashion-mnist/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# The main job: SE-ResNeXt-14 (three stages of two basic SE units, 16/32/64 channels) on Fashion-MNIST
# at 28x28 over two CPU contexts, 5 epochs (measured: 93.21 % in 3.5 minutes on 2 cores; see README).
TRAIN_ARGS ?= --data-type fashion-mnist --image-shape 3,28,28 --depth 14 --cpus 2 --batch-size 64 \
	--lr 0.1 --lr-mode cosine --warmup-epochs 0.2 --num-epochs 5 --aug-level 0 --frequent 200
# The longer recipe: the same network twice as wide, crop + mirror, label smoothing, zero-initialised
# last gammas, no decay on gammas, 30 epochs (95.06 % in 70 minutes; docs/recipe.md).
FULL_ARGS ?= --data-type fashion-mnist --image-shape 3,28,28 --depth 14 --widen-factor 2 --cpus 2 \
	--batch-size 64 --lr 0.1 --wd 5e-4 --lr-mode cosine --warmup-epochs 0.3 --num-epochs 30 \
	--aug-level 1 --frequent 200 --label-smoothing 0.1 --zero-gamma --no-wd

.PHONY: setup venv dataset train train-full test lint clean

setup: venv dataset

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

# Debian's dataset-fashion-mnist: installed system-wide as root, else unpacked into .cache/.
dataset:
	@if [ -f $(FMNIST_SYSTEM) ] || [ -f $(FMNIST_LOCAL) ]; then \
		echo "Fashion-MNIST: found"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		mkdir -p .cache && cd .cache && apt-get download dataset-fashion-mnist && \
		dpkg-deb -x dataset-fashion-mnist_*.deb dataset-fashion-mnist && rm -f dataset-fashion-mnist_*.deb; \
	fi

train: setup
	$(PY) train_se_resnext_w_d.py $(TRAIN_ARGS)

train-full: setup
	$(PY) train_se_resnext_w_d.py $(FULL_ARGS)

lint: venv
	$(PY) -m ruff check .

# The reference frameworks for convert_weights.py's tests (torch, timm, GluonCV): only make test
# installs them, so make train does not need torch.
TEST_STAMP := $(VENV)/.test-installed

$(TEST_STAMP): requirements-test.txt requirements-bench.txt $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-test.txt
	touch $(TEST_STAMP)

# Two pytest processes of one OpenMP thread each: 11 min 42 s for the suite on 2 cores (AMD EPYC
# without AVX-512), against 19 min 5 s in one process with two threads. Trainers that tests start as
# processes inherit the one thread, except under launch.py, which picks its workers' own.
test: setup lint $(TEST_STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 tests

# Speed against GluonCV, PyTorch (timm) and the textbook SE graph, float32 and INT8
# (benchmarks/bench.py), several minutes. The peers are the pinned packages make test uses:
# requirements-test.txt (torch, timm) includes requirements-bench.txt (GluonCV); pip --no-deps.
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS ?= --threads 2 --output log/bench.json

.PHONY: bench

$(BENCH_STAMP): requirements-bench.txt requirements-test.txt $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-test.txt
	touch $(BENCH_STAMP)

bench: venv $(BENCH_STAMP)
	$(PY) -m benchmarks.bench $(BENCH_ARGS)

clean:
	rm -rf model log .pytest_cache
