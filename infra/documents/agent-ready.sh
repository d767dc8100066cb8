#!/bin/sh
# agent-ready (State Manager association on every instance of the cluster, applied by the SSM agent as
# soon as it registers): does nothing but succeed. Its status event ("EC2 State Manager Instance
# Association State Change", Success) tells the join flow the agent is up, so the bootstrap starts
# then instead of at the next poll.
#
# Parameters: none.
# Last stdout line: agent=ready
# shellcheck disable=SC2034 # read by fail (_prelude.sh)
ME=agent-ready
# @include _prelude.sh
echo "agent=ready"
