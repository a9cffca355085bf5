-- MP Dashboard database: the one source of truth for tables, indexes and views.
--
-- The collector applies this file on every start (every statement is idempotent) and then
-- runs the migrations in collector/storage.py up to SCHEMA_VERSION (PRAGMA user_version).
--
-- Conventions:
--   * times are ISO 8601 in TIMEZONE with their offset: 2026-11-26T10:15:00+03:00;
--   * `day` columns are the plain local date (YYYY-MM-DD) in TIMEZONE, for grouping;
--   * money is INTEGER kopecks (exact; 1 ₽ = 100), never REAL;
--   * `sku` is the marketplace SKU: WB nmId, Ozon sku. `size` is WB chrtId in stock rows,
--     WB techSize in order/sale rows, '' for Ozon.

CREATE TABLE IF NOT EXISTS accounts (
    account     TEXT PRIMARY KEY,              -- wb-1, wb-2, ozon-1, ...
    marketplace TEXT NOT NULL CHECK (marketplace IN ('wb', 'ozon')),
    label       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed')),
    trigger     TEXT NOT NULL DEFAULT 'manual'  -- manual, timer, schedule, demo, backfill
);

CREATE TABLE IF NOT EXISTS fetch_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    account     TEXT NOT NULL,
    dataset     TEXT NOT NULL CHECK (dataset IN ('stocks', 'orders', 'sales')),
    status      TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    rows        INTEGER NOT NULL DEFAULT 0,   -- records received from the API (after dedupe)
    requests    INTEGER NOT NULL DEFAULT 0,   -- HTTP requests sent, retries included
    retries     INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    error       TEXT                          -- account, dataset, endpoint, HTTP status, detail
);
CREATE INDEX IF NOT EXISTS fetch_log_account_dataset ON fetch_log (account, dataset, id);

-- Incremental-load positions: WB lastChangeDate per account x dataset, Ozon return watermarks.
CREATE TABLE IF NOT EXISTS watermarks (
    account     TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (account, dataset)
);

-- Small facts the collector keeps between passes (e.g. the fingerprint of the aliases file).
CREATE TABLE IF NOT EXISTS collector_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS products (
    account     TEXT NOT NULL,
    sku         INTEGER NOT NULL,
    size        TEXT NOT NULL DEFAULT '',     -- WB techSize; '' when unknown or Ozon
    article     TEXT,                         -- WB supplierArticle, Ozon offer_id
    name        TEXT,
    barcode     TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (account, sku, size)
);

-- Stock history, change-only: a row only when the quantity of a key differs from the last one.
CREATE TABLE IF NOT EXISTS stock (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account     TEXT NOT NULL,
    sku         INTEGER NOT NULL,
    size        TEXT NOT NULL DEFAULT '',
    warehouse   TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    observed_at TEXT NOT NULL,
    day         TEXT NOT NULL,
    run_id      INTEGER
);
CREATE INDEX IF NOT EXISTS stock_key_day ON stock (account, sku, size, warehouse, day);
CREATE INDEX IF NOT EXISTS stock_day ON stock (day);

-- The latest quantity per key: what `stock` would say at its newest row, kept in step by the
-- collector in the same transaction so that "now" never scans the history.
CREATE TABLE IF NOT EXISTS stock_current (
    account     TEXT NOT NULL,
    sku         INTEGER NOT NULL,
    size        TEXT NOT NULL DEFAULT '',
    warehouse   TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    changed_at  TEXT NOT NULL,
    seen_at     TEXT NOT NULL,
    PRIMARY KEY (account, sku, size, warehouse)
);

CREATE TABLE IF NOT EXISTS orders (
    account        TEXT NOT NULL,
    order_id       TEXT NOT NULL,             -- WB srid, Ozon posting_number
    sku            INTEGER NOT NULL,
    article        TEXT,
    size           TEXT NOT NULL DEFAULT '',
    barcode        TEXT,
    warehouse      TEXT,
    ordered_at     TEXT NOT NULL,
    day            TEXT NOT NULL,
    status         TEXT NOT NULL,             -- WB: ordered/cancelled; Ozon: posting status
    is_cancelled   INTEGER NOT NULL DEFAULT 0,
    cancelled_at   TEXT,
    quantity       INTEGER NOT NULL,
    price_kopecks  INTEGER,                   -- per unit
    changed_at     TEXT,                      -- WB lastChangeDate; Ozon: when a pass saw a change
    PRIMARY KEY (account, order_id, sku)
);
CREATE INDEX IF NOT EXISTS orders_day ON orders (day, account);
CREATE INDEX IF NOT EXISTS orders_open ON orders (account, status) WHERE is_cancelled = 0;

