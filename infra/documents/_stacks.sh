# shellcheck shell=sh
# _stacks.sh: what deploy-stack and remove-stack share. infra/documents puts it in place of their
# `# @include _stacks.sh` line when it builds each document. Not a document of its own.
# Needs from the script: fail, excerpt, OPEN, CLOSE (_prelude.sh), TMPD (_scratch.sh), SK_STACK_NAME.

# refuse REASON: the input itself is wrong (not a Compose file, an image or a secret that does not
# exist, ...): says so on the last stdout line, so that the control plane does not try the same
# object version again, then fails with REASON.
refuse() {
	echo "stack=$SK_STACK_NAME refused=true"
	fail "$*"
}

# stack_docker ARGS...: docker with none of the agent's environment (its variables, the document's
# parameters): Compose fills in `${NAME}` from the environment of the process that reads the file.
stack_docker() {
	env -i PATH="$PATH" HOME="${HOME:-}" DOCKER_HOST="${DOCKER_HOST:-}" DOCKER_CONFIG="${DOCKER_CONFIG:-}" \
		docker "$@"
}

# made_from NAME: the swarm secrets swarmkeeper made from the parameter secrets/NAME, one per line as
# `<parameter version> <secret name>` (the secret is named `NAME-v<version>`).
made_from() {
	docker secret ls --filter "label=swarmkeeper.secret=$1" --format "${OPEN}.Name${CLOSE}" \
		>"$TMPD/made" 2>"$TMPD/err" || fail "docker secret ls failed: $(excerpt <"$TMPD/err")"
	while read -r made; do
		made_version=${made##*-v}
		case "$made_version" in "" | *[!0-9]*) continue ;; esac
		echo "$made_version $made"
	done <"$TMPD/made"
}

# drop_secret NAME: removes the swarm secret, unless a service still uses it (Swarm refuses then: the
# stack that uses it drops it when it moves on).
drop_secret() {
	docker secret rm "$1" >/dev/null 2>&1 || true
}
