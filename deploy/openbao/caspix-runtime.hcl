# Policy of the token Caspix's web, worker and beat containers use (docs/KEYS.md).
#
# Enough to make and unwrap data keys, sign ledger checkpoints and read key versions and public
# keys; nothing that rotates, retires, exports or deletes a key. Keys are named "<prefix>-<name>"
# (CASPIX's default prefix is "caspix"); the mount is "transit".

path "transit/datakey/plaintext/caspix-data"   { capabilities = ["update"] }
path "transit/datakey/plaintext/caspix-index"  { capabilities = ["update"] }
path "transit/datakey/plaintext/caspix-backup" { capabilities = ["update"] }

path "transit/decrypt/caspix-data"   { capabilities = ["update"] }
path "transit/decrypt/caspix-index"  { capabilities = ["update"] }
path "transit/decrypt/caspix-backup" { capabilities = ["update"] }

path "transit/sign/caspix-ledger" { capabilities = ["update"] }

path "transit/keys/caspix-data"   { capabilities = ["read"] }
path "transit/keys/caspix-index"  { capabilities = ["read"] }
path "transit/keys/caspix-ledger" { capabilities = ["read"] }
path "transit/keys/caspix-backup" { capabilities = ["read"] }
