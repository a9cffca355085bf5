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
    -- stocks, orders, sales are required; balance and catalog are optional (they never fail a pass)
    dataset     TEXT NOT NULL CHECK (dataset IN ('stocks', 'orders', 'sales', 'balance', 'catalog')),
    -- skipped: an optional dataset resting after the token was refused its category
    status      TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'skipped')),
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

-- What a seller should know about a source beyond its last status, one line per account x
-- dataset, shown on the freshness page: "orders now come from the order feed", "this token has
-- no Finance category", "3 rows set aside". Written by the collector, cleared when it no longer holds.
CREATE TABLE IF NOT EXISTS source_notes (
    account     TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    note        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (account, dataset)
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
    payout_kopecks INTEGER,                   -- whole line: Ozon financial_data payout; WB none
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
    payout_kopecks INTEGER,                   -- «к перечислению»: WB forPay, Ozon posting payout
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

-- Units per day x account x SKU x warehouse, kept by the triggers below in step with orders,
-- sales and stock, whoever writes them (the collector, a backfill, a test). It is what the views
-- daily_ordered and daily_sales read: a day of the reference seller is ~20,000 order lines and
-- ~15,000 sales rows but ~30,000 rows here, one per key, so figures over 14 or 90 days need not
-- add up millions of rows at every page view (docs/PERFORMANCE.md). What counts is decided here:
--   ordered      units of order lines not cancelled (ordered_lines: how many such lines);
--   bought       units of sales rows of kind sale with a day; returned: kind return with a day
--                whose type is ClientReturn or unknown (a refusal at handover or a cancellation
--                was never bought); sales_lines: sales rows with a day, of any kind;
--   stock_delta  how much the stock of the SKU at the warehouse changed on that day (summed
--                over sizes): each `stock` row's quantity less the key's previous one. The stock
--                at the end of day D is then the stock now (stock_current) less every change
--                after D.
-- `warehouse` is '' where the marketplace named none (NULL in orders and sales).
CREATE TABLE IF NOT EXISTS daily_figures (
    day           TEXT NOT NULL,
    account       TEXT NOT NULL,
    sku           INTEGER NOT NULL,
    warehouse     TEXT NOT NULL,
    ordered_lines INTEGER NOT NULL DEFAULT 0,
    ordered       INTEGER NOT NULL DEFAULT 0,
    sales_lines   INTEGER NOT NULL DEFAULT 0,
    bought        INTEGER NOT NULL DEFAULT 0,
    returned      INTEGER NOT NULL DEFAULT 0,
    stock_delta   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, account, sku, warehouse)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS daily_figures_order_added AFTER INSERT ON orders
WHEN new.is_cancelled = 0
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, ordered_lines, ordered)
    VALUES (new.day, new.account, new.sku, coalesce(new.warehouse, ''), 1, new.quantity)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + 1, ordered = ordered + excluded.ordered;
END;

-- An upsert that changes nothing that counts (most of them) does nothing here.
CREATE TRIGGER IF NOT EXISTS daily_figures_order_changed
AFTER UPDATE OF day, account, sku, warehouse, is_cancelled, quantity ON orders
WHEN (old.is_cancelled = 0 OR new.is_cancelled = 0)
 AND (old.is_cancelled IS NOT new.is_cancelled OR old.quantity IS NOT new.quantity OR old.day IS NOT new.day
      OR old.warehouse IS NOT new.warehouse OR old.sku IS NOT new.sku OR old.account IS NOT new.account)
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, ordered_lines, ordered)
    SELECT old.day, old.account, old.sku, coalesce(old.warehouse, ''), -1, -old.quantity WHERE old.is_cancelled = 0
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
                              ordered = ordered + excluded.ordered;
    INSERT INTO daily_figures (day, account, sku, warehouse, ordered_lines, ordered)
    SELECT new.day, new.account, new.sku, coalesce(new.warehouse, ''), 1, new.quantity WHERE new.is_cancelled = 0
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
                              ordered = ordered + excluded.ordered;
