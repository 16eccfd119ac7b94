"""The tamper-evident audit ledger. Imports nothing from the other Caspix apps."""
