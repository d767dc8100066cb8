#!/bin/sh
# bootstrap-node: make this instance a running Docker host and a member of the cluster's swarm.
#
# Parameters (env): SK_ROLE (manager|worker), SK_MODE (init|join), SK_ADVERTISE_ADDRESS,
#   SK_PARAMETER_PREFIX, SK_KMS_KEY_ID, SK_DOCKER_VERSION (may be empty), SK_REGION,
#   SK_CONTAINER_LOG_GROUP (empty: logs stay on the node), SK_ECR_REGISTRY (empty: no ECR helper).
# First, before dockerd starts or the node joins: containers' default log driver (awslogs to
# SK_CONTAINER_LOG_GROUP) and the ECR credential helper for SK_ECR_REGISTRY (_dockerd.sh).
# init: create the swarm unless this node already manages one, then publish both join tokens
#   (SecureString), manager-addresses and cluster-id under SK_PARAMETER_PREFIX.
# join: unless already a member, read join-token/SK_ROLE and manager-addresses and join through the
#   first manager that accepts (bounded retries); a manager then refreshes manager-addresses. Each
#   node starts at its own place in the manager list (from its address), so a burst spreads out. A
#   join that dockerd reports as continuing in the background (busy managers) is waited for, not
#   abandoned: the node leaves and tries the next manager only when that join failed or hangs.
# Idempotent: running it again on a member changes nothing in the swarm.
# Join tokens never reach stdout, stderr, a file or a command line (shell variables, pipes, the
# Engine API).
# Last stdout line: node-id=<id> role=<manager|worker> cluster-id=<id>
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=bootstrap-node
# @include _prelude.sh
require SK_ROLE SK_MODE SK_ADVERTISE_ADDRESS SK_PARAMETER_PREFIX SK_KMS_KEY_ID SK_REGION
case "$SK_ROLE" in manager | worker) ;; *) fail "SK_ROLE must be manager or worker" ;; esac
case "$SK_MODE" in init | join) ;; *) fail "SK_MODE must be init or join" ;; esac
case "${SK_CONTAINER_LOG_GROUP:-}${SK_ECR_REGISTRY:-}" in *[!a-z0-9./-]*) fail "SK_CONTAINER_LOG_GROUP and SK_ECR_REGISTRY may hold only a-z 0-9 . / -" ;; esac
# @include _scratch.sh

# --- Docker -----------------------------------------------------------------------------------

# @include _dockerd.sh

# ensure_docker: dockerd configured (log driver, registry credentials) and running, before any join.
ensure_docker() {
	configure_registry
	if docker info >/dev/null 2>&1; then
		logging=$(configure_log_driver)
		[ "$logging" = same ] || restart_dockerd_for_config
		return 0
	fi
	if ! command -v docker >/dev/null 2>&1; then
		command -v dnf >/dev/null 2>&1 || fail "docker is missing and dnf is not available to install it"
		pkg=docker
		[ -z "${SK_DOCKER_VERSION:-}" ] || pkg="docker-$SK_DOCKER_VERSION"
		dnf install -y -q "$pkg" >"$TMPD/dnf" 2>&1 || fail "dnf install $pkg failed: $(tail -n 3 "$TMPD/dnf" | excerpt)"
	fi
	configure_log_driver >/dev/null
	systemctl enable --now docker >"$TMPD/systemctl" 2>&1 ||
		fail "systemctl enable --now docker failed: $(tail -n 3 "$TMPD/systemctl" | excerpt)"
	await_docker
}

await_docker() {
	i=0
	until docker info >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -le 60 ] || fail "docker did not become ready within 60s"
		sleep 1
	done
}

swarm_state() { docker info -f "${OPEN}.Swarm.LocalNodeState${CLOSE} ${OPEN}.Swarm.ControlAvailable${CLOSE}" 2>/dev/null || echo "unknown false"; }

