#!/usr/bin/env bash
# Installs what the test suite needs beyond Python packages (Debian packages for the
# PostgreSQL server and headless Chromium). Idempotent: it does nothing when they exist.
set -euo pipefail
# PostgreSQL for the search tests (each test session starts its own server on loopback).
bash "$(dirname "$0")/postgres_local.sh" install
# Headless Chromium for the report test (the test installs it too if it is missing).
bash "$(dirname "$0")/install_chromium.sh"
