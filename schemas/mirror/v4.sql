-- The seller's database mirror, schema version 4 (from version 3; see v1.sql and
-- docs/seller-database.md): one seller, several nodes writing into the same tables.
--
-- vault.meta owner: the seller's identity (before: identity/device; any device of that identity
--   may now write here, each node holding its own customers).
-- vault.erased: every consent whose values were erased here, for good: a node that comes back
--   with an old copy never writes values again under a grant listed here.
-- vault.nodes: the seller's nodes writing here and when this server last heard from each: a node
--   not heard from for a few seconds is taken as down, and its customers move to the next node.
-- vault.consents.node: the seller's node (device) that last wrote the row.
-- vault.consents.customer_ticket: how the customer was last reached (its ticket), so that the
--   node taking over a customer can call it; cleared when the consent ends.
-- vault.consents.source_device, source_epoch, source_op: which copy of the customer's data the
--   values are (the customer's device that served it, its epoch, its last operation): a node
--   holding an older copy from the same source does not write over a newer one.

CREATE TABLE vault.erased (
    customer  text        NOT NULL,
    grant_id  text        NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now(),
    node      text,
    PRIMARY KEY (customer, grant_id)
);
CREATE TABLE vault.nodes (
    device  text        PRIMARY KEY,
    seen_at timestamptz NOT NULL
);
ALTER TABLE vault.consents ADD COLUMN node text;
ALTER TABLE vault.consents ADD COLUMN customer_ticket text;
ALTER TABLE vault.consents ADD COLUMN source_device text;
ALTER TABLE vault.consents ADD COLUMN source_epoch bigint;
ALTER TABLE vault.consents ADD COLUMN source_op bigint;
INSERT INTO vault.erased (customer, grant_id, erased_at)
    SELECT customer, grant_id, coalesce(ended_at, now()) FROM vault.consents WHERE status <> 'live'
    ON CONFLICT DO NOTHING;
-- Consents past their expiry are erased by whichever node looks first.
CREATE INDEX consents_live_expiry ON vault.consents (expires_at) WHERE status = 'live' AND expires_at IS NOT NULL;
