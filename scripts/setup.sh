#!/usr/bin/env bash
# Install what the study needs, idempotently: Fashion-MNIST, a virtual environment with the
# pinned packages (constraints.txt), and the study's Jupyter kernel. A second run takes seconds.
#   VENV=.venv  PYTHON=python3  bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# 1. Fashion-MNIST (Debian package when we can install it; otherwise torchvision downloads later).
fmnist_found() {
  for d in "${FASHION_MNIST_DIR:-/nonexistent}" data/fashion-mnist /usr/share/datasets/fashion-mnist; do
    [ -f "$d/t10k-labels-idx1-ubyte.gz" ] && [ -f "$d/train-images-idx3-ubyte.gz" ] && return 0
  done
  return 1
}
if ! fmnist_found; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: Fashion-MNIST not found; it will be downloaded into data/fashion-mnist by torchvision"
    NEED_DOWNLOAD=1
  fi
fi

# 2. The virtual environment, reinstalled only when the requirements change.
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 needed"'
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.inversion-setup"
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing packages into $VENV (pinned by constraints.txt)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[notebooks,dev]"
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name inversion \
      --display-name "Python (inversion study)" >/dev/null
  echo "$want" > "$stamp"
fi

if [ "${NEED_DOWNLOAD:-0}" = 1 ]; then
  "$VENV/bin/python" -c "from inversion.data import fashion_mnist; fashion_mnist.download()"
fi
echo "setup: ready ($("$VENV/bin/python" -c 'from importlib.metadata import version as v; print("torch", v("torch") + ", timm", v("timm"))'))"
