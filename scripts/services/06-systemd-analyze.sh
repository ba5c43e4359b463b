# systemd-analyze checks systemd/drdrill.service offline (tests/systemd_unit.rs):
# `verify` and `security --offline=true` work without systemd running as PID 1.
if ! command -v systemd-analyze >/dev/null; then
    apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi
