-- The seller's database mirror, schema version 1 (created by `vault mirror set` / `vault serve
-- --mirror`, in the PostgreSQL schema "vault"; vault.meta records schema_version and owner).
-- vault-mirror compiles this file in: it is what runs. See docs/seller-database.md.
--
-- vault.consents: one row per consent this vault (the seller) holds or held.
--   status 'live' while consent lasts; 'withdrawn' (revoked) or 'expired' after, with ended_at
--   set and no rows left in vault.consent_values. receipt is the consent receipt (Kantara v1.1 /
--   ISO 27560 members, the signed grant under "signed_grant"). vault_rev is vault's own counter.
-- vault.consent_values: the granted values, one row per field (path like 'profile.email',
--   'profile.address.city', 'purchases.<id>.item'), as JSON (value) and as text (value_text).
-- vault.profiles: live profile fields pivoted, one row per live consent.
-- Do not change these tables by hand: vault checks their columns before every session and
-- refuses to write into changed ones. Read them, join them, build views on them.

CREATE TABLE vault.consents (
    customer      text        NOT NULL,
    grant_id      text        NOT NULL,
    customer_name text,
    purpose       text        NOT NULL,
    fields        text[]      NOT NULL,
    filter        text,
    issued_at     timestamptz NOT NULL,
    expires_at    timestamptz,
    status        text        NOT NULL CHECK (status IN ('live', 'withdrawn', 'expired')),
    ended_at      timestamptz,
    updated_at    timestamptz,
    receipt       jsonb       NOT NULL,
    vault_rev     bigint      NOT NULL,
    PRIMARY KEY (customer, grant_id)
);
CREATE TABLE vault.consent_values (
    customer   text  NOT NULL,
    grant_id   text  NOT NULL,
    path       text  NOT NULL,
    value      jsonb NOT NULL,
    value_text text,
    PRIMARY KEY (customer, grant_id, path),
    FOREIGN KEY (customer, grant_id) REFERENCES vault.consents (customer, grant_id) ON DELETE CASCADE
);
CREATE INDEX consent_values_path ON vault.consent_values (path);
CREATE VIEW vault.profiles AS
SELECT c.customer, c.customer_name, c.grant_id, c.purpose, c.expires_at,
       max(v.value_text) FILTER (WHERE v.path = 'profile.name')             AS name,
       max(v.value_text) FILTER (WHERE v.path = 'profile.email')            AS email,
       max(v.value_text) FILTER (WHERE v.path = 'profile.phone')            AS phone,
       max(v.value_text) FILTER (WHERE v.path = 'profile.birthday')         AS birthday,
       max(v.value_text) FILTER (WHERE v.path = 'profile.address.street')   AS street,
       max(v.value_text) FILTER (WHERE v.path = 'profile.address.city')     AS city,
       max(v.value_text) FILTER (WHERE v.path = 'profile.address.postcode') AS postcode,
       max(v.value_text) FILTER (WHERE v.path = 'profile.address.region')   AS region,
       max(v.value_text) FILTER (WHERE v.path = 'profile.address.country')  AS country
FROM vault.consents c
LEFT JOIN vault.consent_values v USING (customer, grant_id)
WHERE c.status = 'live'
GROUP BY c.customer, c.grant_id;