# await_join: a join dockerd goes on with in the background (LocalNodeState pending) is given up to
# 60 s. 0 once the node is active; 1 if that join failed (inactive, error, ...) or is still pending.
await_join() {
	w=0
	while :; do
		# shellcheck disable=SC2046 # two words: state, control
		set -- $(swarm_state)
		case "$1" in
		active) return 0 ;;
		pending) ;;
		*) return 1 ;;
		esac
		[ "$w" -lt 60 ] || return 1
		[ "$w" -gt 0 ] || echo "bootstrap-node: a join is still going on in the background; waiting up to 60s" >&2
		w=$((w + 1))
		sleep 1
	done
}

# --- Parameter Store ----------------------------------------------------------------------------

# @include _tokens.sh

# @include _parameters.sh

# --- join through the Engine API (keeps the token off the docker CLI's command line) -------------

# join_once ADDR: join through ADDR with $token; 0 on success, otherwise the reason is in
# $TMPD/join.err. The request reaches dockerd on curl's stdin.
join_once() {
	sock=${DOCKER_HOST:-unix:///var/run/docker.sock}
	case "$sock" in
	unix://*) sock=${sock#unix://} ;;
	*) fail "DOCKER_HOST must be a unix socket, not $sock" ;;
	esac
	code=$(printf '{"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": "%s", "RemoteAddrs": ["%s"], "JoinToken": "%s"}\n' \
		"$SK_ADVERTISE_ADDRESS" "$1" "$token" |
		curl -sS --noproxy '*' --unix-socket "$sock" -o "$TMPD/join.out" -w '%{http_code}' \
			-H 'Content-Type: application/json' --data-binary @- \
			http://localhost/swarm/join 2>"$TMPD/join.err") || code=000
	[ "$code" = 200 ] && return 0
	{
		echo "HTTP $code"
		cat "$TMPD/join.out" 2>/dev/null || true
	} >>"$TMPD/join.err"
	return 1
}

join_swarm() {
	token=$(aws ssm get-parameter --region "$SK_REGION" --name "$SK_PARAMETER_PREFIX/join-token/$SK_ROLE" \
		--with-decryption --query Parameter.Value --output text 2>"$TMPD/err") ||
		fail "cannot read $SK_PARAMETER_PREFIX/join-token/$SK_ROLE: $(excerpt <"$TMPD/err")"
	check_token "$SK_PARAMETER_PREFIX/join-token/$SK_ROLE" "$token"
	addrs=$(aws ssm get-parameter --region "$SK_REGION" --name "$SK_PARAMETER_PREFIX/manager-addresses" \
		--query Parameter.Value --output text 2>"$TMPD/err") ||
		fail "cannot read $SK_PARAMETER_PREFIX/manager-addresses: $(excerpt <"$TMPD/err")"
	case "$addrs" in "" | None) fail "$SK_PARAMETER_PREFIX/manager-addresses is empty" ;; esac
	command -v curl >/dev/null 2>&1 || fail "curl is required to join"
	# The managers from an offset of this node's own (the sum of its address's last two octets).
	order=$(echo "$addrs" | awk -F, -v ip="$SK_ADVERTISE_ADDRESS" '{
		split(ip, b, "."); k = (b[3] + b[4]) % NF
		for (i = 0; i < NF; i++) printf "%s ", $((k + i) % NF + 1)
	}')
	# Stop starting joins in time to report before the document's 900 s timeout.
	deadline=$(($(date +%s) + 600))
	round=1
	while [ "$round" -le 3 ]; do
		for addr in $order; do
			[ "$(date +%s)" -lt "$deadline" ] || fail "could not join through any of $addrs within 600s"
			case "$addr" in *:*) ;; *) addr="$addr:2377" ;; esac
			if join_once "$addr"; then
				return 0
			fi
			reason=$(excerpt <"$TMPD/join.err")
			rm -f "$TMPD/join.err"
			case "$reason" in
			*"valid join token"*) fail "join via $addr refused: $reason" ;;
			esac
			# A timed-out join (HTTP 503) keeps trying in the background: done if it gets in, else reset.
			await_join && return 0
			# shellcheck disable=SC2046 # two words: state, control
			set -- $(swarm_state)
			[ "$1" = inactive ] || docker swarm leave --force >/dev/null 2>&1 || true
			echo "bootstrap-node: join via $addr failed (round $round): $reason" >&2
		done
		round=$((round + 1))
		[ "$round" -gt 3 ] || sleep 5
	done
	fail "could not join through any of $addrs"
}

