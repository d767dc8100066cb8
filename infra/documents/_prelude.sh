# shellcheck shell=sh
# _prelude.sh: how every document starts. infra/documents puts it in place of a script's
# `# @include _prelude.sh` line when it builds the document (an instance runs a document alone).
# Not a document of its own.
# Needs from the script: ME, its action name (the prefix of every reason it prints).
set -eu

# Docker Go templates are put together at run time: in an SSM document a double brace means a
# document parameter.
# shellcheck disable=SC2034 # used by the documents that include this
OPEN='{''{' CLOSE='}''}'

fail() {
	echo "$ME: $*" >&2
	exit 1
}

# excerpt: its input as one line of at most 400 characters, anything token-shaped masked; for text
# that is about to be printed as a reason.
excerpt() { sed 's/SWMTKN-[A-Za-z0-9-]*/[join token redacted]/g' | tr '\n' ' ' | cut -c1-400; }

# require NAME...: fail unless each of these variables is set and not empty.
require() {
	for name in "$@"; do
		eval "value=\${$name:-}"
		[ -n "$value" ] || fail "$name is not set"
	done
}
