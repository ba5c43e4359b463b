# Command-line tools the tests call: zstd and tar prove payloads restore without
# drdrill, as DESIGN.md promises.
if ! command -v zstd >/dev/null || ! command -v tar >/dev/null; then
    apt-get update -qq && apt-get install -y -qq zstd tar >/dev/null
fi
