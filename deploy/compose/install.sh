#!/bin/sh
# Build-stage helper of deploy/compose/Dockerfile: installs into the /opt/gateway venv.
#   install.sh deps      the runtime dependencies listed in /src/pyproject.toml
#   install.sh project   the project itself from /src (its dependencies are already installed)
# INSTALL_FROM=wheels installs only from /build/wheels (no network); "index" uses the index.
set -eu

step="${1:?usage: install.sh deps|project}"
pip=/opt/gateway/bin/pip
python=/opt/gateway/bin/python

case "${INSTALL_FROM:-index}" in
    wheels)
        if ! ls /build/wheels/*.whl >/dev/null 2>&1; then
            echo "INSTALL_FROM=wheels, but deploy/compose/wheels/ holds no wheels:" \
                "build the wheelhouse on the host first (deploy/compose/README.md)" >&2
            exit 1
        fi
        set -- --no-index --find-links /build/wheels
        ;;
    index)
        set --
        ;;
    *)
        echo "INSTALL_FROM must be 'index' or 'wheels', not '${INSTALL_FROM}'" >&2
        exit 1
        ;;
esac

case "$step" in
    deps)
        # The dependency list is read from pyproject.toml so it has a single source of truth.
        "$python" -c 'import sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print("\n".join(deps))' /src/pyproject.toml >/build/requirements.txt
        echo "installing dependencies ($INSTALL_FROM):"
        cat /build/requirements.txt
        "$pip" install "$@" --requirement /build/requirements.txt
        ;;
    project)
        # Build isolation takes setuptools and wheel from the same place as the dependencies.
        "$pip" install "$@" --no-deps /src
        "$pip" check
        ;;
    *)
        echo "unknown step '$step': expected deps or project" >&2
        exit 1
        ;;
esac