END;

CREATE TRIGGER IF NOT EXISTS daily_figures_order_removed AFTER DELETE ON orders
WHEN old.is_cancelled = 0
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, ordered_lines, ordered)
    VALUES (old.day, old.account, old.sku, coalesce(old.warehouse, ''), -1, -old.quantity)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines - 1, ordered = ordered + excluded.ordered;
END;

CREATE TRIGGER IF NOT EXISTS daily_figures_sale_added AFTER INSERT ON sales
WHEN new.day IS NOT NULL
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, sales_lines, bought, returned)
    VALUES (new.day, new.account, new.sku, coalesce(new.warehouse, ''), 1,
            CASE WHEN new.kind = 'sale' THEN new.quantity ELSE 0 END,
            CASE WHEN new.kind = 'return' AND coalesce(new.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown')
                 THEN new.quantity ELSE 0 END)
    ON CONFLICT DO UPDATE SET sales_lines = sales_lines + 1, bought = bought + excluded.bought,
                              returned = returned + excluded.returned;
END;

CREATE TRIGGER IF NOT EXISTS daily_figures_sale_changed
AFTER UPDATE OF day, account, sku, warehouse, kind, quantity, return_type ON sales
WHEN (old.day IS NOT NULL OR new.day IS NOT NULL)
 AND (old.day IS NOT new.day OR old.quantity IS NOT new.quantity OR old.return_type IS NOT new.return_type
      OR old.warehouse IS NOT new.warehouse OR old.sku IS NOT new.sku OR old.account IS NOT new.account
      OR old.kind IS NOT new.kind)
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, sales_lines, bought, returned)
    SELECT old.day, old.account, old.sku, coalesce(old.warehouse, ''), -1,
           CASE WHEN old.kind = 'sale' THEN -old.quantity ELSE 0 END,
           CASE WHEN old.kind = 'return' AND coalesce(old.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown')
                THEN -old.quantity ELSE 0 END
    WHERE old.day IS NOT NULL
    ON CONFLICT DO UPDATE SET sales_lines = sales_lines + excluded.sales_lines, bought = bought + excluded.bought,
                              returned = returned + excluded.returned;
    INSERT INTO daily_figures (day, account, sku, warehouse, sales_lines, bought, returned)
    SELECT new.day, new.account, new.sku, coalesce(new.warehouse, ''), 1,
           CASE WHEN new.kind = 'sale' THEN new.quantity ELSE 0 END,
           CASE WHEN new.kind = 'return' AND coalesce(new.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown')
                THEN new.quantity ELSE 0 END
    WHERE new.day IS NOT NULL
    ON CONFLICT DO UPDATE SET sales_lines = sales_lines + excluded.sales_lines, bought = bought + excluded.bought,
                              returned = returned + excluded.returned;
END;

CREATE TRIGGER IF NOT EXISTS daily_figures_sale_removed AFTER DELETE ON sales
WHEN old.day IS NOT NULL
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, sales_lines, bought, returned)
    VALUES (old.day, old.account, old.sku, coalesce(old.warehouse, ''), -1,
            CASE WHEN old.kind = 'sale' THEN -old.quantity ELSE 0 END,
            CASE WHEN old.kind = 'return' AND coalesce(old.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown')
                 THEN -old.quantity ELSE 0 END)
    ON CONFLICT DO UPDATE SET sales_lines = sales_lines - 1, bought = bought + excluded.bought,
                              returned = returned + excluded.returned;
END;

-- A stock row changes its key by its quantity less the key's previous row (0 for the first),
-- on its day; the key's next row, if any (a row written out of order), then changes it by the
-- difference from this one instead. Removing a row undoes both.
CREATE TRIGGER IF NOT EXISTS daily_figures_stock_added AFTER INSERT ON stock
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, stock_delta)
    SELECT new.day, new.account, new.sku, new.warehouse,
           new.quantity - coalesce((SELECT s.quantity FROM stock s
                                     WHERE s.account = new.account AND s.sku = new.sku AND s.size = new.size
                                       AND s.warehouse = new.warehouse
                                       AND (s.day < new.day OR (s.day = new.day AND s.id < new.id))
                                     ORDER BY s.day DESC, s.id DESC LIMIT 1), 0)
    WHERE true
    ON CONFLICT DO UPDATE SET stock_delta = stock_delta + excluded.stock_delta;
    INSERT INTO daily_figures (day, account, sku, warehouse, stock_delta)
    SELECT n.day, n.account, n.sku, n.warehouse,
           coalesce((SELECT s.quantity FROM stock s
                      WHERE s.account = new.account AND s.sku = new.sku AND s.size = new.size
                        AND s.warehouse = new.warehouse
                        AND (s.day < new.day OR (s.day = new.day AND s.id < new.id))
                      ORDER BY s.day DESC, s.id DESC LIMIT 1), 0) - new.quantity
    FROM (SELECT * FROM stock s
           WHERE s.account = new.account AND s.sku = new.sku AND s.size = new.size AND s.warehouse = new.warehouse
             AND (s.day > new.day OR (s.day = new.day AND s.id > new.id))
           ORDER BY s.day, s.id LIMIT 1) AS n
    WHERE true
    ON CONFLICT DO UPDATE SET stock_delta = stock_delta + excluded.stock_delta;
END;

CREATE TRIGGER IF NOT EXISTS daily_figures_stock_removed AFTER DELETE ON stock
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, stock_delta)
    SELECT old.day, old.account, old.sku, old.warehouse,
           coalesce((SELECT s.quantity FROM stock s
                      WHERE s.account = old.account AND s.sku = old.sku AND s.size = old.size
                        AND s.warehouse = old.warehouse
                        AND (s.day < old.day OR (s.day = old.day AND s.id < old.id))
                      ORDER BY s.day DESC, s.id DESC LIMIT 1), 0) - old.quantity
    WHERE true
    ON CONFLICT DO UPDATE SET stock_delta = stock_delta + excluded.stock_delta;
    INSERT INTO daily_figures (day, account, sku, warehouse, stock_delta)
    SELECT n.day, n.account, n.sku, n.warehouse,
           old.quantity - coalesce((SELECT s.quantity FROM stock s
                                     WHERE s.account = old.account AND s.sku = old.sku AND s.size = old.size
                                       AND s.warehouse = old.warehouse
                                       AND (s.day < old.day OR (s.day = old.day AND s.id < old.id))
                                     ORDER BY s.day DESC, s.id DESC LIMIT 1), 0)
    FROM (SELECT * FROM stock s
           WHERE s.account = old.account AND s.sku = old.sku AND s.size = old.size AND s.warehouse = old.warehouse
             AND (s.day > old.day OR (s.day = old.day AND s.id > old.id))
           ORDER BY s.day, s.id LIMIT 1) AS n
    WHERE true
    ON CONFLICT DO UPDATE SET stock_delta = stock_delta + excluded.stock_delta;
