-- The seller's database mirror, schema version 3 (from version 2; see v1.sql, v2.sql and
-- docs/seller-database.md).
--
-- vault.purchases: one row per purchase record of each live consent that shares purchases,
--   its granted fields as columns (NULL where the grant does not share a field): the purchase
--   id the customer's vault gave it, item, seller, category, date, rating, review, the price
--   (amount in minor units and currency) and a price band when the grant shares one.

CREATE VIEW vault.purchases AS
SELECT c.customer, c.customer_name, c.grant_id, c.purpose,
       split_part(v.path, '.', 2)                                                          AS purchase_id,
       max(v.value_text) FILTER (WHERE split_part(v.path, '.', 3) = 'item')                AS item,
       max(v.value_text) FILTER (WHERE split_part(v.path, '.', 3) = 'seller')              AS seller,
       max(v.value_text) FILTER (WHERE split_part(v.path, '.', 3) = 'category')            AS category,
       max(v.value_text) FILTER (WHERE split_part(v.path, '.', 3) = 'date')                AS date,
       max(v.value_text) FILTER (WHERE split_part(v.path, '.', 3) = 'rating')::integer     AS rating,
       max(v.value_text) FILTER (WHERE split_part(v.path, '.', 3) = 'review')              AS review,
       max(v.value_text) FILTER (WHERE v.path LIKE 'purchases.%.price.amount_minor')::bigint AS amount_minor,
       max(v.value_text) FILTER (WHERE v.path LIKE 'purchases.%.price.currency')           AS currency,
       max(v.value_text) FILTER (WHERE split_part(v.path, '.', 3) LIKE 'price:band(%')      AS price_band
FROM vault.consents c
JOIN vault.consent_values v USING (customer, grant_id)
WHERE c.status = 'live' AND v.path LIKE 'purchases.%'
GROUP BY c.customer, c.customer_name, c.grant_id, c.purpose, split_part(v.path, '.', 2);
