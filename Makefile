# Two commands do everything on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST_SYSTEM := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
FMNIST_LOCAL := .cache/dataset-fashion-mnist/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# The main job: SE-ResNeXt-14 (32x32, three stages of two basic SE units, 16/32/64 channels) on
# Fashion-MNIST, 3 epochs. Bottleneck (grouped) depths train 3-10x slower on this CPU; see README "make train".
TRAIN_ARGS ?= --data-type fashion-mnist --depth 14 --batch-size 128 --lr 0.1 --warmup-epochs 0.1 \
	--num-epochs 3 --lr-step-epochs 1.5,2.5 --aug-level 1 --frequent 100

.PHONY: setup venv dataset train test lint clean

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

lint: venv
	$(PY) -m ruff check .

test: setup lint
	$(PY) -m pytest -q tests

# Speed against GluonCV and against the textbook SE graph (benchmarks/bench.py), a few minutes.
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS ?= --threads 2 --output log/bench.json

.PHONY: bench

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-bench.txt
	touch $(BENCH_STAMP)

bench: venv $(BENCH_STAMP)
	$(PY) -m benchmarks.bench $(BENCH_ARGS)

clean:
	rm -rf model log .pytest_cache