END;

-- Every warehouse orders have named, with the last day one did: the dashboards' warehouse
-- filter lists those of the last 90 days, which otherwise means reading 90 days of orders (1.3 s
-- at a big seller's size on every page view).
CREATE TABLE IF NOT EXISTS order_warehouses (
    warehouse TEXT PRIMARY KEY,
    last_day  TEXT NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS order_warehouses_added AFTER INSERT ON orders
WHEN new.warehouse IS NOT NULL
BEGIN
    INSERT INTO order_warehouses (warehouse, last_day) VALUES (new.warehouse, new.day)
    ON CONFLICT DO UPDATE SET last_day = excluded.last_day WHERE excluded.last_day > last_day;
END;

CREATE TRIGGER IF NOT EXISTS order_warehouses_changed AFTER UPDATE OF warehouse, day ON orders
WHEN new.warehouse IS NOT NULL AND (old.warehouse IS NOT new.warehouse OR old.day IS NOT new.day)
BEGIN
    INSERT INTO order_warehouses (warehouse, last_day) VALUES (new.warehouse, new.day)
    ON CONFLICT DO UPDATE SET last_day = excluded.last_day WHERE excluded.last_day > last_day;
END;

INSERT INTO order_warehouses (warehouse, last_day)
SELECT o.warehouse, max(o.day)
FROM (SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM order_warehouses)) AS empty CROSS JOIN orders o
WHERE o.warehouse IS NOT NULL
GROUP BY o.warehouse;

-- A database from before daily_figures existed: count what it already holds, once (the guard
-- is a one-row table only while daily_figures is empty, so this reads nothing afterwards).
INSERT INTO daily_figures (day, account, sku, warehouse, ordered_lines, ordered, sales_lines, bought, returned,
                           stock_delta)
SELECT day, account, sku, warehouse, sum(ordered_lines), sum(ordered), sum(sales_lines), sum(bought),
       sum(returned), sum(stock_delta)
FROM (SELECT o.day, o.account, o.sku, coalesce(o.warehouse, '') AS warehouse, 1 AS ordered_lines,
             o.quantity AS ordered, 0 AS sales_lines, 0 AS bought, 0 AS returned, 0 AS stock_delta
      FROM (SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM daily_figures)) AS empty CROSS JOIN orders o
      WHERE o.is_cancelled = 0
      UNION ALL
      SELECT s.day, s.account, s.sku, coalesce(s.warehouse, ''), 0, 0, 1,
             CASE WHEN s.kind = 'sale' THEN s.quantity ELSE 0 END,
             CASE WHEN s.kind = 'return' AND coalesce(s.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown')
                  THEN s.quantity ELSE 0 END, 0
      FROM (SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM daily_figures)) AS empty CROSS JOIN sales s
      WHERE s.day IS NOT NULL
      UNION ALL
      SELECT k.day, k.account, k.sku, k.warehouse, 0, 0, 0, 0, 0,
             k.quantity - lag(k.quantity, 1, 0) OVER (PARTITION BY k.account, k.sku, k.size, k.warehouse
                                                      ORDER BY k.day, k.id)
      FROM (SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM daily_figures)) AS empty CROSS JOIN stock k)
