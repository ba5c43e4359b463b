# python3-croniter, an implementation of crontab schedules independent of drdrill:
# tests/integration/validation.rs checks drdrill's firing times against it.
if ! /usr/bin/python3 -c 'import croniter' 2>/dev/null; then
    apt-get install -y --no-install-recommends python3-croniter >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends python3-croniter >/dev/null; }
fi
