#!/bin/sh
# Installs promtool (Debian's prometheus package) when it is missing: the
# alert rule tests (alerts_test.yml) need it. `make promtool` runs this, as
# root.
#
# The package would start a Prometheus server. A policy-rc.d answering
# "exit 101" keeps it from starting: we write one only when there is none,
# and remove ours however we end (failure, Ctrl-C, kill). One that was
# there may let the server start, so after the install it is stopped and
# disabled whatever the policy. POLICY_RC_D overrides the policy's path
# (for the test, cmd/outboxd/promtool_install_test.go).
set -eu
policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
if command -v promtool >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "promtool missing: run 'make promtool' as root, or apt-get install --no-install-recommends prometheus" >&2
	exit 1
fi

own_policy=
cleanup() {
	if [ -n "$own_policy" ]; then
		rm -f "$policy"
	fi
}
trap cleanup EXIT
# A signal ends the script through exit, so the EXIT trap runs.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
if [ ! -e "$policy" ]; then
	# Marked ours before it exists: a signal in between removes nothing
	# that was not ours.
	own_policy=1
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
fi

if ! apt-get update -qq; then
	echo "apt-get update failed" >&2
	exit 1
fi
status=0
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null || status=$?
# Whatever the policy let happen, no Prometheus server stays running or
# enabled: we only wanted promtool.
if command -v systemctl >/dev/null 2>&1; then
	systemctl disable prometheus >/dev/null 2>&1 || true
	if [ -d /run/systemd/system ]; then
		systemctl stop prometheus >/dev/null 2>&1 || true
	fi
fi
if command -v service >/dev/null 2>&1; then
	service prometheus stop >/dev/null 2>&1 || true
fi
if command -v update-rc.d >/dev/null 2>&1; then
	update-rc.d prometheus disable >/dev/null 2>&1 || true
fi
if [ "$status" != 0 ]; then
	echo "apt-get install prometheus failed" >&2
	exit 1
fi
