# shellcheck shell=sh
# _scratch.sh: TMPD, a 0700 directory for this run's scratch files, removed when the run exits.
# infra/documents puts it in place of a script's `# @include _scratch.sh` line when it builds the
# document. Not a document of its own.
# Needs from the script: fail (_prelude.sh).
umask 077
TMPD=$(mktemp -d) || fail "cannot create a temporary directory"
trap 'rm -rf "$TMPD"' EXIT
trap 'exit 130' INT TERM
