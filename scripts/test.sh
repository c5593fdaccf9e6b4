#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it.
# Usage: bash scripts/test.sh [pytest args...]   (RTSER_DATA defaults to ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."

# PortAudio and libsndfile for rtser; PulseAudio (a virtual microphone), mosquitto (a real broker),
# openssl (its TLS certificates) and strace (the privacy test watches the real processes) for the
# tests of live capture, MQTT and privacy.
need_apt=()
for pkg in libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins mosquitto mosquitto-clients openssl strace; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[train,dev,micro-vad]"
exec .venv/bin/python -m pytest "$@"
