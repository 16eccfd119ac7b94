"""Database backends that carry the ledger's write path."""
