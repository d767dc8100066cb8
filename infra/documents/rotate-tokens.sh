#!/bin/sh
# rotate-tokens (runs on a manager): rotate the worker and manager join tokens and store the new ones
# as SecureStrings. Tokens never reach stdout, stderr or a command line (0600 files in a temp dir).
#
# Parameters (env): SK_PARAMETER_PREFIX, SK_KMS_KEY_ID, SK_REGION.
# Last stdout line: rotated=worker,manager
set -eu
# Docker Go templates are put together at run time: in an SSM document a double brace means a
# document parameter.
o='{''{' c='}''}'
umask 077

fail() {
	echo "rotate-tokens: $*" >&2
	exit 1
}
mask() { sed 's/SWMTKN-[A-Za-z0-9-]*/[join token redacted]/g' | tr '\n' ' ' | cut -c1-400; }

for v in SK_PARAMETER_PREFIX SK_KMS_KEY_ID SK_REGION; do
	eval "val=\${$v:-}"
	[ -n "$val" ] || fail "$v is not set"
done
[ "$(docker info -f "${o}.Swarm.ControlAvailable${c}" 2>/dev/null)" = true ] || fail "this node is not a swarm manager"

TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT
trap 'exit 130' INT TERM

# @include _tokens.sh

for role in worker manager; do
	docker swarm join-token --rotate -q "$role" >"$TMPD/token" 2>"$TMPD/err" ||
		fail "docker swarm join-token --rotate $role failed: $(mask <"$TMPD/err")"
	put_secure "$SK_PARAMETER_PREFIX/join-token/$role" "$TMPD/token"
	rm -f "$TMPD/token"
done
echo "rotated=worker,manager"
