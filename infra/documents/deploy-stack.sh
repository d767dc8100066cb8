#!/bin/sh
# deploy-stack (runs on a manager): deploy one version of a Compose file from the stacks bucket as
# swarm stack SK_STACK_NAME. The file is read here, by the manager; nothing of it passes through the
# control plane. Before anything on the swarm changes, the file must be a Compose file, every
# service name one Swarm accepts, every image must exist (on this manager, or else in its registry)
# and every `external: true` secret must have its SecureString `<prefix>/secrets/<name>`. Each such
# secret becomes the swarm secret `<name>-v<parameter version>` (made once; Swarm secrets cannot
# change), mapped to the Compose name by a second Compose file, so a new parameter version rolls the
# services that use it; the versions before it are removed once no service uses them. A secret's
# value goes from the AWS CLI to `docker secret create` through a shell variable and a pipe written
# by printf (a builtin): never a file, an argument, stdout or stderr.
#
# Parameters (env): SK_STACK_NAME, SK_BUCKET, SK_KEY, SK_VERSION_ID, SK_PARAMETER_PREFIX, SK_REGION.
# Last stdout line: stack=<name> version=<object version> services=<n> secrets=<n>
#   (or, when the input is wrong: stack=<name> refused=true)
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=deploy-stack
# @include _prelude.sh
require SK_STACK_NAME SK_BUCKET SK_KEY SK_VERSION_ID SK_PARAMETER_PREFIX SK_REGION
# @include _scratch.sh
# @include _stacks.sh

[ "$SK_KEY" = "stacks/$SK_STACK_NAME.yml" ] || refuse "key $SK_KEY is not stacks/$SK_STACK_NAME.yml"
[ "$(docker info -f "${OPEN}.Swarm.ControlAvailable${CLOSE}" 2>/dev/null)" = true ] ||
	fail "this node is not a swarm manager"

aws s3api get-object --region "$SK_REGION" --bucket "$SK_BUCKET" --key "$SK_KEY" \
	--version-id "$SK_VERSION_ID" "$TMPD/stack.yml" >/dev/null 2>"$TMPD/err" ||
	fail "cannot read s3://$SK_BUCKET/$SK_KEY version $SK_VERSION_ID: $(excerpt <"$TMPD/err")"

# The file as docker reads it (merged, interpolated, in docker's own layout: two spaces per level).
stack_docker stack config -c "$TMPD/stack.yml" >"$TMPD/config.yml" 2>"$TMPD/err" ||
	refuse "not a Compose file docker accepts: $(excerpt <"$TMPD/err")"
compose_version=$(sed -n '1{/^version: /p;}' "$TMPD/config.yml")
[ -n "$compose_version" ] || fail "docker stack config printed no version line"

# swarm_name WHAT NAME: refuse NAME unless Swarm takes it for a service or a network (a DNS label:
# letters, digits, '-' and '_', a letter or digit at each end, 63 characters at most). Checked here
# because `docker stack deploy --prune` removes the services the file lacks before Swarm says no.
swarm_name() {
	case "$2" in
	"" | [!A-Za-z0-9]* | *[!A-Za-z0-9_-]* | *[!A-Za-z0-9]) refuse "$1: $2 is not a name Swarm accepts" ;;
	esac
	[ "${#2}" -le 63 ] || refuse "$1: $2 is longer than the 63 characters Swarm accepts"
}

