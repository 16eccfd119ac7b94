"""Users, role templates and the business-permission catalog (teams, MFA, SSO, approvals follow)."""
