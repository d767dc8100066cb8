#!/bin/sh
# refresh-registry-auth (State Manager, on every manager, every 6 hours): on the swarm's leader, give
# each service whose image is in the account's ECR registry SK_ECR_REGISTRY a fresh ECR credential.
#
# Swarm keeps the registry credential a service was deployed or updated with (--with-registry-auth)
# and hands it to the node of every new task; an ECR credential lasts 12 hours, so a task scheduled
# later on a node without the image could not pull it. `docker service update --with-registry-auth`
# asks the credential helper for a new one (its cache off: a full 12 hours). Swarm leaves running
# tasks alone when only the credential changes; the image is not resolved again (--no-resolve-image),
# so nothing else changes. A service in the middle of an update or a rollback is left as it is
# (updating it would resume a paused rollout); the next run refreshes it.
#
# Parameters (env): SK_ECR_REGISTRY (empty: nothing to refresh).
# Last stdout line: refreshed=<n> skipped=<n> leader=<true|false>
# Exit 1 when a service could not be refreshed (after trying every other one), with its reason.
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=refresh-registry-auth
# @include _prelude.sh

registry=${SK_ECR_REGISTRY:-}
case "$registry" in *[!a-z0-9.-]*) fail "SK_ECR_REGISTRY may hold only a-z 0-9 . -" ;; esac
leader=$(docker node inspect self -f "${OPEN}.ManagerStatus.Leader${CLOSE}" 2>/dev/null) || leader=false
if [ -z "$registry" ] || [ "$leader" != true ]; then
	echo "refreshed=0 skipped=0 leader=$leader"
	exit 0
fi

services=$(docker service ls -q 2>&1) || fail "docker service ls failed: $(echo "$services" | excerpt)"
refreshed=0 skipped=0 failed=
for id in $services; do
	# image and update state; a service removed meanwhile has nothing to refresh
	seen=$(docker service inspect -f "${OPEN}.Spec.TaskTemplate.ContainerSpec.Image${CLOSE} ${OPEN}if .UpdateStatus${CLOSE}${OPEN}.UpdateStatus.State${CLOSE}${OPEN}end${CLOSE}" "$id" 2>/dev/null) || continue
	image=${seen%% *} state=${seen#* }
	case "$image" in "$registry"/*) ;; *) continue ;; esac
	case "$state" in "" | completed | rollback_completed) ;; *)
		skipped=$((skipped + 1))
		continue
		;;
	esac
	if err=$(AWS_ECR_DISABLE_CACHE=true docker service update --detach --quiet --with-registry-auth --no-resolve-image "$id" 2>&1 >/dev/null); then
		refreshed=$((refreshed + 1))
	else
		failed="$failed $id: $(echo "$err" | excerpt);"
	fi
done
[ -z "$failed" ] || fail "cannot refresh the registry credential of$failed"
echo "refreshed=$refreshed skipped=$skipped leader=true"