CREATE TABLE IF NOT EXISTS sales (
    account        TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('sale', 'return')),
    sale_id        TEXT NOT NULL,             -- WB saleID; Ozon posting_number (sale) or return id
    sku            INTEGER NOT NULL,
    order_id       TEXT,                      -- WB srid, Ozon posting_number
    article        TEXT,
    size           TEXT NOT NULL DEFAULT '',
    barcode        TEXT,
    warehouse      TEXT,
    sold_at        TEXT,                      -- NULL: Ozon posting already delivered at first sight
    day            TEXT,
    quantity       INTEGER NOT NULL,
    amount_kopecks INTEGER,
    return_type    TEXT,                      -- Ozon: ClientReturn, FullReturn, ...
    changed_at     TEXT,
    PRIMARY KEY (account, kind, sale_id, sku)
);
CREATE INDEX IF NOT EXISTS sales_day ON sales (day, account);

CREATE TABLE IF NOT EXISTS sku_aliases (
    marketplace TEXT NOT NULL CHECK (marketplace IN ('wb', 'ozon')),
    key         TEXT NOT NULL,                -- an article or a marketplace SKU
    alias       TEXT NOT NULL,
    position    INTEGER NOT NULL,             -- order of the alias's first appearance in the CSV
    PRIMARY KEY (marketplace, key)
);

-- ---------------------------------------------------------------------------------------------
-- Views. Canned queries in metadata.yml read these.

-- Every SKU any table knows, with its best-known article and name.
DROP VIEW IF EXISTS sku_catalog;
CREATE VIEW sku_catalog AS
SELECT k.account, a.marketplace, k.sku,
       (SELECT p.article FROM products p
         WHERE p.account = k.account AND p.sku = k.sku AND p.article IS NOT NULL
         ORDER BY p.updated_at DESC LIMIT 1) AS article,
       (SELECT p.name FROM products p
         WHERE p.account = k.account AND p.sku = k.sku AND p.name IS NOT NULL
         ORDER BY p.updated_at DESC LIMIT 1) AS name
FROM (SELECT account, sku FROM products
      UNION SELECT account, sku FROM stock_current
      UNION SELECT account, sku FROM orders
      UNION SELECT account, sku FROM sales) AS k
JOIN accounts a ON a.account = k.account;

-- The alias of each SKU: an alias keyed by the SKU wins over one keyed by the article; an
-- unaliased SKU stands for itself under its article, after every alias.
DROP VIEW IF EXISTS sku_groups;
CREATE VIEW sku_groups AS
SELECT c.account, c.marketplace, c.sku, c.article, c.name,
       coalesce(by_sku.alias, by_article.alias, c.article, CAST(c.sku AS TEXT)) AS alias,
       coalesce(by_sku.position, by_article.position, 1000000000) AS alias_position,
       (by_sku.alias IS NULL AND by_article.alias IS NULL) AS unaliased
FROM sku_catalog c
LEFT JOIN sku_aliases by_sku
       ON by_sku.marketplace = c.marketplace AND by_sku.key = CAST(c.sku AS TEXT)
LEFT JOIN sku_aliases by_article
       ON by_article.marketplace = c.marketplace AND by_article.key = c.article;

-- Units ordered per day: not cancelled, by order date.
DROP VIEW IF EXISTS daily_ordered;
CREATE VIEW daily_ordered AS
SELECT o.account, o.sku, o.day, o.warehouse, sum(o.quantity) AS ordered
FROM orders o
WHERE o.is_cancelled = 0
GROUP BY o.account, o.sku, o.day, o.warehouse;

