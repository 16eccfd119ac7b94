# Policy added to caspix-runtime on the token an operator uses for Caspix's key commands
# (docs/KEYS.md): ensure_keys (at deploy), rotate_key, rewrap and rewrap --retire. Issue such a
# token (policies caspix-runtime and caspix-operator) for the task and revoke it after; the
# running containers never hold it.
#
# Creating and rotating the keys, re-wrapping data keys and raising min_decryption_version.
# Still no export, no deletion, no deletion_allowed.

# create (first deploy) and read; "update" on the key path itself is creation too
path "transit/keys/caspix-data"   { capabilities = ["create", "read", "update"] }
path "transit/keys/caspix-index"  { capabilities = ["create", "read", "update"] }
path "transit/keys/caspix-ledger" { capabilities = ["create", "read", "update"] }
path "transit/keys/caspix-backup" { capabilities = ["create", "read", "update"] }

path "transit/keys/caspix-data/rotate"   { capabilities = ["update"] }
path "transit/keys/caspix-index/rotate"  { capabilities = ["update"] }
path "transit/keys/caspix-ledger/rotate" { capabilities = ["update"] }
path "transit/keys/caspix-backup/rotate" { capabilities = ["update"] }

# min_decryption_version only: the config endpoint also sets deletion_allowed and exportable,
# which this policy denies.
path "transit/keys/caspix-data/config" {
  capabilities = ["update"]
  allowed_parameters = { "min_decryption_version" = [] }
}
path "transit/keys/caspix-index/config" {
  capabilities = ["update"]
  allowed_parameters = { "min_decryption_version" = [] }
}
path "transit/keys/caspix-backup/config" {
  capabilities = ["update"]
  allowed_parameters = { "min_decryption_version" = [] }
}

path "transit/rewrap/caspix-data"  { capabilities = ["update"] }
path "transit/rewrap/caspix-index" { capabilities = ["update"] }
