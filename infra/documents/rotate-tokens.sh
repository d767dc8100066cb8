#!/bin/sh
# placeholder: rotate-tokens
set -eu
echo "not implemented: rotate-tokens" >&2
exit 1
