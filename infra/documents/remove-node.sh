#!/bin/sh
# placeholder: remove-node
set -eu
echo "not implemented: remove-node" >&2
exit 1
