# The sqlite3 command-line tool: the evidence tests tamper with the database
# through it, the way a person with shell access would.
if ! command -v sqlite3 >/dev/null; then
    apt-get install -y --no-install-recommends sqlite3 >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends sqlite3 >/dev/null; }
fi
