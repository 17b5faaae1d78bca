#!/usr/bin/env bash
# llama-cpp-python for the bench's llama.cpp arms: built once from its PyPI sdist (a native
# build for this CPU, ~5 min on 2 cores), the wheel cached under $AGENTMILL_HOME/wheels/<cpu>/,
# then installed with its OpenAI-compatible server. A failure here only skips those arms.
set -euo pipefail
PY=${1:-.venv/bin/python}
VERSION=0.3.36
HOME_DIR=${AGENTMILL_HOME:-$HOME/.cache/agentmill}
# the build is native (-march=native): one wheel per CPU model and flag set
KEY=$( (grep -m1 "model name" /proc/cpuinfo; grep -m1 "^flags" /proc/cpuinfo) | sha256sum | cut -c1-12)
WHEELS="$HOME_DIR/wheels/$KEY"
if "$PY" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null; then
  exit 0
fi
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-$VERSION-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION from its sdist (once per CPU kind, ~5 min)"
  "$PY" -m pip wheel -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -w "$WHEELS"
fi
"$PY" -m pip install -q --find-links "$WHEELS" "llama-cpp-python[server]==$VERSION"
