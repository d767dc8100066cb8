# shellcheck shell=sh
# _prelude.sh: how every document starts. infra/documents puts it in place of a script's
# `# @include _prelude.sh` line when it builds the document (an instance runs a document alone).
# Not a document of its own.
# Needs from the script: ME, its action name (the prefix of every reason it prints).

# Stop at the first command that fails or the first unset variable, and let a pipeline fail when
# any command in it fails where the shell can (bash, /bin/sh on Amazon Linux 2023; not dash before
# 0.5.13). The documents do not depend on pipefail: the output of a command whose failure matters
# is captured and checked before anything reads it.
set -eu
# shellcheck disable=SC3040 # tried in a subshell first: set only where the shell has it
if (set -o pipefail) 2>/dev/null; then set -o pipefail; fi

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

# is_not_found TEXT: TEXT is docker's answer about a node id the swarm does not know.
is_not_found() {
	case "$1" in *"not found"* | *"No such node"* | *"no such node"*) return 0 ;; esac
	return 1
}
