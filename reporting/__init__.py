"""STRs (goAML), dashboards, evidence packs, access reviews and regulatory exports."""
