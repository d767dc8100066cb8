# shellcheck shell=sh
# _scratch.sh: TMPD, this run's private directory for scratch files (error text; never a join token),
# removed when the run exits. infra/documents puts it in place of a script's `# @include _scratch.sh`
# line when it builds the document. Not a document of its own.
# Needs from the script: fail (_prelude.sh).
#
# The SSM agent ends a run that outlives its timeoutSeconds, or is cancelled, with SIGKILL to the
# run's whole process group: no trap runs then. So the directories live on a tmpfs (/run, writable by
# root only), each named after the PID of its run, and every run first removes those whose run is
# gone. SWARMKEEPER_RUN_DIR moves the parent (the lab gives each node its own).
umask 077
RUN_DIR=${SWARMKEEPER_RUN_DIR:-/run/swarmkeeper}
mkdir -p "$RUN_DIR" || fail "cannot create $RUN_DIR"
for stale in "$RUN_DIR"/*; do
	pid=${stale##*/}
	case "$pid" in "" | *[!0-9]*) continue ;; esac
	[ "$pid" != "$$" ] && kill -0 "$pid" 2>/dev/null && continue
	rm -rf "$stale"
done
TMPD=$RUN_DIR/$$
mkdir "$TMPD" || fail "cannot create $TMPD"
trap 'rm -rf "$TMPD"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
