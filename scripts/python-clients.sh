#!/usr/bin/env bash
# The Python Kafka clients the tests drive (scripts/compat.py, and tests/tests/compaction/
# through runnel_tests::python): confluent-kafka and kafka-python, pinned, in .venv at the
# repository's root. Idempotent: installs from PyPI only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
requirements=(confluent-kafka==2.16.1 kafka-python==3.0.12)

if ! "$venv/bin/python" -c "import confluent_kafka, kafka" 2>/dev/null; then
    echo "python-clients: installing ${requirements[*]} into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
fi
