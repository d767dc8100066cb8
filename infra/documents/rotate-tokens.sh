#!/bin/sh
# rotate-tokens (runs on a manager): rotate the worker and manager join tokens and store the new ones
# as SecureStrings. Tokens never reach stdout, stderr, a file or a command line.
#
# Parameters (env): SK_PARAMETER_PREFIX, SK_KMS_KEY_ID, SK_REGION.
# Last stdout line: rotated=worker,manager
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=rotate-tokens
# @include _prelude.sh
require SK_PARAMETER_PREFIX SK_KMS_KEY_ID SK_REGION
[ "$(docker info -f "${OPEN}.Swarm.ControlAvailable${CLOSE}" 2>/dev/null)" = true ] || fail "this node is not a swarm manager"
# @include _scratch.sh
# @include _tokens.sh

for role in worker manager; do
	token=$(docker swarm join-token --rotate -q "$role" 2>"$TMPD/err") ||
		fail "docker swarm join-token --rotate $role failed: $(excerpt <"$TMPD/err")"
	put_secure "$SK_PARAMETER_PREFIX/join-token/$role" "$token"
done
token=
echo "rotated=worker,manager"
