#!/bin/sh
# Regenerate the autotools build files: ./autogen.sh && ./configure && make
set -e
cd "$(dirname "$0")"
autoreconf --install --force --warnings=all