# entries SECTION: one line per entry of a top-level section of the file, as
# `<name in the Compose file> <its name: or -> <external: 1 or 0>`.
entries() {
	awk -v section="$1:" 'function flush() { if (key != "") print key, name, external; key = "" }
	/^[^ ]/ { flush(); top = $0; next }
	top == section && /^  [^ ]/ { flush(); key = $1; sub(/:$/, "", key); name = "-"; external = 0; next }
	top == section && /^    name: / { name = $2; gsub(/["'\'']/, "", name) }
	top == section && /^    external: true$/ { external = 1 }
	END { flush() }' "$TMPD/config.yml"
}

# One line per service: `<service> <image>` (`-` when it has none).
awk '/^[^ ]/ { top = $0; next }
	top == "services:" && /^  [^ ]/ { if (svc != "") print svc, img; svc = $1; sub(/:$/, "", svc); img = "-"; next }
	top == "services:" && /^    image: / { img = $2; gsub(/["'\'']/, "", img) }
	END { if (svc != "") print svc, img }' "$TMPD/config.yml" >"$TMPD/images"
[ -s "$TMPD/images" ] || refuse "the Compose file has no services"
services=0
while read -r service image <&3; do
	services=$((services + 1))
	[ "$image" != - ] || refuse "service $service has no image"
	swarm_name "service $service" "${SK_STACK_NAME}_$service"
	case "$image" in
	-* | *[!A-Za-z0-9._/:@-]*) refuse "service $service: $image is not an image reference" ;;
	esac
	docker image inspect "$image" >/dev/null 2>&1 && continue
	timeout 60 docker manifest inspect "$image" >/dev/null 2>"$TMPD/err" ||
		refuse "service $service: image $image does not exist (not on this manager; the registry says: $(excerpt <"$TMPD/err"))"
done 3<"$TMPD/images"

# The networks the stack makes: `<stack>_<name in the file>`, or the name the file gives.
entries networks >"$TMPD/networks"
while read -r key name external <&3; do
	[ "$external" = 0 ] || continue
	if [ "$name" = - ]; then name="${SK_STACK_NAME}_$key"; fi
	swarm_name "network $key" "$name"
done 3<"$TMPD/networks"

# One line per external secret: `<name in the Compose file> <swarm name>`.
entries secrets >"$TMPD/entries"
while read -r key name external; do
	[ "$external" = 1 ] || continue
	[ "$name" != - ] || name=$key
	echo "$key $name"
done <"$TMPD/entries" >"$TMPD/secrets"

nl='
'
secrets=0
: >"$TMPD/made-now"
if [ -s "$TMPD/secrets" ]; then
	printf '%s\nsecrets:\n' "$compose_version" >"$TMPD/secrets.yml"
	while read -r key name <&3; do
		case "$key" in "" | *[!A-Za-z0-9_.-]*) refuse "secret $key: not a name swarmkeeper maps" ;; esac
		case "$name" in
		"" | [!A-Za-z0-9]* | *[!A-Za-z0-9_.-]*) refuse "secret $key: $name is not a parameter name" ;;
		esac
		[ "${#name}" -le 50 ] || refuse "secret $key: $name is longer than 50 characters"
		parameter="$SK_PARAMETER_PREFIX/secrets/$name"
		# The value stays in this variable until it is piped to docker; `x` keeps its last newline.
		answer=$(aws ssm get-parameter --region "$SK_REGION" --name "$parameter" --with-decryption \
			--query '[Parameter.Version,Parameter.Type,Parameter.Value]' --output text 2>"$TMPD/err" &&
			printf x) || {
			answer=
			grep -q ParameterNotFound "$TMPD/err" && refuse "secret $key: there is no parameter $parameter"
			fail "secret $key: get-parameter $parameter failed: $(excerpt <"$TMPD/err")"
		}
		parameter_version=${answer%%"	"*}
		answer=${answer#*"	"}
		parameter_type=${answer%%"	"*}
		answer=${answer#*"	"}
		answer=${answer%x}
		answer=${answer%"$nl"}
		case "$parameter_version" in "" | *[!0-9]*) answer= && fail "secret $key: no version for $parameter" ;; esac
		[ "$parameter_type" = SecureString ] || { answer= && refuse "secret $key: $parameter is not a SecureString"; }
		made="$name-v$parameter_version"
		if ! docker secret inspect "$made" >/dev/null 2>&1; then
			printf '%s' "$answer" | docker secret create --label "swarmkeeper.secret=$name" "$made" - \
				>/dev/null 2>"$TMPD/err" || { answer= && fail "docker secret create $made failed: $(excerpt <"$TMPD/err")"; }
		fi
		answer=
		printf '  %s:\n    external: true\n    name: %s\n' "$key" "$made" >>"$TMPD/secrets.yml"
		echo "$name $parameter_version" >>"$TMPD/made-now"
		secrets=$((secrets + 1))
	done 3<"$TMPD/secrets"
	set -- -c "$TMPD/stack.yml" -c "$TMPD/secrets.yml"
else
	set -- -c "$TMPD/stack.yml"
fi

# Swarm's InvalidArgument is about the file (a config it refuses, a port already taken, ...): the same
# version would fail again, so it is refused rather than tried again.
if ! stack_docker stack deploy --with-registry-auth --prune "$@" "$SK_STACK_NAME" >"$TMPD/out" 2>"$TMPD/err"; then
	grep -q 'code = InvalidArgument' "$TMPD/err" && refuse "Swarm refused the file: $(excerpt <"$TMPD/err")"
	fail "docker stack deploy failed: $(excerpt <"$TMPD/err")"
fi

# The versions before the one just deployed, of each secret this stack uses.
while read -r name parameter_version <&3; do
	made_from "$name" >"$TMPD/versions"
	while read -r made_version made; do
		if [ "$made_version" -lt "$parameter_version" ]; then drop_secret "$made"; fi
	done <"$TMPD/versions"
done 3<"$TMPD/made-now"

echo "stack=$SK_STACK_NAME version=$SK_VERSION_ID services=$services secrets=$secrets"