-- Units bought out (kind sale) and returned (kind return) per day and warehouse (the viewer
-- filters by warehouse). Ozon returns count when the customer returned a bought item
-- (ClientReturn) or the type is unknown; refusals at handover and cancellations were never bought.
DROP VIEW IF EXISTS daily_sales;
CREATE VIEW daily_sales AS
SELECT s.account, s.sku, s.day, s.warehouse,
       sum(CASE WHEN s.kind = 'sale' THEN s.quantity ELSE 0 END) AS bought,
       sum(CASE WHEN s.kind = 'return'
                 AND coalesce(s.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown')
                THEN s.quantity ELSE 0 END) AS returned
FROM sales s
WHERE s.day IS NOT NULL
GROUP BY s.account, s.sku, s.day, s.warehouse;

-- The latest state of each account x dataset, for the freshness page and health checks.
DROP VIEW IF EXISTS source_freshness;
CREATE VIEW source_freshness AS
SELECT a.account, a.label, a.marketplace, d.dataset,
       (SELECT f.status FROM fetch_log f
         WHERE f.account = a.account AND f.dataset = d.dataset
         ORDER BY f.id DESC LIMIT 1) AS status,
       (SELECT f.finished_at FROM fetch_log f
         WHERE f.account = a.account AND f.dataset = d.dataset AND f.status = 'ok'
         ORDER BY f.id DESC LIMIT 1) AS last_success_at,
       -- the error of the latest attempt, so that a recovered source shows none
       (SELECT f.error FROM fetch_log f
         WHERE f.account = a.account AND f.dataset = d.dataset
         ORDER BY f.id DESC LIMIT 1) AS last_error
FROM accounts a
CROSS JOIN (SELECT 'stocks' AS dataset UNION ALL SELECT 'orders' UNION ALL SELECT 'sales') d;

-- ---------------------------------------------------------------------------------------------
-- Views for the viewer's canned queries (metadata.yml).

-- Every figure the canned queries add up, from every source, in one shape. `measure` says what
-- a row is:
--   stock_now                   the current quantity of one stock key (stock_current);
--   ordered, bought, returned   units of an account x sku x day x warehouse, from daily_ordered
--                               and daily_sales, so what counts is decided there;
--   ordered_at, bought_at       one order line (not cancelled) or one buyout with `time`, the
--                               local wall-clock HH:MM it happened, for "today against yesterday
--                               up to the same time". Times are stored in TIMEZONE with their
--                               offset, so characters 12-16 are that local HH:MM.
-- Stock history (the `stock` table) is not here: "stock at the end of day D" is a per-key lookup
-- that the queries make themselves (see `history`).
-- Queries filter on `measure` and `day`. SQLite pushes such filters into every branch of the
-- UNION ALL: a branch whose constant measure does not match is skipped without being read, and
-- the others use their `day` index, so asking for one day never scans the history.
DROP VIEW IF EXISTS sku_figures;
CREATE VIEW sku_figures AS
SELECT 'stock_now' AS measure, account, sku, size, warehouse, NULL AS day, quantity AS units,
       NULL AS time
FROM stock_current
UNION ALL
SELECT 'ordered', account, sku, NULL, warehouse, day, ordered, NULL FROM daily_ordered
UNION ALL
SELECT 'bought', account, sku, NULL, warehouse, day, bought, NULL FROM daily_sales
UNION ALL
SELECT 'returned', account, sku, NULL, warehouse, day, returned, NULL FROM daily_sales
UNION ALL
SELECT 'ordered_at', account, sku, size, warehouse, day, quantity, substr(ordered_at, 12, 5)
FROM orders WHERE is_cancelled = 0
UNION ALL
SELECT 'bought_at', account, sku, size, warehouse, day, quantity, substr(sold_at, 12, 5)
FROM sales WHERE kind = 'sale' AND day IS NOT NULL;

-- sku_figures with each row's marketplace, article and alias. The alias is resolved exactly as
-- in sku_groups (the SKU's alias, else its article's alias, else the article, else the SKU), but
-- per row through keys: joining sku_groups would build the whole catalog, which reads every
-- order and sale ever stored. The article is the latest non-NULL one in `products`, as in
-- sku_catalog (SQLite's max() picks the row whose other bare columns are returned).
-- `sku_text` is the SKU as text, for the canned queries' filter
-- `:alias IN ('', alias, article, sku_text)` (an alias, an article or a SKU).
DROP VIEW IF EXISTS alias_figures;
CREATE VIEW alias_figures AS
SELECT f.measure, f.account, a.marketplace, f.sku, CAST(f.sku AS TEXT) AS sku_text, pa.article,
       f.size, f.warehouse, f.day, f.units, f.time,
       coalesce(by_sku.alias, by_article.alias, pa.article, CAST(f.sku AS TEXT)) AS alias,
       coalesce(by_sku.position, by_article.position, 1000000000) AS alias_position
FROM sku_figures f
JOIN accounts a ON a.account = f.account
LEFT JOIN (SELECT account, sku, article, max(updated_at) AS updated_at
           FROM products WHERE article IS NOT NULL
           GROUP BY account, sku) AS pa
       ON pa.account = f.account AND pa.sku = f.sku
LEFT JOIN sku_aliases by_sku
       ON by_sku.marketplace = a.marketplace AND by_sku.key = CAST(f.sku AS TEXT)
LEFT JOIN sku_aliases by_article
       ON by_article.marketplace = a.marketplace AND by_article.key = pa.article;

-- ---------------------------------------------------------------------------------------------
-- Full exports. A canned query stops at max_returned_rows; a table or view streams every row
-- with `/mp/<view>.csv?_stream=on` (README, "Витрина"). These two give the whole history in
-- the shape a spreadsheet pivots, alias and article resolved as in alias_figures.

-- Units ordered, bought out and returned per day x account x SKU x warehouse.
DROP VIEW IF EXISTS export_daily;
CREATE VIEW export_daily AS
SELECT day, marketplace, account, alias, article, sku, warehouse,
       sum(CASE measure WHEN 'ordered' THEN units ELSE 0 END) AS ordered,
       sum(CASE measure WHEN 'bought' THEN units ELSE 0 END) AS bought,
       sum(CASE measure WHEN 'returned' THEN units ELSE 0 END) AS returned
FROM alias_figures
WHERE measure IN ('ordered', 'bought', 'returned')
GROUP BY day, marketplace, account, alias, article, sku, warehouse
-- A stable order: Datasette pages through a view with OFFSET, one query per page.
ORDER BY day, min(alias_position), alias, marketplace DESC, account, sku, warehouse;

-- The current stock per key (account x SKU x size x warehouse).
DROP VIEW IF EXISTS export_stock;
CREATE VIEW export_stock AS
SELECT marketplace, account, alias, article, sku, size, warehouse, units AS stock
FROM alias_figures
WHERE measure = 'stock_now'
ORDER BY alias_position, alias, marketplace DESC, account, sku, size, warehouse;