# --- main ------------------------------------------------------------------------------------------

ensure_docker
# shellcheck disable=SC2046 # two words: state, control
set -- $(swarm_state)
state=$1 control=$2

if [ "$SK_MODE" = init ]; then
	if [ "$state" = active ] && [ "$control" = true ]; then
		: # already manages a swarm: no second init
	elif [ "$state" = inactive ]; then
		docker swarm init --advertise-addr "$SK_ADVERTISE_ADDRESS" >/dev/null 2>"$TMPD/err" ||
			fail "docker swarm init failed: $(excerpt <"$TMPD/err")"
	else
		fail "cannot init: this node's swarm state is $state (control=$control)"
	fi
	for role in worker manager; do
		token=$(docker swarm join-token -q "$role" 2>"$TMPD/err") || fail "join-token $role: $(excerpt <"$TMPD/err")"
		put_secure "$SK_PARAMETER_PREFIX/join-token/$role" "$token"
	done
	token=
	cluster_id=$(docker info -f "${OPEN}.Swarm.Cluster.ID${CLOSE}")
	put_string "$SK_PARAMETER_PREFIX/cluster-id" "$cluster_id"
	publish_manager_addresses || fail "no reachable manager found"
else
	if [ "$state" = pending ]; then
		# An earlier run's join still going on in the background: let it finish or fail first.
		await_join || true
		# shellcheck disable=SC2046 # two words: state, control
		set -- $(swarm_state)
		state=$1 control=$2
	fi
	if [ "$state" = active ] && [ "$SK_ROLE" = manager ] && [ "$control" != true ]; then
		fail "already a worker of a swarm; promote it from a manager instead"
	fi
	if [ "$state" != active ]; then
		[ "$state" = inactive ] || docker swarm leave --force >/dev/null 2>&1 || true
		join_swarm
		token=
	fi
	if [ "$SK_ROLE" = manager ]; then
		i=0
		until [ "$(docker info -f "${OPEN}.Swarm.ControlAvailable${CLOSE}")" = true ]; do
			i=$((i + 1))
			[ "$i" -le 30 ] || fail "joined but not a manager after 30s"
			sleep 1
		done
		publish_manager_addresses || fail "no reachable manager found"
	fi
fi

node_id=$(docker info -f "${OPEN}.Swarm.NodeID${CLOSE}")
[ -n "$node_id" ] || fail "no swarm node id after bootstrap"
role=$(docker info -f "${OPEN}if .Swarm.ControlAvailable${CLOSE}manager${OPEN}else${CLOSE}worker${OPEN}end${CLOSE}")
cluster_id=$(docker info -f "${OPEN}with .Swarm.Cluster${CLOSE}${OPEN}.ID${CLOSE}${OPEN}end${CLOSE}")
if [ -z "$cluster_id" ]; then
	# Workers do not see the cluster object; their node certificate's organization is the cluster id.
	cert="$(docker info -f "${OPEN}.DockerRootDir${CLOSE}")/swarm/certificates/swarm-node.crt"
	subject=$(openssl x509 -noout -subject -nameopt multiline -in "$cert" 2>/dev/null) || subject=
	cluster_id=$(printf '%s\n' "$subject" | awk -F' = ' '$1 ~ /organizationName/ { print $2; exit }')
fi
echo "node-id=$node_id role=$role cluster-id=${cluster_id:-unknown}"
