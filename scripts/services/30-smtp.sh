# SMTP sink for the email tests: aiosmtpd (from the venv made by 00-python.sh)
# storing every message in a Maildir that the tests read back.
# Sourced by scripts/test; uses free_port, cleanups and DRDRILL_TEST_ROOT from there.
DRDRILL_TEST_SMTP_PORT="$(free_port)"
# aiosmtpd creates the Maildir itself: an existing empty folder has no
# tmp/new/cur and every message would be refused.
DRDRILL_TEST_MAILDIR="$DRDRILL_TEST_ROOT/maildir"
# -n: do not setuid to nobody (we may run as root).
"$DRDRILL_TEST_VENV/bin/python" -u -m aiosmtpd -n -l "127.0.0.1:$DRDRILL_TEST_SMTP_PORT" \
    -c aiosmtpd.handlers.Mailbox "$DRDRILL_TEST_MAILDIR" >"$DRDRILL_TEST_ROOT/smtp.log" 2>&1 &
smtp_pid=$!
cleanups+=("kill $smtp_pid; wait $smtp_pid 2>/dev/null")
for _ in $(seq 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $DRDRILL_TEST_SMTP_PORT), 0.2)" 2>/dev/null; then
        break
    fi
    kill -0 "$smtp_pid" 2>/dev/null || { cat "$DRDRILL_TEST_ROOT/smtp.log"; echo "aiosmtpd did not start" >&2; exit 1; }
    sleep 0.05
done
export DRDRILL_TEST_SMTP_PORT DRDRILL_TEST_MAILDIR
