-- Seed data for the quickstart drill: a small orders database.
-- drdrill applies this only when var/quickstart/orders.db does not exist yet.
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    placed_at TEXT NOT NULL,
    total_cents INTEGER NOT NULL CHECK (total_cents >= 0)
);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
INSERT INTO customers (id, name, country)
SELECT i, 'customer-' || i, CASE i % 4 WHEN 0 THEN 'DE' WHEN 1 THEN 'FR' WHEN 2 THEN 'US' ELSE 'JP' END FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO orders (id, customer_id, placed_at, total_cents)
SELECT i, 1 + (i * 7919) % 500, datetime('2026-01-01', '+' || (i % 330) || ' days'), (i * 104729) % 50000 FROM n;
CREATE INDEX orders_by_customer ON orders (customer_id);
