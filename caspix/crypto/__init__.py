"""Cryptography: the key service (the one place that talks to OpenBao/Vault or the keyring)."""
