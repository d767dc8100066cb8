#!/bin/sh
# remove-stack (runs on a manager): remove swarm stack SK_STACK_NAME (a stack already gone counts as
# removed), then the swarm secrets swarmkeeper made for it that no other service uses.
#
# Parameters (env): SK_STACK_NAME.
# Last stdout line: stack=<name> removed=true
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=remove-stack
# @include _prelude.sh
require SK_STACK_NAME
# @include _scratch.sh
# @include _stacks.sh

[ "$(docker info -f "${OPEN}.Swarm.ControlAvailable${CLOSE}" 2>/dev/null)" = true ] ||
	fail "this node is not a swarm manager"

namespace="label=com.docker.stack.namespace=$SK_STACK_NAME"
stack_services() {
	docker service ls -q --filter "$namespace" 2>"$TMPD/err" || fail "docker service ls failed: $(excerpt <"$TMPD/err")"
}

services=$(stack_services)
: >"$TMPD/used"
if [ -n "$services" ]; then
	# shellcheck disable=SC2086 # one argument per service id
	docker service inspect -f "${OPEN}range .Spec.TaskTemplate.ContainerSpec.Secrets${CLOSE}${OPEN}.SecretName${CLOSE} ${OPEN}end${CLOSE}" \
		$services >"$TMPD/used" 2>"$TMPD/err" || fail "docker service inspect failed: $(excerpt <"$TMPD/err")"
fi

# The networks go after the services; Swarm may still hold one for a task that is stopping.
i=0
until stack_docker stack rm "$SK_STACK_NAME" >"$TMPD/out" 2>"$TMPD/err"; do
	i=$((i + 1))
	[ "$i" -le 30 ] || fail "docker stack rm failed: $(excerpt <"$TMPD/err")"
	sleep 2
done
i=0
while [ -n "$(stack_services)" ]; do
	i=$((i + 1))
	[ "$i" -le 60 ] || fail "the services of stack $SK_STACK_NAME are still there after 60 s"
	sleep 1
done

docker secret ls --filter label=swarmkeeper.secret --format "${OPEN}.Name${CLOSE}" >"$TMPD/ours" 2>"$TMPD/err" ||
	fail "docker secret ls failed: $(excerpt <"$TMPD/err")"
tr ' ' '\n' <"$TMPD/used" | while read -r secret; do
	[ -n "$secret" ] || continue
	if grep -qxF "$secret" "$TMPD/ours"; then drop_secret "$secret"; fi
done
echo "stack=$SK_STACK_NAME removed=true"
