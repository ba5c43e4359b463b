# The backup tools teams already use, for the drills of existing backups
# (tests/integration/existing.rs): restic, borg and pgBackRest repositories are
# made in the tests by the real tools, then drilled by drdrill.
missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
command -v pgbackrest >/dev/null || missing+=(pgbackrest)
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi
