#!/bin/sh
# placeholder: verify-node
set -eu
echo "not implemented: verify-node" >&2
exit 1