GROUP BY day, account, sku, warehouse;

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

-- Units ordered per day: not cancelled, by order date. Counted by daily_figures' triggers.
DROP VIEW IF EXISTS daily_ordered;
CREATE VIEW daily_ordered AS
SELECT account, sku, day, nullif(warehouse, '') AS warehouse, ordered
FROM daily_figures
WHERE ordered_lines > 0;

-- Units bought out (kind sale) and returned (kind return) per day and warehouse (the viewer
-- filters by warehouse). Ozon returns count when the customer returned a bought item
-- (ClientReturn) or the type is unknown; refusals at handover and cancellations were never bought.
-- Counted by daily_figures' triggers.
DROP VIEW IF EXISTS daily_sales;
CREATE VIEW daily_sales AS
SELECT account, sku, day, nullif(warehouse, '') AS warehouse, bought, returned
FROM daily_figures
WHERE sales_lines > 0;

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
         ORDER BY f.id DESC LIMIT 1) AS last_error,
       n.note,
       d.required
FROM accounts a
CROSS JOIN (SELECT 'stocks' AS dataset, 1 AS required UNION ALL SELECT 'orders', 1 UNION ALL SELECT 'sales', 1
            UNION ALL SELECT 'balance', 0 UNION ALL SELECT 'catalog', 0) d
LEFT JOIN source_notes n ON n.account = a.account AND n.dataset = d.dataset
-- an optional dataset shows once it has been tried (or has something to say)
WHERE d.required OR n.note IS NOT NULL
   OR EXISTS (SELECT 1 FROM fetch_log f WHERE f.account = a.account AND f.dataset = d.dataset);

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
