# Command-line tools the tests call: zstd and tar prove payloads restore without
# drdrill, as DESIGN.md promises.
if ! command -v zstd >/dev/null || ! command -v tar >/dev/null; then
    apt-get update -qq && apt-get install -y -qq zstd tar >/dev/null
fi
# ssh-keygen and sha256sum verify signed evidence bundles as an auditor would
# (tests/integration/signed.rs).
if ! command -v ssh-keygen >/dev/null || ! command -v sha256sum >/dev/null; then
    apt-get update -qq && apt-get install -y -qq openssh-client coreutils >/dev/null
fi
# jq runs the README's recipe that checks a restore against a manifest by hand
# (tests/integration/manifest.rs).
if ! command -v jq >/dev/null; then
    apt-get update -qq && apt-get install -y -qq jq >/dev/null
fi
