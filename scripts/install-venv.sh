#!/bin/sh
# Install vend-sidecar and its runtime dependencies into a fresh virtual environment,
# the one way both the container image (Dockerfile, build stage) and CI
# (scripts/lint.sh) do it, so what CI runs is what the image ships.
#
#   usage: scripts/install-venv.sh SOURCE_DIR VENV_DIR
#
# 1. Build the project's wheel, then fetch every runtime dependency as a binary
#    wheel (--only-binary: never a compiler, in the image or here). Ranges come
#    from pyproject.toml's [project] dependencies, exact versions from the
#    project's constraints.txt (the same pins CI tests with).
# 2. Create the venv without pip (nothing in it can install more at run time) and
#    install from those wheels only (--no-index): the set is complete or this fails.
# 3. Compile every module to .pyc now, with unchecked-hash invalidation: the code is
#    immutable, so the interpreter never stats sources nor writes .pyc at run time,
#    which a read-only root filesystem could not take anyway.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR VENV_DIR" >&2
    exit 2
fi
src=$1
venv=$2
python=${PYTHON:-python3}

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
trap 'exit 1' INT TERM

"$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$src"
"$python" -m pip wheel --quiet --only-binary=:all: --constraint "$src/constraints.txt" \
    --wheel-dir "$wheels" "$wheels"/vend_sidecar-*.whl

"$python" -m venv --without-pip "$venv"
"$python" -m pip --python "$venv/bin/python" install --quiet --no-index --find-links "$wheels" \
    --no-compile "$wheels"/vend_sidecar-*.whl
"$venv/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$venv/lib"
