# OpenBao server configuration for deploy/docker-compose.yml (mounted at /openbao/config/).
#
# A real server, not dev mode: it starts uninitialised and sealed, and seals itself again on every
# restart. Operators initialise it once (`bao operator init`, unseal key shares kept by different
# people), unseal it after each start, enable Transit and issue Caspix's token under its own
# policy: see docs/KEYS.md. Until then web and worker report the key service as unavailable.

ui = false

# No disable_mlock line: OpenBao dropped mlock altogether (it refuses disable_mlock = false, and
# current releases warn that the field is unknown). Key material is kept out of swap by the
# container's cgroup instead: docker-compose.yml sets memswap_limit equal to mem_limit, so the
# openbao container cannot swap. The Docker host should still run with swap off or encrypted.

log_level  = "info"
log_format = "json"

# Integrated storage (Raft), one node: OpenBao's production backend. The "file" backend is
# development-only and was removed in OpenBao 2.7. The path is the image's volume directory,
# owned by the openbao user (a named volume in compose).
storage "raft" {
  path    = "/openbao/file"
  node_id = "caspix-openbao-1"
}

# TLS only. The certificate names "openbao" (CASPIX_VAULT_ADDR=https://openbao:8200); the CA that
# signed it is the openbao_ca secret that web and worker verify it with.
listener "tcp" {
  address         = "0.0.0.0:8200"
  tls_cert_file   = "/run/secrets/openbao_tls_cert"
  tls_key_file    = "/run/secrets/openbao_tls_key"
  tls_min_version = "tls12"
}

api_addr     = "https://openbao:8200"
cluster_addr = "https://openbao:8201"
