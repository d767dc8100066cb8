# shellcheck shell=sh
# _dockerd.sh: how Docker is configured on a node before it joins: dockerd's default log driver
# (daemon.json) and the Docker CLI's credential helper for the account's ECR registry (config.json).
# infra/documents puts it in place of a script's `# @include _dockerd.sh` line when it builds the
# document. Not a document of its own.
# Needs from the script: fail, excerpt, OPEN, CLOSE (_prelude.sh), TMPD (_scratch.sh), await_docker,
# SK_REGION, SK_CONTAINER_LOG_GROUP and SK_ECR_REGISTRY (either may be empty).
# DOCKERD_CONFIG_FILE (default /etc/docker/daemon.json) is the file dockerd reads; a dockerd that
# reads another one (the lab's) is not this script's to restart. DOCKER_CONFIG (default
# /root/.docker) is the CLI's directory, as for the docker CLI itself.

DAEMON_JSON=${DOCKERD_CONFIG_FILE:-/etc/docker/daemon.json}
CLI_CONFIG_DIR=${DOCKER_CONFIG:-/root/.docker}

# json_update FILE MODE PATCH [MERGED_KEY]: FILE's JSON object with each key of the object PATCH
# set (MERGED_KEY, an object, merged key by key instead), written atomically with MODE when it
# changes. Prints "changed" or "same". Fails on a FILE that is not a JSON object (never clobbered).
json_update() {
	command -v python3 >/dev/null 2>&1 || fail "python3 is required to edit $1"
	mkdir -p "$(dirname "$1")"
	python3 - "$1" "$2" "$3" "${4:-}" >"$TMPD/json.out" 2>"$TMPD/json.err" <<-'EOF' ||
		import json, os, sys, tempfile
		path, mode, patch, merged_key = sys.argv[1], int(sys.argv[2], 8), json.loads(sys.argv[3]), sys.argv[4]
		try:
		    with open(path) as f:
		        text = f.read()
		except FileNotFoundError:
		    text = ""
		current = json.loads(text) if text.strip() else {}
		if not isinstance(current, dict):
		    sys.exit(f"{path} is not a JSON object")
		wanted = dict(current)
		for key, value in patch.items():
		    if key == merged_key and isinstance(current.get(key), dict):
		        value = {**current[key], **value}
		    wanted[key] = value
		if wanted == current and text:
		    print("same")
		    sys.exit(0)
		fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".swarmkeeper-")
		with os.fdopen(fd, "w") as f:
		    json.dump(wanted, f, indent=2, sort_keys=True)
		    f.write("\n")
		os.chmod(tmp, mode)
		os.replace(tmp, path)
		print("changed")
	EOF
		fail "cannot update $1: $(excerpt <"$TMPD/json.err")"
	cat "$TMPD/json.out"
}

# configure_log_driver: prints "changed" or "same". With SK_CONTAINER_LOG_GROUP, containers log to
# that CloudWatch Logs group by default (awslogs; one stream per container, named after it; the
# group is the stack's, never created here; non-blocking, so a slow CloudWatch never stalls a
# container's stdout). Without it, a daemon.json that exists is left as it is, and a missing one
# gets json-file with rotation. No live-restore either way (swarm mode refuses it).
configure_log_driver() {
	if [ -n "${SK_CONTAINER_LOG_GROUP:-}" ]; then
		tag="${OPEN}.Name${CLOSE}"
		json_update "$DAEMON_JSON" 0644 "$(printf '{"log-driver": "awslogs", "log-opts": {"awslogs-region": "%s", "awslogs-group": "%s", "awslogs-create-group": "false", "tag": "%s", "mode": "non-blocking", "max-buffer-size": "4m"} }' \
			"$SK_REGION" "$SK_CONTAINER_LOG_GROUP" "$tag")"
	elif [ -f "$DAEMON_JSON" ]; then
		echo same
	else
		json_update "$DAEMON_JSON" 0644 '{"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"} }'
	fi
}

# configure_registry: the CLI (docker pull, docker stack deploy --with-registry-auth) gets ECR
# credentials from the instance role through docker-credential-ecr-login, which asks ECR for a
# fresh token whenever one is needed: nobody runs docker login, and no token outlives its 12 hours.
configure_registry() {
	[ -n "${SK_ECR_REGISTRY:-}" ] || return 0
	if ! command -v docker-credential-ecr-login >/dev/null 2>&1; then
		if command -v dnf >/dev/null 2>&1; then
			dnf install -y -q amazon-ecr-credential-helper >"$TMPD/dnf" 2>&1 ||
				fail "dnf install amazon-ecr-credential-helper failed: $(tail -n 3 "$TMPD/dnf" | excerpt)"
		else
			echo "bootstrap-node: docker-credential-ecr-login is missing and dnf is not available to install it; pulls from $SK_ECR_REGISTRY will need it" >&2
		fi
	fi
	json_update "$CLI_CONFIG_DIR/config.json" 0600 "{\"credHelpers\": {\"$SK_ECR_REGISTRY\": \"ecr-login\"} }" credHelpers >/dev/null
}

# restart_dockerd_for_config: a running dockerd reads a changed daemon.json only when it restarts.
# Restarted only when systemd runs it from /etc/docker/daemon.json and the node is in no swarm yet
# (a member's tasks would stop): otherwise the change applies from dockerd's next start, said on stderr.
restart_dockerd_for_config() {
	state=$(docker info -f "${OPEN}.Swarm.LocalNodeState${CLOSE}" 2>/dev/null) || state=unknown
	if [ "$DAEMON_JSON" != /etc/docker/daemon.json ] || [ "$state" != inactive ] ||
		! command -v systemctl >/dev/null 2>&1 || ! systemctl is-active --quiet docker 2>/dev/null; then
		echo "bootstrap-node: $DAEMON_JSON changed; the running dockerd (swarm $state) was not restarted, it applies the change from its next start" >&2
		return 0
	fi
	systemctl restart docker >"$TMPD/systemctl" 2>&1 ||
		fail "systemctl restart docker failed: $(tail -n 3 "$TMPD/systemctl" | excerpt)"
	await_docker
}
