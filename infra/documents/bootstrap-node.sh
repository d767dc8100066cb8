#!/bin/sh
# placeholder: bootstrap-node
set -eu
echo "not implemented: bootstrap-node" >&2
exit 1
