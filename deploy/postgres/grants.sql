-- The rights of Caspix's application role: run by the tables' owner after every `migrate`.
--
--   psql "$OWNER_DATABASE_URL" -v app_role=caspix_app -v ON_ERROR_STOP=1 -f deploy/postgres/grants.sql
--
-- Migrations run as the owner; web, worker and beat connect as the application role, which owns
-- nothing. It may read and write the business tables, but on the audit ledger and the integrity
-- incidents it may only INSERT and SELECT: even with the application's credentials, no row of
-- them can be changed or removed (the ledger's triggers refuse it as well, for anyone).

\set ON_ERROR_STOP on

GRANT USAGE ON SCHEMA public TO :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM :"app_role";

REVOKE UPDATE, DELETE ON audit_event, audit_tree_node, audit_checkpoint FROM :"app_role";
REVOKE UPDATE, DELETE ON crypto_integrity_incident FROM :"app_role";
-- Case notes (an edit is a new version) and evidence are append-only as well.
REVOKE UPDATE, DELETE ON cases_note, cases_evidence, cases_evidencecontent FROM :"app_role";
-- A generated report file is never replaced: its approval is bound to its SHA-256.
REVOKE UPDATE, DELETE ON reporting_reportfilecontent FROM :"app_role";
-- The queue of recorded events is emptied as it is sequenced: INSERT, SELECT and DELETE.
REVOKE UPDATE ON audit_pending FROM :"app_role";
