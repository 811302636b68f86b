-- The seller's database mirror, schema version 2 (from version 1; see v1.sql and
-- docs/seller-database.md).
--
-- vault.consents.refused: the values of a customer's copy the seller's vault left out, as a
--   JSON list of {"path": ..., "why": ...} (never the values): keys outside the grant, values
--   the document schema refuses, text holding U+0000. Empty for an honest customer's copy.
-- vault.consents.problem: why the database itself refused to store this consent's values
--   (NULL when it stored them); the consent row stays, its values are absent.

ALTER TABLE vault.consents ADD COLUMN refused jsonb NOT NULL DEFAULT '[]';
ALTER TABLE vault.consents ADD COLUMN problem text;
