#!/usr/bin/env bash
# Install everything the test suite needs and run all of it (this is what CI runs).
# Real components a test needs are installed here; under CI=true a missing one fails the run.
CONFNODE_EXTRAS="[test]" source "$(dirname "$0")/venv.sh"
export PYTHONDONTWRITEBYTECODE=1
.venv/bin/ruff check confnode tests bench loadtests examples
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
