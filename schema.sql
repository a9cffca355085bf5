-- MP Dashboard database: the one source of truth for tables, indexes and views.
--
-- The collector applies this file on every start (every statement is idempotent) and then
-- runs the migrations in collector/storage.py up to SCHEMA_VERSION (PRAGMA user_version).
--
-- Conventions:
--   * times are ISO 8601 in TIMEZONE with their offset: 2026-11-26T10:15:00+03:00;
--   * `day` columns are the plain local date (YYYY-MM-DD) in TIMEZONE, for grouping;
--   * money is INTEGER kopecks (exact; 1 ₽ = 100), never REAL;
--   * `sku` is the marketplace SKU: WB nmId, Ozon sku. `size` is WB techSize in order/sale rows
--     and in stock rows whose size a product card maps (table `sizes`); WB chrtId in stock rows
--     of sizes no card maps yet; '' for Ozon.

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
    error       TEXT,                         -- account, dataset, endpoint, HTTP status, detail
    rejected    INTEGER NOT NULL DEFAULT 0    -- rows set aside as unreadable (rejected_rows)
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
-- (stock_day, an index by day alone, served no query: 0.33 GB a year at the reference seller)
DROP INDEX IF EXISTS stock_day;

-- The latest quantity per key: what `stock` would say at its newest row, kept in step by the
-- collector in the same transaction so that "now" never scans the history.
CREATE TABLE IF NOT EXISTS stock_current (
    account     TEXT NOT NULL,
    sku         INTEGER NOT NULL,
    size        TEXT NOT NULL DEFAULT '',
    warehouse   TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    changed_at  TEXT NOT NULL,
    seen_at     TEXT NOT NULL,                -- when this row was last written
    -- the day the key was first observed: before it, whether the item had stock is unknown
    -- (restock counts such days neither as out of stock nor against demand)
    first_day   TEXT,
    PRIMARY KEY (account, sku, size, warehouse)
);
-- The dashboards' warehouse filter lists the warehouses with stock: from this index alone.
CREATE INDEX IF NOT EXISTS stock_current_warehouse ON stock_current (warehouse);

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
    -- bought / not_bought / open: kept equal to order_outcomes by triggers (the buyout rate)
    outcome        TEXT NOT NULL DEFAULT 'open' CHECK (outcome IN ('open', 'bought', 'not_bought')),
    -- of a line bought, the units returned when not all of them were (an Ozon posting of 3 with
    -- 1 sent back: 2 bought, 1 not); 0 otherwise. Kept with outcome (schema 15)
    returned_units INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, order_id, sku)
);
-- By day, and within a day by SKU: a filter on one SKU (`orders?sku=`, a seller's usual one)
-- is a skip-scan, a seek per day and account, instead of reading every line (16 s at a year for
-- a SKU of a few lines). Schema 31 added sku: ~40 MB a year more.
CREATE INDEX IF NOT EXISTS orders_day ON orders (day, account, sku);
-- (orders_open, on account x status of lines not cancelled, served no query: 0.30 GB a year)
DROP INDEX IF EXISTS orders_open;

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
-- (by SKU within a day, as orders_day)
CREATE INDEX IF NOT EXISTS sales_day ON sales (day, account, sku);
-- the sales of an order line: what became of it (order_outcomes)
CREATE INDEX IF NOT EXISTS sales_order ON sales (account, order_id, sku);
-- The sales with no day (an Ozon posting delivered at first sight, every one a backfill
-- loads; a WB order-feed return's sale) in the order of their key, the order in which a page of
-- `sales` sorted by day shows them (datasette_plugin.py, TablePage.undated_bound): from any
-- key, the next page's rows are read here in that order. sales_day holds them by SKU, so SQLite
-- would read and sort them all (~0.3 s for 445,000 of them). `+day`: only a query that asks for
-- this index (`+day IS NULL`) is kept off sales_day's entries of no day. As big as the undated
-- sales (~45 bytes each): none from a seller's own passes but the few their rules leave undated.
CREATE INDEX IF NOT EXISTS sales_undated ON sales (account, kind, sale_id, sku) WHERE +day IS NULL;

CREATE TABLE IF NOT EXISTS sku_aliases (
    marketplace TEXT NOT NULL CHECK (marketplace IN ('wb', 'ozon')),
    key         TEXT NOT NULL,                -- an article or a marketplace SKU
    alias       TEXT NOT NULL,
    position    INTEGER NOT NULL,             -- order of the alias's first appearance in the CSV
    PRIMARY KEY (marketplace, key)
);

-- Balances (optional dataset `balance`): one row per account each time a figure changed, so
-- the latest row is the balance now and the rows before it are its history. Integer kopecks.
-- WB (finance host): current and available to withdraw. Ozon (/v1/finance/balance over today
-- in TIMEZONE): opening, accrued, paid out and closing of `day`. Figures a marketplace does not
-- give are NULL. When it was last checked is fetch_log's latest ok `balance` row.
CREATE TABLE IF NOT EXISTS balances (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    account              TEXT NOT NULL,
    fetched_at           TEXT NOT NULL,       -- the pass that saw these figures first
    day                  TEXT NOT NULL,       -- local day of that pass (Ozon: the period asked)
    currency             TEXT,
    current_kopecks      INTEGER,             -- WB current
    for_withdraw_kopecks INTEGER,             -- WB for_withdraw
    opening_kopecks      INTEGER,             -- Ozon total.opening_balance
    accrued_kopecks      INTEGER,             -- Ozon total.accrued
    paid_kopecks         INTEGER,             -- Ozon total.payments, summed
    closing_kopecks      INTEGER              -- Ozon total.closing_balance
);
CREATE INDEX IF NOT EXISTS balances_account ON balances (account, id);

-- WB sizes from the product cards (optional dataset `catalog`): the stock report names a size by
-- chrtId, orders and sales by techSize. With a card known, stock rows carry techSize too, so a
-- size is one key everywhere; a chrtId without a card stays as it is. When a card first maps a
-- chrtId, the stock rows already stored under it are relabelled in the same transaction, so
-- stock_current keys move instead of dropping to 0 (daily_figures does not key on size).
CREATE TABLE IF NOT EXISTS sizes (
    account     TEXT NOT NULL,
    sku         INTEGER NOT NULL,             -- nmId
    chrt_id     TEXT NOT NULL,
    tech_size   TEXT NOT NULL,
    barcode     TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (account, sku, chrt_id)
);

-- Rows a normaliser could not read, set aside so the rest of their dataset is saved (the
-- dataset fails instead only when more than 10 % of an answer is unreadable: REJECT_SHARE in
-- collector/rejects.py). One row per distinct raw row; a row seen again updates `seen_at`.
CREATE TABLE IF NOT EXISTS rejected_rows (
    account     TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    row_key     TEXT NOT NULL,                -- sha256 of `raw`
    raw         TEXT NOT NULL,                -- the row as the marketplace sent it (JSON)
    reason      TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    seen_at     TEXT NOT NULL,
    PRIMARY KEY (account, dataset, row_key)
);

-- Alerts (collector/alerts.py): the outbox of messages to the seller, delivered by Apprise to
-- every ALERT_URLS entry. An event is written in the same commit as the state change that
-- detected it (alert_state, after the pass's writes) and sent after that commit, so a crash in
-- between loses nothing: the next pass sends what is still pending. `key` is UNIQUE, so a retried
-- pass never queues an event twice (digest:2026-12-04, low_stock:run:812, sources_down:run:812).
-- The viewer's page of recent events is the canned query `events` (/mp/events).
CREATE TABLE IF NOT EXISTS alert_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('low_stock', 'sources_down', 'sources_up', 'digest',
                                              'disk_low', 'disk_ok')),
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,                -- the message as sent, link included; never a secret
    created_at  TEXT NOT NULL,
    day         TEXT NOT NULL,
    -- pending: some channel has not got it yet; sent: every channel has; expired: some channel
    -- still failed when the event became too old to be worth sending (alerts.MAX_AGE)
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'expired')),
    done_at     TEXT
);
CREATE INDEX IF NOT EXISTS alert_outbox_pending ON alert_outbox (status, id);

-- Delivery of an event to one channel (an ALERT_URLS entry), so a failing channel is retried
-- with backoff on later passes while the others are never sent the event again. `channel` is
-- the URL's scheme and host with Apprise's masking (tgram://1...g, mailtos://smtp.gmail.com),
-- never the URL: it holds bot tokens and passwords.
CREATE TABLE IF NOT EXISTS alert_deliveries (
    event_id    INTEGER NOT NULL REFERENCES alert_outbox(id),
    channel     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('sent', 'failed', 'expired')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_try_at TEXT,
    next_try_at TEXT,                         -- a failed delivery is not tried before this
    last_error  TEXT,                         -- what Apprise said, secrets masked
    sent_at     TEXT,
    PRIMARY KEY (event_id, channel)
);

-- What is alerted now and not yet recovered: a low item (low:wb::Пакеты 8) or a failing or silent
-- source (source:wb-1:orders). A new message only when a key appears; its removal is the recovery.
CREATE TABLE IF NOT EXISTS alert_state (
    key         TEXT PRIMARY KEY,
    since       TEXT NOT NULL,
    detail      TEXT
);

-- What to ship (the canned query `restock`, and `restock_window` for the windows a seller picks
-- most: 7, 14 and 30 days): the rows of `restock_window` for each window in `days`, recomputed by
-- the collector after every pass (collector/kept.py), because at a big seller's size they take
-- about a second to compute and the page must open at once. `position` orders the rows of a
-- window (already out first, then the soonest to run out), spaced apart so that a row that moves
-- is written between its new neighbours without moving them: a pass writes only the places whose
-- figures or order changed (collector/kept.py; schema 17: every row was written again each pass,
-- 4-7 MB at a big seller's year; until 2026-12-06 every row after one that moved).
CREATE TABLE IF NOT EXISTS restock_now (
    days              INTEGER NOT NULL,
    position          INTEGER NOT NULL,
    alias             TEXT NOT NULL,
    marketplace       TEXT NOT NULL,
    warehouse         TEXT NOT NULL,
    stock             INTEGER NOT NULL,
    avg_daily_ordered REAL,
    days_of_cover     REAL,
    runs_out_on       TEXT,
    to_ship           INTEGER,
    days_out_of_stock INTEGER NOT NULL,
    lost_units        REAL,
    lost_rub          REAL,  -- the roubles of lost_units: kopecks ordered per day in stock x days out
    runs_out_soon     INTEGER NOT NULL,
    PRIMARY KEY (days, position)
) WITHOUT ROWID;

-- Per kept window, what its rows of restock_now were computed for (the day and the settings) and
-- when, and whether they are still what `restock_window` would compute: set with the rows
-- (collector/kept.py), cleared by the first write to what restock_window reads (the triggers at
-- the end of this file) and by a rebuild, so that restock_window reads the kept rows only while
-- they are exact. `restock` shows the rows and their time whatever in_step says. The row of
-- days 0 vouches in the same way for restock_days_now.
CREATE TABLE IF NOT EXISTS restock_now_basis (
    days              INTEGER PRIMARY KEY,
    day               TEXT NOT NULL,
    target_cover_days REAL NOT NULL,
    low_stock_days    REAL NOT NULL,
    in_step           INTEGER NOT NULL,
    computed_at       TEXT
);

-- Per place a seller supplies (restock_window's places: an Ozon warehouse, or WB as a whole,
-- per group), its last 60 whole days as `restock_window` judges them, so that a window the pass
-- does not keep in restock_now (any of 1..60 days) is read from a row per place instead of each
-- place's days walked (0.5-1.2 s at a big seller's year). Kept by the collector after every pass
-- (collector/kept.py), a place written when its row changes, vouched for by restock_now_basis's
-- row of days 0. `stock_days`: a letter a day, the oldest first, yesterday last ("o" out of
-- stock, "i" in stock at the end of the day, "-" neither; see stock_days in
-- collector/datasette_plugin.py); `ordered_days`: the units ordered in the last 1, 2, ... 60
-- days, each as 10 digits; `ordered_kopecks_days` their kopecks, each as 12 digits. The digits
-- are ASCII in a BLOB: substr() of a BLOB goes straight to its byte, where substr() of text
-- counts the characters from the start (at a year, 113 ms rather than 132 for a window of 60
-- days). A table with rowids: a row is ~1.4 KB, and a WITHOUT ROWID table keeps at most ~1 KB of
-- a row on its page, the rest on an overflow page of its own (10,283 pages for 8,996 places,
-- 29 MB of them unused, and the query's read of every place 2x slower).
CREATE TABLE IF NOT EXISTS restock_days_now (
    alias                TEXT NOT NULL,
    marketplace          TEXT NOT NULL,
    warehouse            TEXT NOT NULL,  -- the place: the Ozon warehouse, '' for WB
    stock                INTEGER NOT NULL,
    stock_days           TEXT NOT NULL,
    ordered_days         BLOB NOT NULL,
    ordered_kopecks_days BLOB NOT NULL,
    PRIMARY KEY (alias, marketplace, warehouse)
);

-- `today` for today, every group (the dashboard's table by group, the page a seller opens most),
-- and for the week and the month to today (30 days of alias_days at a year: ~60,000 rows into
-- ~500 groups, 60-120 ms), stored by the collector after every pass (collector/kept.py) in the
-- query's order; the canned query reads it when asked for today without a filter and `day` is
-- the viewer's today. Any write to what it is made of empties it (the triggers at the end of this
-- file), and until the next pass stores it again `today` computes its rows itself: it never shows
-- older figures than the tables.
CREATE TABLE IF NOT EXISTS today_now (
    days              INTEGER NOT NULL,  -- the period: 1, 7 or 30 days to today
    position          INTEGER NOT NULL,
    alias             TEXT NOT NULL,
    wb_stock          INTEGER NOT NULL,
    wb_ordered        INTEGER NOT NULL,
    wb_bought         INTEGER NOT NULL,
    wb_returned       INTEGER NOT NULL,
    ozon_stock        INTEGER NOT NULL,
    ozon_ordered      INTEGER NOT NULL,
    ozon_bought       INTEGER NOT NULL,
    ozon_returned     INTEGER NOT NULL,
    wb_ordered_rub    REAL NOT NULL,
    wb_bought_rub     REAL NOT NULL,
    wb_returned_rub   REAL NOT NULL,
    wb_payout_rub     REAL NOT NULL,
    ozon_ordered_rub  REAL NOT NULL,
    ozon_bought_rub   REAL NOT NULL,
    ozon_returned_rub REAL NOT NULL,
    ozon_payout_rub   REAL NOT NULL,
    day               TEXT NOT NULL,
    computed_at       TEXT NOT NULL,
    PRIMARY KEY (days, position)
) WITHOUT ROWID;

-- `buyout` for the last 30 days, every group (the dashboard's «Выкуп» table, its heaviest chart:
-- 30 days of order cohort per marketplace x group, 25-40 ms at a year), stored by the collector
-- after every pass (collector/kept.py) in the query's order and read by it for today without a
-- filter; emptied with today_now by any write to what it is made of (the triggers below).
CREATE TABLE IF NOT EXISTS buyout_now (
    position    INTEGER PRIMARY KEY,
    alias       TEXT NOT NULL,
    marketplace TEXT NOT NULL,
    ordered     INTEGER NOT NULL,
    bought      INTEGER NOT NULL,
    not_bought  INTEGER NOT NULL,
    day         TEXT NOT NULL,
    computed_at TEXT NOT NULL
);

-- «По складам» per group for the last 30 days, every group (`by_warehouse` and
-- `orders_by_warehouse` with period=month for today): at a big seller's year each sorts ~270,000
-- rows of alias_warehouse_days (30 days) into ~17,000 groups x warehouses, 0.2-0.4 s, too long
-- for a page but nothing for a pass; and `by_warehouse` for the last 7 days, today and
-- yesterday (pages 'by_warehouse week', 'by_warehouse day' and 'by_warehouse yesterday':
-- ~7,000-10,000 groups x warehouses from ~25,000-60,000 rows, 70-260 ms). Stored by the collector after every pass (collector/kept.py)
-- in each page's order, `position` spaced apart as restock_now's: a pass that changed a few
-- groups writes their rows, not the rows after them. The queries read these rows
-- while warehouse_month_basis vouches for them, and compute their own otherwise.
CREATE TABLE IF NOT EXISTS warehouse_month_now (
    page        TEXT NOT NULL,     -- by_warehouse, orders_by_warehouse (30 days), by_warehouse week|day|yesterday
    position    INTEGER NOT NULL,  -- the row's order in the page (spaced apart)
    alias       TEXT NOT NULL,
    marketplace TEXT NOT NULL,
    warehouse   TEXT,
    stock       INTEGER,           -- (by_warehouse's own columns: NULL on orders_by_warehouse's rows)
    ordered     INTEGER NOT NULL,
    bought      INTEGER,
    returned    INTEGER,
    ordered_rub REAL NOT NULL,
    bought_rub  REAL,
    returned_rub REAL,
    PRIMARY KEY (page, position)
) WITHOUT ROWID;

-- What warehouse_month_now was computed for (the day) and whether it is still what the queries
-- would compute: set with the rows (collector/kept.py), cleared by the first write to what they
-- read (the triggers at the end of this file) and by a rebuild.
CREATE TABLE IF NOT EXISTS warehouse_month_basis (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    day     TEXT NOT NULL,
    in_step INTEGER NOT NULL
);

-- Units per day x account x SKU x warehouse, kept by the triggers below in step with orders,
-- sales and stock, whoever writes them (the collector, a backfill, a test). It is what the viewer
-- reads: a day of the reference seller is ~20,000 order lines and ~15,000 sales rows but ~30,000
-- rows here, one per key, so figures over 14 or 90 days need not add up millions of rows at every
-- page view (docs/PERFORMANCE.md). `daily_figures_recomputed` (below) says what every column
-- must hold, from the raw rows; `mp-collector rebuild` replaces the table with it. What counts:
--   ordered          units of order lines not cancelled, by order day (ordered_lines: such lines);
--   ordered_kopecks  their value: unit price x units (WB priceWithDisc, Ozon products[].price);
--   bought           units of sales rows of kind sale with a day; bought_kopecks their value;
--   returned         units of returns with a day whose type is ClientReturn or unknown (a refusal
--                    at handover or a cancellation was never bought); returned_kopecks their value;
--   payout_kopecks   what the seller receives («к перечислению») for the day's sales, less what
--                    returns take back: WB forPay, Ozon financial_data payout;
--   sales_lines      sales rows with a day, of any kind;
--   cohort_units     units of every order line placed on the day, cancelled or not, and of them
--   cohort_bought    those bought and kept, and cohort_not_bought those cancelled, refused or
--                    returned (orders.outcome, orders.returned_units); the rest are still on their
--                    way («в пути»);
--   stock_delta      how much the stock of the SKU at the warehouse changed on that day (summed
--                    over sizes): each `stock` row's quantity less the key's previous one. The stock
--                    at the end of day D is then the stock now (stock_current) less every change
--                    after D.
-- Money is integer kopecks, summed as integers. `warehouse` is '' where the marketplace named none.
CREATE TABLE IF NOT EXISTS daily_figures (
    day               TEXT NOT NULL,
    account           TEXT NOT NULL,
    sku               INTEGER NOT NULL,
    warehouse         TEXT NOT NULL,
    ordered_lines     INTEGER NOT NULL DEFAULT 0,
    ordered           INTEGER NOT NULL DEFAULT 0,
    sales_lines       INTEGER NOT NULL DEFAULT 0,
    bought            INTEGER NOT NULL DEFAULT 0,
    returned          INTEGER NOT NULL DEFAULT 0,
    stock_delta       INTEGER NOT NULL DEFAULT 0,
    ordered_kopecks   INTEGER NOT NULL DEFAULT 0,
    bought_kopecks    INTEGER NOT NULL DEFAULT 0,
    returned_kopecks  INTEGER NOT NULL DEFAULT 0,
    payout_kopecks    INTEGER NOT NULL DEFAULT 0,
    cohort_units      INTEGER NOT NULL DEFAULT 0,
    cohort_bought     INTEGER NOT NULL DEFAULT 0,
    cohort_not_bought INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, account, sku, warehouse)
) WITHOUT ROWID;
-- The buyout rate reads its 30 days of cohorts from sku_days (below) now: this index, of
-- schema version 2, only cost space and a write per order line.
DROP INDEX IF EXISTS daily_figures_cohort;

-- daily_figures added up over warehouses: a row per day x account x SKU (a sixth of its rows at
-- the reference seller). What the viewer reads when no warehouse is asked for, the usual case;
-- kept by the triggers on daily_figures below, so it is always daily_figures' exact sum.
CREATE TABLE IF NOT EXISTS sku_days (
    day               TEXT NOT NULL,
    account           TEXT NOT NULL,
    sku               INTEGER NOT NULL,
    ordered_lines     INTEGER NOT NULL DEFAULT 0,
    ordered           INTEGER NOT NULL DEFAULT 0,
    sales_lines       INTEGER NOT NULL DEFAULT 0,
    bought            INTEGER NOT NULL DEFAULT 0,
    returned          INTEGER NOT NULL DEFAULT 0,
    stock_delta       INTEGER NOT NULL DEFAULT 0,
    ordered_kopecks   INTEGER NOT NULL DEFAULT 0,
    bought_kopecks    INTEGER NOT NULL DEFAULT 0,
    returned_kopecks  INTEGER NOT NULL DEFAULT 0,
    payout_kopecks    INTEGER NOT NULL DEFAULT 0,
    cohort_units      INTEGER NOT NULL DEFAULT 0,
    cohort_bought     INTEGER NOT NULL DEFAULT 0,
    cohort_not_bought INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, account, sku)
) WITHOUT ROWID;

-- The stock now per account x SKU (stock_current added up over sizes and warehouses), kept by
-- the triggers on stock_current below: "today" names ~10,000 SKUs instead of ~120,000 keys.
CREATE TABLE IF NOT EXISTS sku_stock (
    account  TEXT NOT NULL,
    sku      INTEGER NOT NULL,
    quantity INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, sku)
) WITHOUT ROWID;

-- Each SKU's group, as the canned queries name it (the SKU's alias, else its article's alias, else
-- the article, else the SKU; the article the latest non-NULL one in products), for every SKU of
-- products, sku_days and sku_stock. Kept by the triggers below, so that a page names its SKUs by
-- a key lookup instead of working each name out (~65 ms for the ~7,500 SKUs of a big seller).
CREATE TABLE IF NOT EXISTS sku_names (
    account        TEXT NOT NULL,
    sku            INTEGER NOT NULL,
    article        TEXT,
    alias          TEXT NOT NULL,
    alias_position INTEGER NOT NULL,
    PRIMARY KEY (account, sku)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sku_names_article ON sku_names (article);
DROP INDEX IF EXISTS sku_names_alias;
-- The SKUs each article and each barcode was written on, as the order lines and sales name
-- them, with how many times: a filter on one article or barcode of the raw lines
-- (`orders?article=`, `sales?barcode=`) is given these SKUs too (collector/datasette_plugin.py),
-- which orders_day and sales_day find by a seek per day; by the name alone SQLite read every
-- line (past the 3 s limit at a year for a name of a few lines). One table for both names: the
-- SKUs of a name that is an article of some lines and a barcode of others are all kept, and the
-- page's own filter keeps only its rows. Kept by the triggers on orders and sales below; a row
-- whose lines went back to 0 counts as no row.
CREATE TABLE IF NOT EXISTS named_skus (
    name    TEXT NOT NULL,                -- an article or a barcode
    account TEXT NOT NULL,
    sku     INTEGER NOT NULL,
    lines   INTEGER NOT NULL DEFAULT 0,   -- order lines and sales naming it, as article and as barcode
    PRIMARY KEY (name, account, sku)
) WITHOUT ROWID;

-- Every day sku_days has rows for: how a SKU's days are found when its group changes (a key
-- lookup per day). An index on sku_days (account, sku) would do it too, but SQLite then reads
-- the windows of sku_days through that index, 7,500 seeks instead of one range.
CREATE TABLE IF NOT EXISTS summary_days (
    day TEXT PRIMARY KEY
) WITHOUT ROWID;
DROP INDEX IF EXISTS sku_days_sku;

-- sku_days and sku_stock added up per group (sku_names.alias): a row per day x account x group,
-- ~1,000 a day at the reference seller instead of ~7,500 SKUs. What the dashboard reads when no
-- warehouse and no group, article or SKU is asked for. Kept by the triggers on sku_days,
-- sku_stock and sku_names below (a SKU's rows move with it when its group changes), so each
-- is always the exact sum of its SKUs.
CREATE TABLE IF NOT EXISTS alias_days (
    day               TEXT NOT NULL,
    account           TEXT NOT NULL,
    alias             TEXT NOT NULL,
    ordered_lines     INTEGER NOT NULL DEFAULT 0,
    ordered           INTEGER NOT NULL DEFAULT 0,
    sales_lines       INTEGER NOT NULL DEFAULT 0,
    bought            INTEGER NOT NULL DEFAULT 0,
    returned          INTEGER NOT NULL DEFAULT 0,
    stock_delta       INTEGER NOT NULL DEFAULT 0,
    ordered_kopecks   INTEGER NOT NULL DEFAULT 0,
    bought_kopecks    INTEGER NOT NULL DEFAULT 0,
    returned_kopecks  INTEGER NOT NULL DEFAULT 0,
    payout_kopecks    INTEGER NOT NULL DEFAULT 0,
    cohort_units      INTEGER NOT NULL DEFAULT 0,
    cohort_bought     INTEGER NOT NULL DEFAULT 0,
    cohort_not_bought INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, account, alias)
) WITHOUT ROWID;

-- alias_days' stock changes added up per month ('YYYY-MM'): a group's stock at the end of a past
-- day is the stock now less the later months and its month's days after it (a year back: ~12,000
-- rows and at most a month of alias_days, against ~350,000). Kept by the triggers on alias_days.
CREATE TABLE IF NOT EXISTS alias_months (
    month       TEXT NOT NULL,
    account     TEXT NOT NULL,
    alias       TEXT NOT NULL,
    stock_delta INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (month, account, alias)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS alias_stock (
    account  TEXT NOT NULL,
    alias    TEXT NOT NULL,
    quantity INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, alias)
) WITHOUT ROWID;

-- alias_days added up per account: a row per day x account, what the totals of every group
-- (summary, the dashboard's cards; history by marketplace, its charts) read: 4 rows a day at the
-- reference seller. Kept by the triggers on alias_days below.
CREATE TABLE IF NOT EXISTS account_days (
    day               TEXT NOT NULL,
    account           TEXT NOT NULL,
    ordered_lines     INTEGER NOT NULL DEFAULT 0,
    ordered           INTEGER NOT NULL DEFAULT 0,
    sales_lines       INTEGER NOT NULL DEFAULT 0,
    bought            INTEGER NOT NULL DEFAULT 0,
    returned          INTEGER NOT NULL DEFAULT 0,
    stock_delta       INTEGER NOT NULL DEFAULT 0,
    ordered_kopecks   INTEGER NOT NULL DEFAULT 0,
    bought_kopecks    INTEGER NOT NULL DEFAULT 0,
    returned_kopecks  INTEGER NOT NULL DEFAULT 0,
    payout_kopecks    INTEGER NOT NULL DEFAULT 0,
    cohort_units      INTEGER NOT NULL DEFAULT 0,
    cohort_bought     INTEGER NOT NULL DEFAULT 0,
    cohort_not_bought INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, account)
) WITHOUT ROWID;

-- alias_days added up per marketplace (a seller's Ozon stores together), keyed so that a
-- group's days follow one another: history by group looks up a group's day, and its stock up to
-- that day, as key ranges (~700 groups x the days asked), rather than adding up and sorting every
-- row of the window (~1,000 a day) before it can give its first row. Kept by the triggers on
-- alias_days below.
CREATE TABLE IF NOT EXISTS marketplace_alias_days (
    marketplace       TEXT NOT NULL,
    alias             TEXT NOT NULL,
    day               TEXT NOT NULL,
    ordered_lines     INTEGER NOT NULL DEFAULT 0,
    ordered           INTEGER NOT NULL DEFAULT 0,
    sales_lines       INTEGER NOT NULL DEFAULT 0,
    bought            INTEGER NOT NULL DEFAULT 0,
    returned          INTEGER NOT NULL DEFAULT 0,
    stock_delta       INTEGER NOT NULL DEFAULT 0,
    ordered_kopecks   INTEGER NOT NULL DEFAULT 0,
    bought_kopecks    INTEGER NOT NULL DEFAULT 0,
    returned_kopecks  INTEGER NOT NULL DEFAULT 0,
    payout_kopecks    INTEGER NOT NULL DEFAULT 0,
    cohort_units      INTEGER NOT NULL DEFAULT 0,
    cohort_bought     INTEGER NOT NULL DEFAULT 0,
    cohort_not_bought INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (marketplace, alias, day)
) WITHOUT ROWID;

-- The stock now per account x group x warehouse (stock_current over sizes and SKUs): ~16,000
-- rows instead of ~120,000 keys at the reference seller, for the pages by warehouse.
CREATE TABLE IF NOT EXISTS alias_warehouse_stock (
    account    TEXT NOT NULL,
    alias      TEXT NOT NULL,
    warehouse  TEXT NOT NULL,
    quantity   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, alias, warehouse)
) WITHOUT ROWID;

-- The stock at the end of each past day per warehouse x marketplace x group (alias_warehouse_days'
-- stock changes added up to it, the Ozon stores together), rows only where it is not zero:
-- «По складам» for a past day reads that day's rows (~6,300 at the reference seller) instead of
-- working the stock back from now through the months and days since (0.25-0.5 s at a year).
-- Kept by the collector after each pass (collector/kept.py: a day is added when it is over) for
-- the days up to stock_days_basis.through, which vouches for them while in_step; a change of
-- stock on a day it vouches for (stock written late), a SKU moved to another group or an account
-- to another marketplace clears it, and the next pass computes the days again from the changes.
CREATE TABLE IF NOT EXISTS marketplace_alias_warehouse_stock_days (
    day         TEXT NOT NULL,
    warehouse   TEXT NOT NULL,
    marketplace TEXT NOT NULL,
    alias       TEXT NOT NULL,
    stock       INTEGER NOT NULL,
    PRIMARY KEY (day, warehouse, marketplace, alias)
) WITHOUT ROWID;

-- (kept per account for a few hours of schema 27, 1e20277: per marketplace since, as the pages show it)
DROP TABLE IF EXISTS alias_warehouse_stock_days;
DROP TABLE IF EXISTS alias_warehouse_stock_days_basis;

CREATE TABLE IF NOT EXISTS stock_days_basis (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    through TEXT NOT NULL,     -- the last day kept (the collector's yesterday)
    in_step INTEGER NOT NULL
);

-- How many keys of stock_current per account x group x warehouse were first seen on each day
-- (keys never seen have no first day and no row): what to ship counts no day before a place's
-- first observation as out of stock, and reads here whether its keys were seen before its window
-- and else when first inside it: ~16,000 rows and a few a day, where a young database (every key
-- first seen in the last days) had it look at every key. A count is kept by adding up, whatever
-- moves; an earliest day would have to be looked for again whenever a key leaves its group. Kept
-- by the triggers on stock_current.
CREATE TABLE IF NOT EXISTS alias_warehouse_first_days (
    first_day TEXT NOT NULL,
    account   TEXT NOT NULL,
    alias     TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    keys      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (first_day, account, alias, warehouse)
) WITHOUT ROWID;

-- daily_figures per group, with the warehouse kept: a row per day x account x group x warehouse,
-- ~9,200 a day at the reference seller against ~42,000 of daily_figures. What the pages by
-- warehouse, a group's warehouses (▸) and what to ship over any window read when no group,
-- article or SKU narrower than a group is asked for, with the order cohort (the buyout rate) as
-- daily_figures has it. Keyed by day and warehouse first: a range of days is read as it always
-- was, and one warehouse's days as a key range each (~1/25 of the day's rows at the reference
-- seller), when asked for as a list of days (summary_days). Kept by the triggers on daily_figures
-- (after sku_days, whose triggers name a new SKU) and moved with a SKU when its group changes.
CREATE TABLE IF NOT EXISTS alias_warehouse_days (
    day             TEXT NOT NULL,
    account         TEXT NOT NULL,
    alias           TEXT NOT NULL,
    warehouse       TEXT NOT NULL,
    ordered_lines   INTEGER NOT NULL DEFAULT 0,
    ordered         INTEGER NOT NULL DEFAULT 0,
    sales_lines     INTEGER NOT NULL DEFAULT 0,
    bought          INTEGER NOT NULL DEFAULT 0,
    returned        INTEGER NOT NULL DEFAULT 0,
    stock_delta     INTEGER NOT NULL DEFAULT 0,
    ordered_kopecks INTEGER NOT NULL DEFAULT 0,
    bought_kopecks  INTEGER NOT NULL DEFAULT 0,
    returned_kopecks INTEGER NOT NULL DEFAULT 0,
    payout_kopecks  INTEGER NOT NULL DEFAULT 0,
    cohort_units    INTEGER NOT NULL DEFAULT 0,
    cohort_bought   INTEGER NOT NULL DEFAULT 0,
    cohort_not_bought INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, warehouse, account, alias)
) WITHOUT ROWID;

-- alias_warehouse_days added up over the groups: a row per day x account x warehouse (~200 a
-- day at the reference seller against ~9,200), what every SKU's warehouses together read (the
-- total row's ▸) and `summary` at one warehouse (the dashboard's warehouse filter: 30 days of
-- order cohort are ~6,000 rows here against ~1.26 million of daily_figures). Kept by the
-- triggers on alias_warehouse_days below.
CREATE TABLE IF NOT EXISTS account_warehouse_days (
    day             TEXT NOT NULL,
    account         TEXT NOT NULL,
    warehouse       TEXT NOT NULL,
    ordered_lines   INTEGER NOT NULL DEFAULT 0,
    ordered         INTEGER NOT NULL DEFAULT 0,
    sales_lines     INTEGER NOT NULL DEFAULT 0,
    bought          INTEGER NOT NULL DEFAULT 0,
    returned        INTEGER NOT NULL DEFAULT 0,
    stock_delta     INTEGER NOT NULL DEFAULT 0,
    ordered_kopecks INTEGER NOT NULL DEFAULT 0,
    bought_kopecks  INTEGER NOT NULL DEFAULT 0,
    returned_kopecks INTEGER NOT NULL DEFAULT 0,
    payout_kopecks  INTEGER NOT NULL DEFAULT 0,
    cohort_units    INTEGER NOT NULL DEFAULT 0,
    cohort_bought   INTEGER NOT NULL DEFAULT 0,
    cohort_not_bought INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, account, warehouse)
) WITHOUT ROWID;

-- alias_warehouse_days' stock changes added up per month ('YYYY-MM'): the stock per group and
-- warehouse at the end of any past day is the months before it and its month's days up to it,
-- or the stock now less the months after and the days after it in its month, whichever reads
-- fewer rows (half a year back: ~6 x 12,000 rows and at most half a month of days, against
-- ~1.5 million rows of alias_warehouse_days). Kept by the triggers on alias_warehouse_days below.
CREATE TABLE IF NOT EXISTS alias_warehouse_months (
    month       TEXT NOT NULL,
    account     TEXT NOT NULL,
    alias       TEXT NOT NULL,
    warehouse   TEXT NOT NULL,
    stock_delta INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (month, account, alias, warehouse)
) WITHOUT ROWID;

-- alias_warehouse_days per marketplace, keyed by warehouse first: a row per warehouse x
-- marketplace x group x day with what `history` shows (the three Ozon stores of the reference
-- seller share their warehouses and add up here). `history` at one warehouse looks each of its
-- cells up, and each group's stock changes up to it, by key, as it does per group over
-- marketplace_alias_days: 90 days at the busiest warehouse were ~22,000 rows added up per
-- marketplace and then looked up in a temporary index at every view. Kept by the triggers on
-- alias_warehouse_days below.
CREATE TABLE IF NOT EXISTS marketplace_alias_warehouse_days (
    warehouse        TEXT NOT NULL,
    marketplace      TEXT NOT NULL,
    alias            TEXT NOT NULL,
    day              TEXT NOT NULL,
    ordered          INTEGER NOT NULL DEFAULT 0,
    bought           INTEGER NOT NULL DEFAULT 0,
    returned         INTEGER NOT NULL DEFAULT 0,
    stock_delta      INTEGER NOT NULL DEFAULT 0,
    ordered_kopecks  INTEGER NOT NULL DEFAULT 0,
    bought_kopecks   INTEGER NOT NULL DEFAULT 0,
    returned_kopecks INTEGER NOT NULL DEFAULT 0,
    payout_kopecks   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (warehouse, marketplace, alias, day)
) WITHOUT ROWID;

-- How many days of marketplace_alias_warehouse_days moved units ordered or the stock, per
-- warehouse x marketplace x group (~14,000 places at the reference seller): what to ship over a
-- window the pass does not keep reads each place with such days by key from it, in the order
-- they are kept, where reading the window's days and sorting ~200,000 of them into places cost
-- ~0.6 s at a year. Kept by the triggers on marketplace_alias_warehouse_days below.
CREATE TABLE IF NOT EXISTS marketplace_alias_warehouses (
    warehouse   TEXT NOT NULL,
    marketplace TEXT NOT NULL,
    alias       TEXT NOT NULL,
    moving_days INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (warehouse, marketplace, alias)
) WITHOUT ROWID;

-- What became of an order line, for the buyout rate: 'bought' (WB: a sale S… for its srid; Ozon:
-- the posting delivered), 'not_bought' (cancelled, refused at handover, or returned after purchase:
-- WB R… for the srid, Ozon FBO returns of the posting), else 'open' («в пути»). A return wins over
-- a sale, a sale over a cancellation. Judged by units: returns of fewer units than the line has
-- leave it bought with `returned_units` not bought (a WB line is one unit; a return of no units,
-- which no marketplace sends, counts as the whole line, as any return did before schema 15).
-- Triggers keep orders.outcome and orders.returned_units equal to this, whichever of orders and
-- sales arrives first.
DROP VIEW IF EXISTS order_outcomes;
CREATE VIEW order_outcomes AS
SELECT account, order_id, sku,
       CASE WHEN returned IS NOT NULL THEN CASE WHEN returned > 0 AND returned < quantity THEN 'bought'
                                                ELSE 'not_bought' END
            WHEN status = 'delivered'
              OR EXISTS (SELECT 1 FROM sales s WHERE s.account = o.account AND s.order_id = o.order_id
                                                 AND s.sku = o.sku AND s.kind = 'sale') THEN 'bought'
            WHEN is_cancelled THEN 'not_bought'
            ELSE 'open' END AS outcome,
       CASE WHEN returned > 0 AND returned < quantity THEN returned ELSE 0 END AS returned_units
-- (returned: the units of the line's returns, NULL without one. SQLite copies the subquery into
-- every place that names it, so each test is ordered to read it as few times as it can: twice
-- for a line without a return, most lines)
FROM (SELECT o.account, o.order_id, o.sku, o.quantity, o.status, o.is_cancelled,
             (SELECT sum(s.quantity) FROM sales s WHERE s.account = o.account AND s.order_id = o.order_id
                                                   AND s.sku = o.sku AND s.kind = 'return') AS returned
      FROM orders o) AS o;

-- Every figure daily_figures must hold, from the raw rows alone (the triggers' contract).
DROP VIEW IF EXISTS daily_figures_recomputed;
CREATE VIEW daily_figures_recomputed AS
SELECT day, account, sku, warehouse,
       sum(ordered_lines) AS ordered_lines, sum(ordered) AS ordered, sum(sales_lines) AS sales_lines,
       sum(bought) AS bought, sum(returned) AS returned, sum(stock_delta) AS stock_delta,
       sum(ordered_kopecks) AS ordered_kopecks, sum(bought_kopecks) AS bought_kopecks,
       sum(returned_kopecks) AS returned_kopecks, sum(payout_kopecks) AS payout_kopecks,
       sum(cohort_units) AS cohort_units, sum(cohort_bought) AS cohort_bought,
       sum(cohort_not_bought) AS cohort_not_bought
FROM (SELECT o.day, o.account, o.sku, coalesce(o.warehouse, '') AS warehouse,
             o.is_cancelled = 0 AS ordered_lines,
             CASE WHEN o.is_cancelled = 0 THEN o.quantity ELSE 0 END AS ordered,
             0 AS sales_lines, 0 AS bought, 0 AS returned, 0 AS stock_delta,
             CASE WHEN o.is_cancelled = 0 THEN coalesce(o.price_kopecks, 0) * o.quantity ELSE 0 END AS ordered_kopecks,
             0 AS bought_kopecks, 0 AS returned_kopecks, 0 AS payout_kopecks,
             o.quantity AS cohort_units,
             CASE WHEN v.outcome = 'bought' THEN o.quantity - v.returned_units ELSE 0 END AS cohort_bought,
             CASE v.outcome WHEN 'not_bought' THEN o.quantity WHEN 'bought' THEN v.returned_units ELSE 0 END AS cohort_not_bought
      FROM orders o
      JOIN order_outcomes v ON v.account = o.account AND v.order_id = o.order_id AND v.sku = o.sku
      UNION ALL
      SELECT s.day, s.account, s.sku, coalesce(s.warehouse, ''), 0, 0, 1,
             CASE WHEN s.kind = 'sale' THEN s.quantity ELSE 0 END,
             CASE WHEN s.kind = 'return' AND coalesce(s.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown')
                  THEN s.quantity ELSE 0 END,
             0, 0,
             CASE WHEN s.kind = 'sale' THEN coalesce(s.amount_kopecks, 0) ELSE 0 END,
             CASE WHEN s.kind = 'return' AND coalesce(s.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown')
                  THEN abs(coalesce(s.amount_kopecks, 0)) ELSE 0 END,
             CASE WHEN s.kind = 'sale' THEN coalesce(s.payout_kopecks, 0) ELSE -abs(coalesce(s.payout_kopecks, 0)) END,
             0, 0, 0
      FROM sales s
      WHERE s.day IS NOT NULL
      UNION ALL
      SELECT k.day, k.account, k.sku, k.warehouse, 0, 0, 0, 0, 0,
             k.quantity - lag(k.quantity, 1, 0) OVER (PARTITION BY k.account, k.sku, k.size, k.warehouse
                                                      ORDER BY k.day, k.id),
             0, 0, 0, 0, 0, 0, 0
      FROM stock k)
GROUP BY day, account, sku, warehouse;

-- What sku_days and sku_stock must hold (their triggers' contract; `mp-collector rebuild` fills
-- them from these).
DROP VIEW IF EXISTS sku_days_recomputed;
CREATE VIEW sku_days_recomputed AS
SELECT day, account, sku, sum(ordered_lines) AS ordered_lines, sum(ordered) AS ordered,
       sum(sales_lines) AS sales_lines, sum(bought) AS bought, sum(returned) AS returned,
       sum(stock_delta) AS stock_delta, sum(ordered_kopecks) AS ordered_kopecks,
       sum(bought_kopecks) AS bought_kopecks, sum(returned_kopecks) AS returned_kopecks,
       sum(payout_kopecks) AS payout_kopecks, sum(cohort_units) AS cohort_units,
       sum(cohort_bought) AS cohort_bought, sum(cohort_not_bought) AS cohort_not_bought
FROM daily_figures
GROUP BY day, account, sku;

DROP VIEW IF EXISTS sku_stock_recomputed;
CREATE VIEW sku_stock_recomputed AS
SELECT account, sku, sum(quantity) AS quantity FROM stock_current GROUP BY account, sku;

-- What named_skus must hold: the order lines and sales of each article and barcode x account x SKU.
DROP VIEW IF EXISTS named_skus_recomputed;
CREATE VIEW named_skus_recomputed AS
SELECT name, account, sku, sum(lines) AS lines
FROM (SELECT article AS name, account, sku, count(*) AS lines FROM orders WHERE article IS NOT NULL
      GROUP BY article, account, sku
      UNION ALL
      SELECT barcode, account, sku, count(*) FROM orders WHERE barcode IS NOT NULL GROUP BY barcode, account, sku
      UNION ALL
      SELECT article, account, sku, count(*) FROM sales WHERE article IS NOT NULL GROUP BY article, account, sku
      UNION ALL
      SELECT barcode, account, sku, count(*) FROM sales WHERE barcode IS NOT NULL GROUP BY barcode, account, sku)
GROUP BY name, account, sku;

-- What sku_names must hold, worked out from products and sku_aliases (the canned queries' rule
-- before sku_names, and its triggers' contract).
DROP VIEW IF EXISTS sku_names_recomputed;
CREATE VIEW sku_names_recomputed AS
SELECT k.account, k.sku, pa.article,
       coalesce(by_sku.alias, by_article.alias, pa.article, CAST(k.sku AS TEXT)) AS alias,
       coalesce(by_sku.position, by_article.position, 1000000000) AS alias_position
FROM (SELECT account, sku FROM products UNION SELECT account, sku FROM sku_days
      UNION SELECT account, sku FROM sku_stock) AS k
JOIN accounts a ON a.account = k.account
LEFT JOIN (SELECT account, sku, article, max(updated_at) AS updated_at
           FROM products WHERE article IS NOT NULL
           GROUP BY account, sku) AS pa
       ON pa.account = k.account AND pa.sku = k.sku
LEFT JOIN sku_aliases by_sku
       ON by_sku.marketplace = a.marketplace AND by_sku.key = CAST(k.sku AS TEXT)
LEFT JOIN sku_aliases by_article
       ON by_article.marketplace = a.marketplace AND by_article.key = pa.article;

-- What alias_days and alias_stock must hold: sku_days and sku_stock per group.
DROP VIEW IF EXISTS alias_days_recomputed;
CREATE VIEW alias_days_recomputed AS
SELECT d.day, d.account, coalesce(nm.alias, CAST(d.sku AS TEXT)) AS alias,
       sum(d.ordered_lines) AS ordered_lines, sum(d.ordered) AS ordered,
       sum(d.sales_lines) AS sales_lines, sum(d.bought) AS bought, sum(d.returned) AS returned,
       sum(d.stock_delta) AS stock_delta, sum(d.ordered_kopecks) AS ordered_kopecks,
       sum(d.bought_kopecks) AS bought_kopecks, sum(d.returned_kopecks) AS returned_kopecks,
       sum(d.payout_kopecks) AS payout_kopecks, sum(d.cohort_units) AS cohort_units,
       sum(d.cohort_bought) AS cohort_bought, sum(d.cohort_not_bought) AS cohort_not_bought
FROM sku_days d
LEFT JOIN sku_names nm ON nm.account = d.account AND nm.sku = d.sku
GROUP BY d.day, d.account, coalesce(nm.alias, CAST(d.sku AS TEXT));

DROP VIEW IF EXISTS summary_days_recomputed;
CREATE VIEW summary_days_recomputed AS SELECT DISTINCT day FROM sku_days;

-- What account_days must hold: alias_days per account.
DROP VIEW IF EXISTS account_days_recomputed;
CREATE VIEW account_days_recomputed AS
SELECT day, account, sum(ordered_lines) AS ordered_lines, sum(ordered) AS ordered,
       sum(sales_lines) AS sales_lines, sum(bought) AS bought, sum(returned) AS returned,
       sum(stock_delta) AS stock_delta, sum(ordered_kopecks) AS ordered_kopecks,
       sum(bought_kopecks) AS bought_kopecks, sum(returned_kopecks) AS returned_kopecks,
       sum(payout_kopecks) AS payout_kopecks, sum(cohort_units) AS cohort_units,
       sum(cohort_bought) AS cohort_bought, sum(cohort_not_bought) AS cohort_not_bought
FROM alias_days
GROUP BY day, account;

-- The groups of marketplace_alias_days, per marketplace, found by stepping from one key to the
-- next (a key lookup each, ~700 at the reference seller) rather than by reading its rows
-- (250,000 a year): where the queries that go group by group start.
DROP VIEW IF EXISTS marketplace_aliases;
CREATE VIEW marketplace_aliases AS
WITH RECURSIVE keys(marketplace, alias) AS (
    SELECT a.marketplace,
           (SELECT min(m.alias) FROM marketplace_alias_days m WHERE m.marketplace = a.marketplace)
    FROM (SELECT DISTINCT marketplace FROM accounts) AS a
    UNION ALL
    SELECT k.marketplace,
           (SELECT min(m.alias) FROM marketplace_alias_days m
            WHERE m.marketplace = k.marketplace AND m.alias > k.alias)
    FROM keys k
    WHERE k.alias IS NOT NULL
)
SELECT marketplace, alias FROM keys WHERE alias IS NOT NULL;

-- What marketplace_alias_days must hold: alias_days per marketplace.
DROP VIEW IF EXISTS marketplace_alias_days_recomputed;
CREATE VIEW marketplace_alias_days_recomputed AS
SELECT a.marketplace, d.alias, d.day,
       sum(d.ordered_lines) AS ordered_lines, sum(d.ordered) AS ordered, sum(d.sales_lines) AS sales_lines,
       sum(d.bought) AS bought, sum(d.returned) AS returned, sum(d.stock_delta) AS stock_delta,
       sum(d.ordered_kopecks) AS ordered_kopecks, sum(d.bought_kopecks) AS bought_kopecks, sum(d.returned_kopecks) AS returned_kopecks,
       sum(d.payout_kopecks) AS payout_kopecks, sum(d.cohort_units) AS cohort_units, sum(d.cohort_bought) AS cohort_bought,
       sum(d.cohort_not_bought) AS cohort_not_bought
FROM alias_days d
JOIN accounts a ON a.account = d.account
GROUP BY a.marketplace, d.alias, d.day;

DROP VIEW IF EXISTS alias_warehouse_stock_recomputed;
CREATE VIEW alias_warehouse_stock_recomputed AS
SELECT k.account, coalesce(nm.alias, CAST(k.sku AS TEXT)) AS alias, k.warehouse, sum(k.quantity) AS quantity
FROM stock_current k
LEFT JOIN sku_names nm ON nm.account = k.account AND nm.sku = k.sku
GROUP BY k.account, coalesce(nm.alias, CAST(k.sku AS TEXT)), k.warehouse;

DROP VIEW IF EXISTS alias_warehouse_first_days_recomputed;
CREATE VIEW alias_warehouse_first_days_recomputed AS
SELECT k.first_day, k.account, coalesce(nm.alias, CAST(k.sku AS TEXT)) AS alias, k.warehouse, count(*) AS keys
FROM stock_current k
LEFT JOIN sku_names nm ON nm.account = k.account AND nm.sku = k.sku
WHERE k.first_day IS NOT NULL
GROUP BY k.first_day, k.account, coalesce(nm.alias, CAST(k.sku AS TEXT)), k.warehouse;

-- What alias_months must hold: alias_days' stock changes per month.
DROP VIEW IF EXISTS alias_months_recomputed;
CREATE VIEW alias_months_recomputed AS
SELECT substr(day, 1, 7) AS month, account, alias, sum(stock_delta) AS stock_delta
FROM alias_days
WHERE stock_delta <> 0
GROUP BY substr(day, 1, 7), account, alias;

-- What alias_warehouse_months must hold: alias_warehouse_days' stock changes per month.
DROP VIEW IF EXISTS alias_warehouse_months_recomputed;
CREATE VIEW alias_warehouse_months_recomputed AS
SELECT substr(day, 1, 7) AS month, account, alias, warehouse, sum(stock_delta) AS stock_delta
FROM alias_warehouse_days
WHERE stock_delta <> 0
GROUP BY substr(day, 1, 7), account, alias, warehouse;

-- What marketplace_alias_warehouse_days must hold: alias_warehouse_days per marketplace.
DROP VIEW IF EXISTS marketplace_alias_warehouse_days_recomputed;
CREATE VIEW marketplace_alias_warehouse_days_recomputed AS
SELECT d.warehouse, a.marketplace, d.alias, d.day,
       sum(d.ordered) AS ordered, sum(d.bought) AS bought, sum(d.returned) AS returned,
       sum(d.stock_delta) AS stock_delta, sum(d.ordered_kopecks) AS ordered_kopecks,
       sum(d.bought_kopecks) AS bought_kopecks, sum(d.returned_kopecks) AS returned_kopecks,
       sum(d.payout_kopecks) AS payout_kopecks
FROM alias_warehouse_days d
JOIN accounts a ON a.account = d.account
GROUP BY d.warehouse, a.marketplace, d.alias, d.day;

-- What account_warehouse_days must hold: alias_warehouse_days over the groups.
-- What marketplace_alias_warehouses must hold: marketplace_alias_warehouse_days' days that moved.
DROP VIEW IF EXISTS marketplace_alias_warehouses_recomputed;
CREATE VIEW marketplace_alias_warehouses_recomputed AS
SELECT warehouse, marketplace, alias, count(*) AS moving_days
FROM marketplace_alias_warehouse_days
WHERE ordered <> 0 OR stock_delta <> 0
GROUP BY warehouse, marketplace, alias;

DROP VIEW IF EXISTS account_warehouse_days_recomputed;
CREATE VIEW account_warehouse_days_recomputed AS
SELECT day, account, warehouse,
       sum(ordered_lines) AS ordered_lines, sum(ordered) AS ordered, sum(sales_lines) AS sales_lines,
       sum(bought) AS bought, sum(returned) AS returned, sum(stock_delta) AS stock_delta,
       sum(ordered_kopecks) AS ordered_kopecks, sum(bought_kopecks) AS bought_kopecks,
       sum(returned_kopecks) AS returned_kopecks, sum(payout_kopecks) AS payout_kopecks,
       sum(cohort_units) AS cohort_units, sum(cohort_bought) AS cohort_bought,
       sum(cohort_not_bought) AS cohort_not_bought
FROM alias_warehouse_days
GROUP BY day, account, warehouse;

DROP VIEW IF EXISTS alias_warehouse_days_recomputed;
CREATE VIEW alias_warehouse_days_recomputed AS
SELECT d.day, d.account, coalesce(nm.alias, CAST(d.sku AS TEXT)) AS alias, d.warehouse,
       sum(d.ordered_lines) AS ordered_lines, sum(d.ordered) AS ordered, sum(d.sales_lines) AS sales_lines,
       sum(d.bought) AS bought, sum(d.returned) AS returned, sum(d.stock_delta) AS stock_delta,
       sum(d.ordered_kopecks) AS ordered_kopecks, sum(d.bought_kopecks) AS bought_kopecks,
       sum(d.returned_kopecks) AS returned_kopecks, sum(d.payout_kopecks) AS payout_kopecks,
       sum(d.cohort_units) AS cohort_units, sum(d.cohort_bought) AS cohort_bought,
       sum(d.cohort_not_bought) AS cohort_not_bought
FROM daily_figures d
LEFT JOIN sku_names nm ON nm.account = d.account AND nm.sku = d.sku
GROUP BY d.day, d.account, coalesce(nm.alias, CAST(d.sku AS TEXT)), d.warehouse;

DROP VIEW IF EXISTS alias_stock_recomputed;
CREATE VIEW alias_stock_recomputed AS
SELECT k.account, coalesce(nm.alias, CAST(k.sku AS TEXT)) AS alias, sum(k.quantity) AS quantity
FROM sku_stock k
LEFT JOIN sku_names nm ON nm.account = k.account AND nm.sku = k.sku
GROUP BY k.account, coalesce(nm.alias, CAST(k.sku AS TEXT));

-- The triggers are dropped and created anew every time this file is applied, so a database
-- always runs the definitions written here.

-- A new line is 'open' unless something already says otherwise (most new lines: one probe).
DROP TRIGGER IF EXISTS orders_outcome_added;
CREATE TRIGGER orders_outcome_added AFTER INSERT ON orders
WHEN new.status = 'delivered' OR new.is_cancelled
  OR EXISTS (SELECT 1 FROM sales s WHERE s.account = new.account AND s.order_id = new.order_id AND s.sku = new.sku)
BEGIN
    UPDATE orders SET outcome = v.outcome, returned_units = v.returned_units FROM order_outcomes v
    WHERE v.account = new.account AND v.order_id = new.order_id AND v.sku = new.sku
      AND orders.account = v.account AND orders.order_id = v.order_id AND orders.sku = v.sku
      AND (orders.outcome IS NOT v.outcome OR orders.returned_units IS NOT v.returned_units);
END;

DROP TRIGGER IF EXISTS orders_outcome_changed;
CREATE TRIGGER orders_outcome_changed AFTER UPDATE OF status, is_cancelled, quantity ON orders
WHEN old.status IS NOT new.status OR old.is_cancelled IS NOT new.is_cancelled OR old.quantity IS NOT new.quantity
BEGIN
    UPDATE orders SET outcome = v.outcome, returned_units = v.returned_units FROM order_outcomes v
    WHERE v.account = new.account AND v.order_id = new.order_id AND v.sku = new.sku
      AND orders.account = v.account AND orders.order_id = v.order_id AND orders.sku = v.sku
      AND (orders.outcome IS NOT v.outcome OR orders.returned_units IS NOT v.returned_units);
END;

DROP TRIGGER IF EXISTS sales_outcome_added;
CREATE TRIGGER sales_outcome_added AFTER INSERT ON sales
WHEN new.order_id IS NOT NULL
BEGIN
    UPDATE orders SET outcome = v.outcome, returned_units = v.returned_units FROM order_outcomes v
    WHERE v.account = new.account AND v.order_id = new.order_id AND v.sku = new.sku
      AND orders.account = v.account AND orders.order_id = v.order_id AND orders.sku = v.sku
      AND (orders.outcome IS NOT v.outcome OR orders.returned_units IS NOT v.returned_units);
END;

DROP TRIGGER IF EXISTS sales_outcome_changed;
CREATE TRIGGER sales_outcome_changed AFTER UPDATE OF account, kind, order_id, sku, quantity ON sales
BEGIN
    UPDATE orders SET outcome = v.outcome, returned_units = v.returned_units FROM order_outcomes v
    WHERE ((v.account = old.account AND v.order_id = old.order_id AND v.sku = old.sku)
        OR (v.account = new.account AND v.order_id = new.order_id AND v.sku = new.sku))
      AND orders.account = v.account AND orders.order_id = v.order_id AND orders.sku = v.sku
      AND (orders.outcome IS NOT v.outcome OR orders.returned_units IS NOT v.returned_units);
END;

DROP TRIGGER IF EXISTS sales_outcome_removed;
CREATE TRIGGER sales_outcome_removed AFTER DELETE ON sales
WHEN old.order_id IS NOT NULL
BEGIN
    UPDATE orders SET outcome = v.outcome, returned_units = v.returned_units FROM order_outcomes v
    WHERE v.account = old.account AND v.order_id = old.order_id AND v.sku = old.sku
      AND orders.account = v.account AND orders.order_id = v.order_id AND orders.sku = v.sku
      AND (orders.outcome IS NOT v.outcome OR orders.returned_units IS NOT v.returned_units);
END;

-- named_skus: a line counted under its article and its barcode on insert, moved when either, its
-- account or its SKU changes (an upsert that changes none of them does nothing here), taken back
-- on delete.
DROP TRIGGER IF EXISTS named_skus_order_added;
CREATE TRIGGER named_skus_order_added AFTER INSERT ON orders
WHEN new.article IS NOT NULL OR new.barcode IS NOT NULL
BEGIN
    INSERT INTO named_skus (name, account, sku, lines)
    SELECT name, new.account, new.sku, 1 FROM (SELECT new.article AS name UNION ALL SELECT new.barcode) WHERE name IS NOT NULL
    ON CONFLICT DO UPDATE SET lines = lines + 1;
END;

DROP TRIGGER IF EXISTS named_skus_order_changed;
CREATE TRIGGER named_skus_order_changed AFTER UPDATE OF article, barcode, account, sku ON orders
WHEN old.article IS NOT new.article OR old.barcode IS NOT new.barcode OR old.account IS NOT new.account
  OR old.sku IS NOT new.sku
BEGIN
    UPDATE named_skus SET lines = lines - (name IS old.article) - (name IS old.barcode)
    WHERE account = old.account AND sku = old.sku AND name IN (old.article, old.barcode);
    INSERT INTO named_skus (name, account, sku, lines)
    SELECT name, new.account, new.sku, 1 FROM (SELECT new.article AS name UNION ALL SELECT new.barcode) WHERE name IS NOT NULL
    ON CONFLICT DO UPDATE SET lines = lines + 1;
END;

DROP TRIGGER IF EXISTS named_skus_order_removed;
CREATE TRIGGER named_skus_order_removed AFTER DELETE ON orders
WHEN old.article IS NOT NULL OR old.barcode IS NOT NULL
BEGIN
    UPDATE named_skus SET lines = lines - (name IS old.article) - (name IS old.barcode)
    WHERE account = old.account AND sku = old.sku AND name IN (old.article, old.barcode);
END;

DROP TRIGGER IF EXISTS named_skus_sale_added;
CREATE TRIGGER named_skus_sale_added AFTER INSERT ON sales
WHEN new.article IS NOT NULL OR new.barcode IS NOT NULL
BEGIN
    INSERT INTO named_skus (name, account, sku, lines)
    SELECT name, new.account, new.sku, 1 FROM (SELECT new.article AS name UNION ALL SELECT new.barcode) WHERE name IS NOT NULL
    ON CONFLICT DO UPDATE SET lines = lines + 1;
END;

DROP TRIGGER IF EXISTS named_skus_sale_changed;
CREATE TRIGGER named_skus_sale_changed AFTER UPDATE OF article, barcode, account, sku ON sales
WHEN old.article IS NOT new.article OR old.barcode IS NOT new.barcode OR old.account IS NOT new.account
  OR old.sku IS NOT new.sku
BEGIN
    UPDATE named_skus SET lines = lines - (name IS old.article) - (name IS old.barcode)
    WHERE account = old.account AND sku = old.sku AND name IN (old.article, old.barcode);
    INSERT INTO named_skus (name, account, sku, lines)
    SELECT name, new.account, new.sku, 1 FROM (SELECT new.article AS name UNION ALL SELECT new.barcode) WHERE name IS NOT NULL
    ON CONFLICT DO UPDATE SET lines = lines + 1;
END;

DROP TRIGGER IF EXISTS named_skus_sale_removed;
CREATE TRIGGER named_skus_sale_removed AFTER DELETE ON sales
WHEN old.article IS NOT NULL OR old.barcode IS NOT NULL
BEGIN
    UPDATE named_skus SET lines = lines - (name IS old.article) - (name IS old.barcode)
    WHERE account = old.account AND sku = old.sku AND name IN (old.article, old.barcode);
END;

-- An order line's share of daily_figures is added on insert, moved on a change that counts
-- (most upserts change nothing that does, and do nothing here) and taken back on delete.
DROP TRIGGER IF EXISTS daily_figures_order_added;
CREATE TRIGGER daily_figures_order_added AFTER INSERT ON orders
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, ordered_lines, ordered, ordered_kopecks,
                               cohort_units, cohort_bought, cohort_not_bought)
    VALUES (new.day, new.account, new.sku, coalesce(new.warehouse, ''), new.is_cancelled = 0,
            CASE WHEN new.is_cancelled = 0 THEN new.quantity ELSE 0 END,
            CASE WHEN new.is_cancelled = 0 THEN coalesce(new.price_kopecks, 0) * new.quantity ELSE 0 END,
            new.quantity,
            CASE WHEN new.outcome = 'bought' THEN new.quantity - new.returned_units ELSE 0 END,
            CASE new.outcome WHEN 'not_bought' THEN new.quantity WHEN 'bought' THEN new.returned_units ELSE 0 END)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        cohort_units = cohort_units + excluded.cohort_units, cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS daily_figures_order_changed;
CREATE TRIGGER daily_figures_order_changed
AFTER UPDATE OF day, account, sku, warehouse, is_cancelled, quantity, price_kopecks, outcome, returned_units ON orders
WHEN old.is_cancelled IS NOT new.is_cancelled OR old.quantity IS NOT new.quantity OR old.day IS NOT new.day
  OR old.warehouse IS NOT new.warehouse OR old.sku IS NOT new.sku OR old.account IS NOT new.account
  OR old.price_kopecks IS NOT new.price_kopecks OR old.outcome IS NOT new.outcome
  OR old.returned_units IS NOT new.returned_units
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, ordered_lines, ordered, ordered_kopecks,
                               cohort_units, cohort_bought, cohort_not_bought)
    VALUES (old.day, old.account, old.sku, coalesce(old.warehouse, ''), -(old.is_cancelled = 0),
            CASE WHEN old.is_cancelled = 0 THEN -old.quantity ELSE 0 END,
            CASE WHEN old.is_cancelled = 0 THEN -coalesce(old.price_kopecks, 0) * old.quantity ELSE 0 END,
            -old.quantity,
            CASE WHEN old.outcome = 'bought' THEN old.returned_units - old.quantity ELSE 0 END,
            CASE old.outcome WHEN 'not_bought' THEN -old.quantity WHEN 'bought' THEN -old.returned_units ELSE 0 END),
           (new.day, new.account, new.sku, coalesce(new.warehouse, ''), new.is_cancelled = 0,
            CASE WHEN new.is_cancelled = 0 THEN new.quantity ELSE 0 END,
            CASE WHEN new.is_cancelled = 0 THEN coalesce(new.price_kopecks, 0) * new.quantity ELSE 0 END,
            new.quantity,
            CASE WHEN new.outcome = 'bought' THEN new.quantity - new.returned_units ELSE 0 END,
            CASE new.outcome WHEN 'not_bought' THEN new.quantity WHEN 'bought' THEN new.returned_units ELSE 0 END)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        cohort_units = cohort_units + excluded.cohort_units, cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS daily_figures_order_removed;
CREATE TRIGGER daily_figures_order_removed AFTER DELETE ON orders
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, ordered_lines, ordered, ordered_kopecks,
                               cohort_units, cohort_bought, cohort_not_bought)
    VALUES (old.day, old.account, old.sku, coalesce(old.warehouse, ''), -(old.is_cancelled = 0),
            CASE WHEN old.is_cancelled = 0 THEN -old.quantity ELSE 0 END,
            CASE WHEN old.is_cancelled = 0 THEN -coalesce(old.price_kopecks, 0) * old.quantity ELSE 0 END,
            -old.quantity,
            CASE WHEN old.outcome = 'bought' THEN old.returned_units - old.quantity ELSE 0 END,
            CASE old.outcome WHEN 'not_bought' THEN -old.quantity WHEN 'bought' THEN -old.returned_units ELSE 0 END)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        cohort_units = cohort_units + excluded.cohort_units, cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

-- A sales row's share: counted only with a day (an Ozon posting delivered at first sight has none).
-- `WHERE true` before ON CONFLICT: SQLite's parser needs it after a SELECT with no FROM.
DROP TRIGGER IF EXISTS daily_figures_sale_added;
CREATE TRIGGER daily_figures_sale_added AFTER INSERT ON sales
WHEN new.day IS NOT NULL
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, sales_lines, bought, returned, bought_kopecks,
                               returned_kopecks, payout_kopecks)
    SELECT new.day, new.account, new.sku, coalesce(new.warehouse, ''), 1,
           CASE WHEN new.kind = 'sale' THEN new.quantity ELSE 0 END,
           CASE WHEN new.kind = 'return' AND coalesce(new.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown') THEN new.quantity ELSE 0 END,
           CASE WHEN new.kind = 'sale' THEN coalesce(new.amount_kopecks, 0) ELSE 0 END,
           CASE WHEN new.kind = 'return' AND coalesce(new.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown') THEN abs(coalesce(new.amount_kopecks, 0)) ELSE 0 END,
           CASE WHEN new.kind = 'sale' THEN coalesce(new.payout_kopecks, 0) ELSE -abs(coalesce(new.payout_kopecks, 0)) END
    WHERE new.day IS NOT NULL
    ON CONFLICT DO UPDATE SET sales_lines = sales_lines + excluded.sales_lines, bought = bought + excluded.bought,
        returned = returned + excluded.returned, bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks;
END;

DROP TRIGGER IF EXISTS daily_figures_sale_changed;
CREATE TRIGGER daily_figures_sale_changed
AFTER UPDATE OF day, account, sku, warehouse, kind, quantity, return_type, amount_kopecks, payout_kopecks ON sales
WHEN (old.day IS NOT NULL OR new.day IS NOT NULL)
 AND (old.day IS NOT new.day OR old.quantity IS NOT new.quantity OR old.return_type IS NOT new.return_type
      OR old.warehouse IS NOT new.warehouse OR old.sku IS NOT new.sku OR old.account IS NOT new.account
      OR old.kind IS NOT new.kind OR old.amount_kopecks IS NOT new.amount_kopecks
      OR old.payout_kopecks IS NOT new.payout_kopecks)
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, sales_lines, bought, returned, bought_kopecks,
                               returned_kopecks, payout_kopecks)
    SELECT * FROM (SELECT old.day, old.account, old.sku, coalesce(old.warehouse, ''), -1,
               CASE WHEN old.kind = 'sale' THEN -old.quantity ELSE 0 END,
               CASE WHEN old.kind = 'return' AND coalesce(old.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown') THEN -old.quantity ELSE 0 END,
               CASE WHEN old.kind = 'sale' THEN -coalesce(old.amount_kopecks, 0) ELSE 0 END,
               CASE WHEN old.kind = 'return' AND coalesce(old.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown') THEN -abs(coalesce(old.amount_kopecks, 0)) ELSE 0 END,
               -CASE WHEN old.kind = 'sale' THEN coalesce(old.payout_kopecks, 0) ELSE -abs(coalesce(old.payout_kopecks, 0)) END
        WHERE old.day IS NOT NULL
    UNION ALL
    SELECT new.day, new.account, new.sku, coalesce(new.warehouse, ''), 1,
               CASE WHEN new.kind = 'sale' THEN new.quantity ELSE 0 END,
               CASE WHEN new.kind = 'return' AND coalesce(new.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown') THEN new.quantity ELSE 0 END,
               CASE WHEN new.kind = 'sale' THEN coalesce(new.amount_kopecks, 0) ELSE 0 END,
               CASE WHEN new.kind = 'return' AND coalesce(new.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown') THEN abs(coalesce(new.amount_kopecks, 0)) ELSE 0 END,
               CASE WHEN new.kind = 'sale' THEN coalesce(new.payout_kopecks, 0) ELSE -abs(coalesce(new.payout_kopecks, 0)) END
        WHERE new.day IS NOT NULL)
    WHERE true
    ON CONFLICT DO UPDATE SET sales_lines = sales_lines + excluded.sales_lines, bought = bought + excluded.bought,
        returned = returned + excluded.returned, bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks;
END;

DROP TRIGGER IF EXISTS daily_figures_sale_removed;
CREATE TRIGGER daily_figures_sale_removed AFTER DELETE ON sales
WHEN old.day IS NOT NULL
BEGIN
    INSERT INTO daily_figures (day, account, sku, warehouse, sales_lines, bought, returned, bought_kopecks,
                               returned_kopecks, payout_kopecks)
    SELECT old.day, old.account, old.sku, coalesce(old.warehouse, ''), -1,
           CASE WHEN old.kind = 'sale' THEN -old.quantity ELSE 0 END,
           CASE WHEN old.kind = 'return' AND coalesce(old.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown') THEN -old.quantity ELSE 0 END,
           CASE WHEN old.kind = 'sale' THEN -coalesce(old.amount_kopecks, 0) ELSE 0 END,
           CASE WHEN old.kind = 'return' AND coalesce(old.return_type, 'ClientReturn') IN ('ClientReturn', 'Unknown') THEN -abs(coalesce(old.amount_kopecks, 0)) ELSE 0 END,
           -CASE WHEN old.kind = 'sale' THEN coalesce(old.payout_kopecks, 0) ELSE -abs(coalesce(old.payout_kopecks, 0)) END
    WHERE old.day IS NOT NULL
    ON CONFLICT DO UPDATE SET sales_lines = sales_lines + excluded.sales_lines, bought = bought + excluded.bought,
        returned = returned + excluded.returned, bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks;
END;

-- A stock row changes its key by its quantity less the key's previous row (0 for the first),
-- on its day; the key's next row, if any (a row written out of order), then changes it by the
-- difference from this one instead. Removing a row undoes both.
DROP TRIGGER IF EXISTS daily_figures_stock_added;
CREATE TRIGGER daily_figures_stock_added AFTER INSERT ON stock
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

DROP TRIGGER IF EXISTS daily_figures_stock_removed;
CREATE TRIGGER daily_figures_stock_removed AFTER DELETE ON stock
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

-- sku_days follows daily_figures: each change of a row moves its SKU's day by the same amount.
DROP TRIGGER IF EXISTS sku_days_added;
CREATE TRIGGER sku_days_added AFTER INSERT ON daily_figures
BEGIN
    INSERT INTO sku_days (day, account, sku, ordered_lines, ordered, sales_lines, bought, returned, stock_delta,
                          ordered_kopecks, bought_kopecks, returned_kopecks, payout_kopecks,
                          cohort_units, cohort_bought, cohort_not_bought)
    VALUES (new.day, new.account, new.sku, new.ordered_lines, new.ordered, new.sales_lines, new.bought,
            new.returned, new.stock_delta, new.ordered_kopecks, new.bought_kopecks, new.returned_kopecks,
            new.payout_kopecks, new.cohort_units, new.cohort_bought, new.cohort_not_bought)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks, cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
    INSERT INTO alias_warehouse_days (day, account, alias, warehouse, ordered_lines, ordered, sales_lines,
                                      bought, returned, stock_delta, ordered_kopecks, bought_kopecks,
                                      returned_kopecks, payout_kopecks, cohort_units,
                                      cohort_bought, cohort_not_bought)
    SELECT new.day, new.account, nm.alias, new.warehouse, new.ordered_lines, new.ordered,
           new.sales_lines, new.bought, new.returned, new.stock_delta, new.ordered_kopecks,
           new.bought_kopecks, new.returned_kopecks, new.payout_kopecks, new.cohort_units, new.cohort_bought,
           new.cohort_not_bought
    FROM sku_names nm WHERE nm.account = new.account AND nm.sku = new.sku
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks, cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS sku_days_changed;
CREATE TRIGGER sku_days_changed AFTER UPDATE ON daily_figures
BEGIN
    INSERT INTO sku_days (day, account, sku, ordered_lines, ordered, sales_lines, bought, returned, stock_delta,
                          ordered_kopecks, bought_kopecks, returned_kopecks, payout_kopecks,
                          cohort_units, cohort_bought, cohort_not_bought)
    VALUES (old.day, old.account, old.sku, -old.ordered_lines, -old.ordered, -old.sales_lines, -old.bought,
            -old.returned, -old.stock_delta, -old.ordered_kopecks, -old.bought_kopecks, -old.returned_kopecks,
            -old.payout_kopecks, -old.cohort_units, -old.cohort_bought, -old.cohort_not_bought),
           (new.day, new.account, new.sku, new.ordered_lines, new.ordered, new.sales_lines, new.bought,
            new.returned, new.stock_delta, new.ordered_kopecks, new.bought_kopecks, new.returned_kopecks,
            new.payout_kopecks, new.cohort_units, new.cohort_bought, new.cohort_not_bought)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks, cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
    INSERT INTO alias_warehouse_days (day, account, alias, warehouse, ordered_lines, ordered, sales_lines,
                                      bought, returned, stock_delta, ordered_kopecks, bought_kopecks,
                                      returned_kopecks, payout_kopecks, cohort_units,
                                      cohort_bought, cohort_not_bought)
    SELECT old.day, old.account, nm.alias, old.warehouse, -old.ordered_lines, -old.ordered,
           -old.sales_lines, -old.bought, -old.returned, -old.stock_delta, -old.ordered_kopecks,
           -old.bought_kopecks, -old.returned_kopecks, -old.payout_kopecks, -old.cohort_units, -old.cohort_bought,
           -old.cohort_not_bought
    FROM sku_names nm WHERE nm.account = old.account AND nm.sku = old.sku
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks, cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
    INSERT INTO alias_warehouse_days (day, account, alias, warehouse, ordered_lines, ordered, sales_lines,
                                      bought, returned, stock_delta, ordered_kopecks, bought_kopecks,
                                      returned_kopecks, payout_kopecks, cohort_units,
                                      cohort_bought, cohort_not_bought)
    SELECT new.day, new.account, nm.alias, new.warehouse, new.ordered_lines, new.ordered,
           new.sales_lines, new.bought, new.returned, new.stock_delta, new.ordered_kopecks,
           new.bought_kopecks, new.returned_kopecks, new.payout_kopecks, new.cohort_units, new.cohort_bought,
           new.cohort_not_bought
    FROM sku_names nm WHERE nm.account = new.account AND nm.sku = new.sku
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks, cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS sku_days_removed;
CREATE TRIGGER sku_days_removed AFTER DELETE ON daily_figures
BEGIN
    UPDATE sku_days SET ordered_lines = ordered_lines - old.ordered_lines, ordered = ordered - old.ordered,
        sales_lines = sales_lines - old.sales_lines, bought = bought - old.bought, returned = returned - old.returned,
        stock_delta = stock_delta - old.stock_delta, ordered_kopecks = ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks - old.bought_kopecks, returned_kopecks = returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks - old.payout_kopecks, cohort_units = cohort_units - old.cohort_units,
        cohort_bought = cohort_bought - old.cohort_bought, cohort_not_bought = cohort_not_bought - old.cohort_not_bought
    WHERE day = old.day AND account = old.account AND sku = old.sku;
    INSERT INTO alias_warehouse_days (day, account, alias, warehouse, ordered_lines, ordered, sales_lines,
                                      bought, returned, stock_delta, ordered_kopecks, bought_kopecks,
                                      returned_kopecks, payout_kopecks, cohort_units,
                                      cohort_bought, cohort_not_bought)
    SELECT old.day, old.account, nm.alias, old.warehouse, -old.ordered_lines, -old.ordered,
           -old.sales_lines, -old.bought, -old.returned, -old.stock_delta, -old.ordered_kopecks,
           -old.bought_kopecks, -old.returned_kopecks, -old.payout_kopecks, -old.cohort_units, -old.cohort_bought,
           -old.cohort_not_bought
    FROM sku_names nm WHERE nm.account = old.account AND nm.sku = old.sku
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks, cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

-- sku_stock follows stock_current, row by row (a pass changes a few hundred keys of ~120,000),
-- and alias_warehouse_stock with it: after sku_stock, whose triggers name a new SKU (sku_names), in
-- the same trigger so that the name is there.
DROP TRIGGER IF EXISTS sku_stock_added;
CREATE TRIGGER sku_stock_added AFTER INSERT ON stock_current
BEGIN
    INSERT INTO sku_stock (account, sku, quantity) VALUES (new.account, new.sku, new.quantity)
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
    INSERT INTO alias_warehouse_stock (account, alias, warehouse, quantity)
    SELECT new.account, nm.alias, new.warehouse, new.quantity
    FROM sku_names nm WHERE nm.account = new.account AND nm.sku = new.sku
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
    INSERT INTO alias_warehouse_first_days (first_day, account, alias, warehouse, keys)
    SELECT new.first_day, new.account, nm.alias, new.warehouse, 1
    FROM sku_names nm WHERE nm.account = new.account AND nm.sku = new.sku AND new.first_day IS NOT NULL
    ON CONFLICT DO UPDATE SET keys = keys + 1;
END;

DROP TRIGGER IF EXISTS sku_stock_changed;
CREATE TRIGGER sku_stock_changed AFTER UPDATE OF account, sku, warehouse, quantity, first_day ON stock_current
WHEN old.quantity IS NOT new.quantity OR old.account IS NOT new.account OR old.sku IS NOT new.sku
  OR old.warehouse IS NOT new.warehouse OR old.first_day IS NOT new.first_day
BEGIN
    INSERT INTO sku_stock (account, sku, quantity)
    VALUES (old.account, old.sku, -old.quantity), (new.account, new.sku, new.quantity)
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
    UPDATE alias_warehouse_stock SET quantity = quantity - old.quantity
    WHERE account = old.account AND warehouse = old.warehouse
      AND alias = (SELECT alias FROM sku_names WHERE account = old.account AND sku = old.sku);
    INSERT INTO alias_warehouse_stock (account, alias, warehouse, quantity)
    SELECT new.account, nm.alias, new.warehouse, new.quantity
    FROM sku_names nm WHERE nm.account = new.account AND nm.sku = new.sku
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
    -- (a pass changes quantities; the first days move only with a key that moves or is first seen)
    UPDATE alias_warehouse_first_days SET keys = keys - 1
    WHERE first_day = old.first_day AND account = old.account AND warehouse = old.warehouse
      AND alias = (SELECT alias FROM sku_names WHERE account = old.account AND sku = old.sku)
      AND (old.first_day IS NOT new.first_day OR old.account IS NOT new.account OR old.sku IS NOT new.sku
           OR old.warehouse IS NOT new.warehouse);
    INSERT INTO alias_warehouse_first_days (first_day, account, alias, warehouse, keys)
    SELECT new.first_day, new.account, nm.alias, new.warehouse, 1
    FROM sku_names nm WHERE nm.account = new.account AND nm.sku = new.sku AND new.first_day IS NOT NULL
      AND (old.first_day IS NOT new.first_day OR old.account IS NOT new.account OR old.sku IS NOT new.sku
           OR old.warehouse IS NOT new.warehouse)
    ON CONFLICT DO UPDATE SET keys = keys + 1;
END;

DROP TRIGGER IF EXISTS sku_stock_removed;
CREATE TRIGGER sku_stock_removed AFTER DELETE ON stock_current
BEGIN
    UPDATE sku_stock SET quantity = quantity - old.quantity WHERE account = old.account AND sku = old.sku;
    UPDATE alias_warehouse_stock SET quantity = quantity - old.quantity
    WHERE account = old.account AND warehouse = old.warehouse
      AND alias = (SELECT alias FROM sku_names WHERE account = old.account AND sku = old.sku);
    UPDATE alias_warehouse_first_days SET keys = keys - 1
    WHERE first_day = old.first_day AND account = old.account AND warehouse = old.warehouse
      AND alias = (SELECT alias FROM sku_names WHERE account = old.account AND sku = old.sku);
END;

-- sku_names: a SKU gets its name when it first appears, again when its products change, and
-- every SKU an alias row names (by SKU or by article) when sku_aliases changes.
DROP TRIGGER IF EXISTS sku_names_product_added;
CREATE TRIGGER sku_names_product_added AFTER INSERT ON products
BEGIN
    INSERT INTO sku_names (account, sku, article, alias, alias_position)
    SELECT new.account, new.sku, pa.article,
           coalesce(by_sku.alias, by_article.alias, pa.article, CAST(new.sku AS TEXT)),
           coalesce(by_sku.position, by_article.position, 1000000000)
    FROM accounts a
    LEFT JOIN (SELECT article, max(updated_at) FROM products
               WHERE account = new.account AND sku = new.sku AND article IS NOT NULL) AS pa ON 1
    LEFT JOIN sku_aliases by_sku ON by_sku.marketplace = a.marketplace AND by_sku.key = CAST(new.sku AS TEXT)
    LEFT JOIN sku_aliases by_article ON by_article.marketplace = a.marketplace AND by_article.key = pa.article
    WHERE a.account = new.account
    ON CONFLICT DO UPDATE SET article = excluded.article, alias = excluded.alias,
        alias_position = excluded.alias_position
    WHERE article IS NOT excluded.article OR alias IS NOT excluded.alias
       OR alias_position IS NOT excluded.alias_position;
END;

DROP TRIGGER IF EXISTS sku_names_product_changed;
-- Every pass rewrites updated_at of each product it sees; that renames nothing unless the row's
-- article, now the latest, differs from the one the SKU is named by.
CREATE TRIGGER sku_names_product_changed AFTER UPDATE OF account, sku, article, updated_at ON products
WHEN old.article IS NOT new.article OR old.account IS NOT new.account OR old.sku IS NOT new.sku
  OR (new.article IS NOT NULL
      AND new.article IS NOT (SELECT article FROM sku_names WHERE account = new.account AND sku = new.sku))
BEGIN
    INSERT INTO sku_names (account, sku, article, alias, alias_position)
    SELECT new.account, new.sku, pa.article,
           coalesce(by_sku.alias, by_article.alias, pa.article, CAST(new.sku AS TEXT)),
           coalesce(by_sku.position, by_article.position, 1000000000)
    FROM accounts a
    LEFT JOIN (SELECT article, max(updated_at) FROM products
               WHERE account = new.account AND sku = new.sku AND article IS NOT NULL) AS pa ON 1
    LEFT JOIN sku_aliases by_sku ON by_sku.marketplace = a.marketplace AND by_sku.key = CAST(new.sku AS TEXT)
    LEFT JOIN sku_aliases by_article ON by_article.marketplace = a.marketplace AND by_article.key = pa.article
    WHERE a.account = new.account
    ON CONFLICT DO UPDATE SET article = excluded.article, alias = excluded.alias,
        alias_position = excluded.alias_position
    WHERE article IS NOT excluded.article OR alias IS NOT excluded.alias
       OR alias_position IS NOT excluded.alias_position;
    INSERT INTO sku_names (account, sku, article, alias, alias_position)
    SELECT old.account, old.sku, pa.article,
           coalesce(by_sku.alias, by_article.alias, pa.article, CAST(old.sku AS TEXT)),
           coalesce(by_sku.position, by_article.position, 1000000000)
    FROM accounts a
    LEFT JOIN (SELECT article, max(updated_at) FROM products
               WHERE account = old.account AND sku = old.sku AND article IS NOT NULL) AS pa ON 1
    LEFT JOIN sku_aliases by_sku ON by_sku.marketplace = a.marketplace AND by_sku.key = CAST(old.sku AS TEXT)
    LEFT JOIN sku_aliases by_article ON by_article.marketplace = a.marketplace AND by_article.key = pa.article
    WHERE a.account = old.account AND (old.account IS NOT new.account OR old.sku IS NOT new.sku)
    ON CONFLICT DO UPDATE SET article = excluded.article, alias = excluded.alias,
        alias_position = excluded.alias_position
    WHERE article IS NOT excluded.article OR alias IS NOT excluded.alias
       OR alias_position IS NOT excluded.alias_position;
END;

DROP TRIGGER IF EXISTS sku_names_product_removed;
CREATE TRIGGER sku_names_product_removed AFTER DELETE ON products
BEGIN
    INSERT INTO sku_names (account, sku, article, alias, alias_position)
    SELECT old.account, old.sku, pa.article,
           coalesce(by_sku.alias, by_article.alias, pa.article, CAST(old.sku AS TEXT)),
           coalesce(by_sku.position, by_article.position, 1000000000)
    FROM accounts a
    LEFT JOIN (SELECT article, max(updated_at) FROM products
               WHERE account = old.account AND sku = old.sku AND article IS NOT NULL) AS pa ON 1
    LEFT JOIN sku_aliases by_sku ON by_sku.marketplace = a.marketplace AND by_sku.key = CAST(old.sku AS TEXT)
    LEFT JOIN sku_aliases by_article ON by_article.marketplace = a.marketplace AND by_article.key = pa.article
    WHERE a.account = old.account
    ON CONFLICT DO UPDATE SET article = excluded.article, alias = excluded.alias,
        alias_position = excluded.alias_position
    WHERE article IS NOT excluded.article OR alias IS NOT excluded.alias
       OR alias_position IS NOT excluded.alias_position;
END;

-- A SKU's day or stock is counted in its group. The SKU is named first (its first appearance
-- names it), so that its group is known: in one trigger, because SQLite runs a trigger's
-- statements in order but promises no order between two triggers.
DROP TRIGGER IF EXISTS sku_names_day_added;
DROP TRIGGER IF EXISTS alias_days_added;
CREATE TRIGGER alias_days_added AFTER INSERT ON sku_days
BEGIN
    INSERT INTO summary_days (day) VALUES (new.day) ON CONFLICT DO NOTHING;
    INSERT INTO sku_names (account, sku, article, alias, alias_position)
    SELECT new.account, new.sku, pa.article,
           coalesce(by_sku.alias, by_article.alias, pa.article, CAST(new.sku AS TEXT)),
           coalesce(by_sku.position, by_article.position, 1000000000)
    FROM accounts a
    LEFT JOIN (SELECT article, max(updated_at) FROM products
               WHERE account = new.account AND sku = new.sku AND article IS NOT NULL) AS pa ON 1
    LEFT JOIN sku_aliases by_sku ON by_sku.marketplace = a.marketplace AND by_sku.key = CAST(new.sku AS TEXT)
    LEFT JOIN sku_aliases by_article ON by_article.marketplace = a.marketplace AND by_article.key = pa.article
    WHERE a.account = new.account
      AND NOT EXISTS (SELECT 1 FROM sku_names WHERE account = new.account AND sku = new.sku)
    ON CONFLICT DO UPDATE SET article = excluded.article, alias = excluded.alias,
        alias_position = excluded.alias_position
    WHERE article IS NOT excluded.article OR alias IS NOT excluded.alias
       OR alias_position IS NOT excluded.alias_position;
    INSERT INTO alias_days (day, account, alias, ordered_lines, ordered, sales_lines, bought, returned,
                            stock_delta, ordered_kopecks, bought_kopecks, returned_kopecks,
                            payout_kopecks, cohort_units, cohort_bought, cohort_not_bought)
    SELECT new.day, new.account, nm.alias, new.ordered_lines, new.ordered, new.sales_lines, new.bought,
           new.returned, new.stock_delta, new.ordered_kopecks, new.bought_kopecks,
           new.returned_kopecks, new.payout_kopecks, new.cohort_units, new.cohort_bought,
           new.cohort_not_bought
    FROM sku_names nm WHERE nm.account = new.account AND nm.sku = new.sku
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks,
        cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

-- (sku_days' rows change in place: their key never changes, but a change of key is counted right too)
DROP TRIGGER IF EXISTS alias_days_changed;
CREATE TRIGGER alias_days_changed AFTER UPDATE ON sku_days
WHEN old.day = new.day AND old.account = new.account AND old.sku = new.sku
BEGIN
    UPDATE alias_days SET ordered_lines = ordered_lines + new.ordered_lines - old.ordered_lines,
        ordered = ordered + new.ordered - old.ordered,
        sales_lines = sales_lines + new.sales_lines - old.sales_lines,
        bought = bought + new.bought - old.bought, returned = returned + new.returned - old.returned,
        stock_delta = stock_delta + new.stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks + new.ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks + new.bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks + new.returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks + new.payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units + new.cohort_units - old.cohort_units,
        cohort_bought = cohort_bought + new.cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought + new.cohort_not_bought - old.cohort_not_bought
    WHERE day = old.day AND account = old.account
      AND alias = (SELECT alias FROM sku_names WHERE account = old.account AND sku = old.sku);
END;

DROP TRIGGER IF EXISTS alias_days_rekeyed;
CREATE TRIGGER alias_days_rekeyed AFTER UPDATE ON sku_days
WHEN old.day IS NOT new.day OR old.account IS NOT new.account OR old.sku IS NOT new.sku
BEGIN
    UPDATE alias_days SET ordered_lines = ordered_lines - old.ordered_lines,
        ordered = ordered - old.ordered, sales_lines = sales_lines - old.sales_lines,
        bought = bought - old.bought, returned = returned - old.returned,
        stock_delta = stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units - old.cohort_units,
        cohort_bought = cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought - old.cohort_not_bought
    WHERE day = old.day AND account = old.account
      AND alias = (SELECT alias FROM sku_names WHERE account = old.account AND sku = old.sku);
    INSERT INTO alias_days (day, account, alias, ordered_lines, ordered, sales_lines, bought, returned,
                            stock_delta, ordered_kopecks, bought_kopecks, returned_kopecks,
                            payout_kopecks, cohort_units, cohort_bought, cohort_not_bought)
    SELECT new.day, new.account, nm.alias, new.ordered_lines, new.ordered, new.sales_lines, new.bought,
           new.returned, new.stock_delta, new.ordered_kopecks, new.bought_kopecks,
           new.returned_kopecks, new.payout_kopecks, new.cohort_units, new.cohort_bought,
           new.cohort_not_bought
    FROM sku_names nm WHERE nm.account = new.account AND nm.sku = new.sku
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks,
        cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS alias_days_removed;
CREATE TRIGGER alias_days_removed AFTER DELETE ON sku_days
BEGIN
    UPDATE alias_days SET ordered_lines = ordered_lines - old.ordered_lines,
        ordered = ordered - old.ordered, sales_lines = sales_lines - old.sales_lines,
        bought = bought - old.bought, returned = returned - old.returned,
        stock_delta = stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units - old.cohort_units,
        cohort_bought = cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought - old.cohort_not_bought
    WHERE day = old.day AND account = old.account
      AND alias = (SELECT alias FROM sku_names WHERE account = old.account AND sku = old.sku);
END;

DROP TRIGGER IF EXISTS sku_names_stock_added;
DROP TRIGGER IF EXISTS alias_stock_added;
CREATE TRIGGER alias_stock_added AFTER INSERT ON sku_stock
BEGIN
    INSERT INTO sku_names (account, sku, article, alias, alias_position)
    SELECT new.account, new.sku, pa.article,
           coalesce(by_sku.alias, by_article.alias, pa.article, CAST(new.sku AS TEXT)),
           coalesce(by_sku.position, by_article.position, 1000000000)
    FROM accounts a
    LEFT JOIN (SELECT article, max(updated_at) FROM products
               WHERE account = new.account AND sku = new.sku AND article IS NOT NULL) AS pa ON 1
    LEFT JOIN sku_aliases by_sku ON by_sku.marketplace = a.marketplace AND by_sku.key = CAST(new.sku AS TEXT)
    LEFT JOIN sku_aliases by_article ON by_article.marketplace = a.marketplace AND by_article.key = pa.article
    WHERE a.account = new.account
      AND NOT EXISTS (SELECT 1 FROM sku_names WHERE account = new.account AND sku = new.sku)
    ON CONFLICT DO UPDATE SET article = excluded.article, alias = excluded.alias,
        alias_position = excluded.alias_position
    WHERE article IS NOT excluded.article OR alias IS NOT excluded.alias
       OR alias_position IS NOT excluded.alias_position;
    INSERT INTO alias_stock (account, alias, quantity)
    SELECT new.account, nm.alias, new.quantity
    FROM sku_names nm WHERE nm.account = new.account AND nm.sku = new.sku
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
END;

DROP TRIGGER IF EXISTS alias_stock_changed;
CREATE TRIGGER alias_stock_changed AFTER UPDATE ON sku_stock
BEGIN
    UPDATE alias_stock SET quantity = quantity - old.quantity
    WHERE account = old.account
      AND alias = (SELECT alias FROM sku_names WHERE account = old.account AND sku = old.sku);
    INSERT INTO alias_stock (account, alias, quantity)
    SELECT new.account, nm.alias, new.quantity
    FROM sku_names nm WHERE nm.account = new.account AND nm.sku = new.sku
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
END;

DROP TRIGGER IF EXISTS alias_stock_removed;
CREATE TRIGGER alias_stock_removed AFTER DELETE ON sku_stock
BEGIN
    UPDATE alias_stock SET quantity = quantity - old.quantity
    WHERE account = old.account
      AND alias = (SELECT alias FROM sku_names WHERE account = old.account AND sku = old.sku);
END;

-- account_days follows alias_days (a SKU moved between groups of one account nets to nothing).
DROP TRIGGER IF EXISTS account_days_added;
CREATE TRIGGER account_days_added AFTER INSERT ON alias_days
BEGIN
    INSERT INTO account_days (day, account, ordered_lines, ordered, sales_lines, bought, returned,
                              stock_delta, ordered_kopecks, bought_kopecks, returned_kopecks,
                              payout_kopecks, cohort_units, cohort_bought, cohort_not_bought)
    VALUES (new.day, new.account, new.ordered_lines, new.ordered, new.sales_lines, new.bought,
            new.returned, new.stock_delta, new.ordered_kopecks, new.bought_kopecks,
            new.returned_kopecks, new.payout_kopecks, new.cohort_units, new.cohort_bought,
            new.cohort_not_bought)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks,
        cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS account_days_changed;
CREATE TRIGGER account_days_changed AFTER UPDATE ON alias_days
WHEN old.day = new.day AND old.account = new.account
BEGIN
    UPDATE account_days SET ordered_lines = ordered_lines + new.ordered_lines - old.ordered_lines,
        ordered = ordered + new.ordered - old.ordered,
        sales_lines = sales_lines + new.sales_lines - old.sales_lines,
        bought = bought + new.bought - old.bought, returned = returned + new.returned - old.returned,
        stock_delta = stock_delta + new.stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks + new.ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks + new.bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks + new.returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks + new.payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units + new.cohort_units - old.cohort_units,
        cohort_bought = cohort_bought + new.cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought + new.cohort_not_bought - old.cohort_not_bought
    WHERE day = old.day AND account = old.account;
END;

DROP TRIGGER IF EXISTS account_days_rekeyed;
CREATE TRIGGER account_days_rekeyed AFTER UPDATE ON alias_days
WHEN old.day IS NOT new.day OR old.account IS NOT new.account
BEGIN
    UPDATE account_days SET ordered_lines = ordered_lines - old.ordered_lines,
        ordered = ordered - old.ordered, sales_lines = sales_lines - old.sales_lines,
        bought = bought - old.bought, returned = returned - old.returned,
        stock_delta = stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units - old.cohort_units,
        cohort_bought = cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought - old.cohort_not_bought
    WHERE day = old.day AND account = old.account;
    INSERT INTO account_days (day, account, ordered_lines, ordered, sales_lines, bought, returned,
                              stock_delta, ordered_kopecks, bought_kopecks, returned_kopecks,
                              payout_kopecks, cohort_units, cohort_bought, cohort_not_bought)
    VALUES (new.day, new.account, new.ordered_lines, new.ordered, new.sales_lines, new.bought,
            new.returned, new.stock_delta, new.ordered_kopecks, new.bought_kopecks,
            new.returned_kopecks, new.payout_kopecks, new.cohort_units, new.cohort_bought,
            new.cohort_not_bought)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks,
        cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS account_days_removed;
CREATE TRIGGER account_days_removed AFTER DELETE ON alias_days
BEGIN
    UPDATE account_days SET ordered_lines = ordered_lines - old.ordered_lines,
        ordered = ordered - old.ordered, sales_lines = sales_lines - old.sales_lines,
        bought = bought - old.bought, returned = returned - old.returned,
        stock_delta = stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units - old.cohort_units,
        cohort_bought = cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought - old.cohort_not_bought
    WHERE day = old.day AND account = old.account;
END;

-- account_warehouse_days follows alias_warehouse_days (a SKU moved between groups nets to nothing).
DROP TRIGGER IF EXISTS account_warehouse_days_added;
CREATE TRIGGER account_warehouse_days_added AFTER INSERT ON alias_warehouse_days
BEGIN
    INSERT INTO account_warehouse_days (day, account, warehouse, ordered_lines, ordered, sales_lines,
                                        bought, returned, stock_delta, ordered_kopecks,
                                        bought_kopecks, returned_kopecks, payout_kopecks,
                                        cohort_units, cohort_bought, cohort_not_bought)
    VALUES (new.day, new.account, new.warehouse, new.ordered_lines, new.ordered, new.sales_lines,
            new.bought, new.returned, new.stock_delta, new.ordered_kopecks, new.bought_kopecks,
            new.returned_kopecks, new.payout_kopecks, new.cohort_units, new.cohort_bought,
            new.cohort_not_bought)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines, ordered = ordered + excluded.ordered,
        sales_lines = sales_lines + excluded.sales_lines, bought = bought + excluded.bought,
        returned = returned + excluded.returned, stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks,
        cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS account_warehouse_days_changed;
CREATE TRIGGER account_warehouse_days_changed AFTER UPDATE ON alias_warehouse_days
WHEN old.day = new.day AND old.account = new.account AND old.warehouse = new.warehouse
BEGIN
    UPDATE account_warehouse_days SET ordered_lines = ordered_lines + new.ordered_lines - old.ordered_lines,
        ordered = ordered + new.ordered - old.ordered,
        sales_lines = sales_lines + new.sales_lines - old.sales_lines,
        bought = bought + new.bought - old.bought, returned = returned + new.returned - old.returned,
        stock_delta = stock_delta + new.stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks + new.ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks + new.bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks + new.returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks + new.payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units + new.cohort_units - old.cohort_units,
        cohort_bought = cohort_bought + new.cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought + new.cohort_not_bought - old.cohort_not_bought
    WHERE day = old.day AND account = old.account AND warehouse = old.warehouse;
END;

DROP TRIGGER IF EXISTS account_warehouse_days_rekeyed;
CREATE TRIGGER account_warehouse_days_rekeyed AFTER UPDATE ON alias_warehouse_days
WHEN old.day IS NOT new.day OR old.account IS NOT new.account OR old.warehouse IS NOT new.warehouse
BEGIN
    UPDATE account_warehouse_days SET ordered_lines = ordered_lines - old.ordered_lines, ordered = ordered - old.ordered,
        sales_lines = sales_lines - old.sales_lines, bought = bought - old.bought,
        returned = returned - old.returned, stock_delta = stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units - old.cohort_units,
        cohort_bought = cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought - old.cohort_not_bought
    WHERE day = old.day AND account = old.account AND warehouse = old.warehouse;
    INSERT INTO account_warehouse_days (day, account, warehouse, ordered_lines, ordered, sales_lines,
                                        bought, returned, stock_delta, ordered_kopecks,
                                        bought_kopecks, returned_kopecks, payout_kopecks,
                                        cohort_units, cohort_bought, cohort_not_bought)
    VALUES (new.day, new.account, new.warehouse, new.ordered_lines, new.ordered, new.sales_lines,
            new.bought, new.returned, new.stock_delta, new.ordered_kopecks, new.bought_kopecks,
            new.returned_kopecks, new.payout_kopecks, new.cohort_units, new.cohort_bought,
            new.cohort_not_bought)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines, ordered = ordered + excluded.ordered,
        sales_lines = sales_lines + excluded.sales_lines, bought = bought + excluded.bought,
        returned = returned + excluded.returned, stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks,
        cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS account_warehouse_days_removed;
CREATE TRIGGER account_warehouse_days_removed AFTER DELETE ON alias_warehouse_days
BEGIN
    UPDATE account_warehouse_days SET ordered_lines = ordered_lines - old.ordered_lines, ordered = ordered - old.ordered,
        sales_lines = sales_lines - old.sales_lines, bought = bought - old.bought,
        returned = returned - old.returned, stock_delta = stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units - old.cohort_units,
        cohort_bought = cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought - old.cohort_not_bought
    WHERE day = old.day AND account = old.account AND warehouse = old.warehouse;
END;

-- alias_months follows alias_days' stock changes (orders and sales alone are not written).
DROP TRIGGER IF EXISTS alias_months_added;
CREATE TRIGGER alias_months_added AFTER INSERT ON alias_days
WHEN new.stock_delta <> 0
BEGIN
    INSERT INTO alias_months (month, account, alias, stock_delta)
    VALUES (substr(new.day, 1, 7), new.account, new.alias, new.stock_delta)
    ON CONFLICT DO UPDATE SET stock_delta = stock_delta + excluded.stock_delta;
END;

DROP TRIGGER IF EXISTS alias_months_changed;
CREATE TRIGGER alias_months_changed AFTER UPDATE OF day, account, alias, stock_delta ON alias_days
WHEN (old.stock_delta <> 0 OR new.stock_delta <> 0)
  AND (new.stock_delta IS NOT old.stock_delta OR substr(old.day, 1, 7) IS NOT substr(new.day, 1, 7)
       OR old.account IS NOT new.account OR old.alias IS NOT new.alias)
BEGIN
    UPDATE alias_months SET stock_delta = stock_delta - old.stock_delta
    WHERE month = substr(old.day, 1, 7) AND account = old.account AND alias = old.alias;
    INSERT INTO alias_months (month, account, alias, stock_delta)
    VALUES (substr(new.day, 1, 7), new.account, new.alias, new.stock_delta)
    ON CONFLICT DO UPDATE SET stock_delta = stock_delta + excluded.stock_delta;
END;

DROP TRIGGER IF EXISTS alias_months_removed;
CREATE TRIGGER alias_months_removed AFTER DELETE ON alias_days
WHEN old.stock_delta <> 0
BEGIN
    UPDATE alias_months SET stock_delta = stock_delta - old.stock_delta
    WHERE month = substr(old.day, 1, 7) AND account = old.account AND alias = old.alias;
END;

-- alias_warehouse_months follows alias_warehouse_days' stock changes (a day's orders and sales
-- alone change nothing here and are not written).
DROP TRIGGER IF EXISTS alias_warehouse_months_added;
CREATE TRIGGER alias_warehouse_months_added AFTER INSERT ON alias_warehouse_days
WHEN new.stock_delta <> 0
BEGIN
    INSERT INTO alias_warehouse_months (month, account, alias, warehouse, stock_delta)
    VALUES (substr(new.day, 1, 7), new.account, new.alias, new.warehouse, new.stock_delta)
    ON CONFLICT DO UPDATE SET stock_delta = stock_delta + excluded.stock_delta;
END;

DROP TRIGGER IF EXISTS alias_warehouse_months_changed;
CREATE TRIGGER alias_warehouse_months_changed AFTER UPDATE OF day, account, alias, warehouse, stock_delta
ON alias_warehouse_days
WHEN (old.stock_delta <> 0 OR new.stock_delta <> 0)
  AND (new.stock_delta IS NOT old.stock_delta OR substr(old.day, 1, 7) IS NOT substr(new.day, 1, 7)
       OR old.account IS NOT new.account OR old.alias IS NOT new.alias OR old.warehouse IS NOT new.warehouse)
BEGIN
    UPDATE alias_warehouse_months SET stock_delta = stock_delta - old.stock_delta
    WHERE month = substr(old.day, 1, 7) AND account = old.account AND alias = old.alias
      AND warehouse = old.warehouse;
    INSERT INTO alias_warehouse_months (month, account, alias, warehouse, stock_delta)
    VALUES (substr(new.day, 1, 7), new.account, new.alias, new.warehouse, new.stock_delta)
    ON CONFLICT DO UPDATE SET stock_delta = stock_delta + excluded.stock_delta;
END;

DROP TRIGGER IF EXISTS alias_warehouse_months_removed;
CREATE TRIGGER alias_warehouse_months_removed AFTER DELETE ON alias_warehouse_days
WHEN old.stock_delta <> 0
BEGIN
    UPDATE alias_warehouse_months SET stock_delta = stock_delta - old.stock_delta
    WHERE month = substr(old.day, 1, 7) AND account = old.account AND alias = old.alias
      AND warehouse = old.warehouse;
END;

-- marketplace_alias_warehouse_days follows alias_warehouse_days: a change in place is added where it
-- is, a row that changes key is taken from its old place and added to its new one (a day moving
-- between accounts of one marketplace nets to nothing). Only what it holds is written.
DROP TRIGGER IF EXISTS marketplace_alias_warehouse_days_added;
CREATE TRIGGER marketplace_alias_warehouse_days_added AFTER INSERT ON alias_warehouse_days
BEGIN
    INSERT INTO marketplace_alias_warehouse_days (warehouse, marketplace, alias, day, ordered, bought,
                                                  returned, stock_delta, ordered_kopecks,
                                                  bought_kopecks, returned_kopecks, payout_kopecks)
    VALUES (new.warehouse, (SELECT marketplace FROM accounts WHERE account = new.account), new.alias, new.day,
            new.ordered, new.bought, new.returned, new.stock_delta, new.ordered_kopecks,
            new.bought_kopecks, new.returned_kopecks, new.payout_kopecks)
    ON CONFLICT DO UPDATE SET
        ordered = ordered + excluded.ordered, bought = bought + excluded.bought,
        returned = returned + excluded.returned, stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks;
END;

DROP TRIGGER IF EXISTS marketplace_alias_warehouse_days_changed;
CREATE TRIGGER marketplace_alias_warehouse_days_changed AFTER UPDATE ON alias_warehouse_days
WHEN old.day = new.day AND old.account = new.account AND old.alias = new.alias AND old.warehouse = new.warehouse
  AND (new.ordered IS NOT old.ordered OR new.bought IS NOT old.bought OR new.returned IS NOT old.returned
       OR new.stock_delta IS NOT old.stock_delta OR new.ordered_kopecks IS NOT old.ordered_kopecks
       OR new.bought_kopecks IS NOT old.bought_kopecks OR new.returned_kopecks IS NOT old.returned_kopecks
       OR new.payout_kopecks IS NOT old.payout_kopecks)
BEGIN
    UPDATE marketplace_alias_warehouse_days SET
        ordered = ordered + new.ordered - old.ordered, bought = bought + new.bought - old.bought,
        returned = returned + new.returned - old.returned,
        stock_delta = stock_delta + new.stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks + new.ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks + new.bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks + new.returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks + new.payout_kopecks - old.payout_kopecks
    WHERE warehouse = old.warehouse AND marketplace = (SELECT marketplace FROM accounts WHERE account = old.account)
      AND alias = old.alias AND day = old.day;
END;

DROP TRIGGER IF EXISTS marketplace_alias_warehouse_days_rekeyed;
CREATE TRIGGER marketplace_alias_warehouse_days_rekeyed AFTER UPDATE ON alias_warehouse_days
WHEN old.day IS NOT new.day OR old.account IS NOT new.account OR old.alias IS NOT new.alias
  OR old.warehouse IS NOT new.warehouse
BEGIN
    UPDATE marketplace_alias_warehouse_days SET
        ordered = ordered - old.ordered, bought = bought - old.bought,
        returned = returned - old.returned, stock_delta = stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks - old.payout_kopecks
    WHERE warehouse = old.warehouse AND marketplace = (SELECT marketplace FROM accounts WHERE account = old.account)
      AND alias = old.alias AND day = old.day;
    INSERT INTO marketplace_alias_warehouse_days (warehouse, marketplace, alias, day, ordered, bought,
                                                  returned, stock_delta, ordered_kopecks,
                                                  bought_kopecks, returned_kopecks, payout_kopecks)
    VALUES (new.warehouse, (SELECT marketplace FROM accounts WHERE account = new.account), new.alias, new.day,
            new.ordered, new.bought, new.returned, new.stock_delta, new.ordered_kopecks,
            new.bought_kopecks, new.returned_kopecks, new.payout_kopecks)
    ON CONFLICT DO UPDATE SET
        ordered = ordered + excluded.ordered, bought = bought + excluded.bought,
        returned = returned + excluded.returned, stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks;
END;

DROP TRIGGER IF EXISTS marketplace_alias_warehouse_days_removed;
CREATE TRIGGER marketplace_alias_warehouse_days_removed AFTER DELETE ON alias_warehouse_days
BEGIN
    UPDATE marketplace_alias_warehouse_days SET
        ordered = ordered - old.ordered, bought = bought - old.bought,
        returned = returned - old.returned, stock_delta = stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks - old.ordered_kopecks,
        bought_kopecks = bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks - old.returned_kopecks,
        payout_kopecks = payout_kopecks - old.payout_kopecks
    WHERE warehouse = old.warehouse AND marketplace = (SELECT marketplace FROM accounts WHERE account = old.account)
      AND alias = old.alias AND day = old.day;
END;

-- marketplace_alias_warehouses counts a place's days that move units ordered or the stock: a day
-- counts from when it first moves one of them, and no longer once both are back at zero.
DROP TRIGGER IF EXISTS marketplace_alias_warehouses_added;
CREATE TRIGGER marketplace_alias_warehouses_added AFTER INSERT ON marketplace_alias_warehouse_days
WHEN new.ordered <> 0 OR new.stock_delta <> 0
BEGIN
    INSERT INTO marketplace_alias_warehouses (warehouse, marketplace, alias, moving_days)
    VALUES (new.warehouse, new.marketplace, new.alias, 1)
    ON CONFLICT DO UPDATE SET moving_days = moving_days + 1;
END;

DROP TRIGGER IF EXISTS marketplace_alias_warehouses_changed;
CREATE TRIGGER marketplace_alias_warehouses_changed AFTER UPDATE ON marketplace_alias_warehouse_days
WHEN (old.ordered <> 0 OR old.stock_delta <> 0) IS NOT (new.ordered <> 0 OR new.stock_delta <> 0)
  OR old.warehouse IS NOT new.warehouse OR old.marketplace IS NOT new.marketplace OR old.alias IS NOT new.alias
BEGIN
    UPDATE marketplace_alias_warehouses SET moving_days = moving_days - 1
    WHERE warehouse = old.warehouse AND marketplace = old.marketplace AND alias = old.alias
      AND (old.ordered <> 0 OR old.stock_delta <> 0);
    INSERT INTO marketplace_alias_warehouses (warehouse, marketplace, alias, moving_days)
    SELECT new.warehouse, new.marketplace, new.alias, 1
    WHERE new.ordered <> 0 OR new.stock_delta <> 0
    ON CONFLICT DO UPDATE SET moving_days = moving_days + 1;
END;

DROP TRIGGER IF EXISTS marketplace_alias_warehouses_removed;
CREATE TRIGGER marketplace_alias_warehouses_removed AFTER DELETE ON marketplace_alias_warehouse_days
WHEN old.ordered <> 0 OR old.stock_delta <> 0
BEGIN
    UPDATE marketplace_alias_warehouses SET moving_days = moving_days - 1
    WHERE warehouse = old.warehouse AND marketplace = old.marketplace AND alias = old.alias;
END;

-- marketplace_alias_days follows alias_days: a change in place is added where it is, a row that
-- changes key (a group's day moving between accounts of one marketplace nets to nothing) is taken
-- from its old place and added to its new one.
DROP TRIGGER IF EXISTS marketplace_alias_days_added;
CREATE TRIGGER marketplace_alias_days_added AFTER INSERT ON alias_days
BEGIN
    INSERT INTO marketplace_alias_days (marketplace, alias, day, ordered_lines, ordered,
                                        sales_lines, bought, returned, stock_delta, ordered_kopecks,
                                        bought_kopecks, returned_kopecks, payout_kopecks,
                                        cohort_units, cohort_bought, cohort_not_bought)
    VALUES ((SELECT marketplace FROM accounts WHERE account = new.account), new.alias, new.day,
            new.ordered_lines, new.ordered, new.sales_lines, new.bought, new.returned,
            new.stock_delta, new.ordered_kopecks, new.bought_kopecks, new.returned_kopecks,
            new.payout_kopecks, new.cohort_units, new.cohort_bought, new.cohort_not_bought)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines, ordered = ordered + excluded.ordered,
        sales_lines = sales_lines + excluded.sales_lines, bought = bought + excluded.bought,
        returned = returned + excluded.returned, stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks, bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks, payout_kopecks = payout_kopecks + excluded.payout_kopecks,
        cohort_units = cohort_units + excluded.cohort_units, cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS marketplace_alias_days_changed;
CREATE TRIGGER marketplace_alias_days_changed AFTER UPDATE ON alias_days
WHEN old.day = new.day AND old.account = new.account AND old.alias = new.alias
BEGIN
    UPDATE marketplace_alias_days SET ordered_lines = ordered_lines + new.ordered_lines - old.ordered_lines, ordered = ordered + new.ordered - old.ordered,
        sales_lines = sales_lines + new.sales_lines - old.sales_lines, bought = bought + new.bought - old.bought,
        returned = returned + new.returned - old.returned, stock_delta = stock_delta + new.stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks + new.ordered_kopecks - old.ordered_kopecks, bought_kopecks = bought_kopecks + new.bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks + new.returned_kopecks - old.returned_kopecks, payout_kopecks = payout_kopecks + new.payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units + new.cohort_units - old.cohort_units, cohort_bought = cohort_bought + new.cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought + new.cohort_not_bought - old.cohort_not_bought
    WHERE marketplace = (SELECT marketplace FROM accounts WHERE account = old.account)
      AND alias = old.alias AND day = old.day;
END;

DROP TRIGGER IF EXISTS marketplace_alias_days_rekeyed;
CREATE TRIGGER marketplace_alias_days_rekeyed AFTER UPDATE ON alias_days
WHEN old.day IS NOT new.day OR old.account IS NOT new.account OR old.alias IS NOT new.alias
BEGIN
    UPDATE marketplace_alias_days SET ordered_lines = ordered_lines - old.ordered_lines, ordered = ordered - old.ordered,
        sales_lines = sales_lines - old.sales_lines, bought = bought - old.bought,
        returned = returned - old.returned, stock_delta = stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks - old.ordered_kopecks, bought_kopecks = bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks - old.returned_kopecks, payout_kopecks = payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units - old.cohort_units, cohort_bought = cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought - old.cohort_not_bought
    WHERE marketplace = (SELECT marketplace FROM accounts WHERE account = old.account)
      AND alias = old.alias AND day = old.day;
    INSERT INTO marketplace_alias_days (marketplace, alias, day, ordered_lines, ordered,
                                        sales_lines, bought, returned, stock_delta, ordered_kopecks,
                                        bought_kopecks, returned_kopecks, payout_kopecks,
                                        cohort_units, cohort_bought, cohort_not_bought)
    VALUES ((SELECT marketplace FROM accounts WHERE account = new.account), new.alias, new.day,
            new.ordered_lines, new.ordered, new.sales_lines, new.bought, new.returned,
            new.stock_delta, new.ordered_kopecks, new.bought_kopecks, new.returned_kopecks,
            new.payout_kopecks, new.cohort_units, new.cohort_bought, new.cohort_not_bought)
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines, ordered = ordered + excluded.ordered,
        sales_lines = sales_lines + excluded.sales_lines, bought = bought + excluded.bought,
        returned = returned + excluded.returned, stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks, bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks, payout_kopecks = payout_kopecks + excluded.payout_kopecks,
        cohort_units = cohort_units + excluded.cohort_units, cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

DROP TRIGGER IF EXISTS marketplace_alias_days_removed;
CREATE TRIGGER marketplace_alias_days_removed AFTER DELETE ON alias_days
BEGIN
    UPDATE marketplace_alias_days SET ordered_lines = ordered_lines - old.ordered_lines, ordered = ordered - old.ordered,
        sales_lines = sales_lines - old.sales_lines, bought = bought - old.bought,
        returned = returned - old.returned, stock_delta = stock_delta - old.stock_delta,
        ordered_kopecks = ordered_kopecks - old.ordered_kopecks, bought_kopecks = bought_kopecks - old.bought_kopecks,
        returned_kopecks = returned_kopecks - old.returned_kopecks, payout_kopecks = payout_kopecks - old.payout_kopecks,
        cohort_units = cohort_units - old.cohort_units, cohort_bought = cohort_bought - old.cohort_bought,
        cohort_not_bought = cohort_not_bought - old.cohort_not_bought
    WHERE marketplace = (SELECT marketplace FROM accounts WHERE account = old.account)
      AND alias = old.alias AND day = old.day;
END;

-- A SKU that changes group (an alias added, edited or removed, an article learned) takes its
-- days and its stock (by warehouse too) from the old group to the new one (summary_days lists
-- the days to look up, a key lookup each: as a join, SQLite scanned the whole table for every SKU,
-- or built a Bloom filter over it, ~100 ms a SKU at the reference seller).
DROP TRIGGER IF EXISTS alias_days_regrouped;
CREATE TRIGGER alias_days_regrouped AFTER UPDATE OF account, sku, alias ON sku_names
WHEN old.alias IS NOT new.alias OR old.account IS NOT new.account OR old.sku IS NOT new.sku
BEGIN
    INSERT INTO alias_days (day, account, alias, ordered_lines, ordered, sales_lines, bought, returned,
                            stock_delta, ordered_kopecks, bought_kopecks, returned_kopecks,
                            payout_kopecks, cohort_units, cohort_bought, cohort_not_bought)
    SELECT s.day, old.account, old.alias, -ordered_lines, -ordered, -sales_lines, -bought, -returned,
           -stock_delta, -ordered_kopecks, -bought_kopecks, -returned_kopecks, -payout_kopecks,
           -cohort_units, -cohort_bought, -cohort_not_bought
    FROM sku_days s WHERE s.day IN (SELECT day FROM summary_days) AND s.account = old.account AND s.sku = old.sku
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks,
        cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
    INSERT INTO alias_days (day, account, alias, ordered_lines, ordered, sales_lines, bought, returned,
                            stock_delta, ordered_kopecks, bought_kopecks, returned_kopecks,
                            payout_kopecks, cohort_units, cohort_bought, cohort_not_bought)
    SELECT s.day, new.account, new.alias, ordered_lines, ordered, sales_lines, bought, returned,
           stock_delta, ordered_kopecks, bought_kopecks, returned_kopecks, payout_kopecks,
           cohort_units, cohort_bought, cohort_not_bought
    FROM sku_days s WHERE s.day IN (SELECT day FROM summary_days) AND s.account = new.account AND s.sku = new.sku
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks,
        cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
    INSERT INTO alias_stock (account, alias, quantity)
    SELECT old.account, old.alias, -quantity FROM sku_stock WHERE account = old.account AND sku = old.sku
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
    INSERT INTO alias_stock (account, alias, quantity)
    SELECT new.account, new.alias, quantity FROM sku_stock WHERE account = new.account AND sku = new.sku
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
    INSERT INTO alias_warehouse_stock (account, alias, warehouse, quantity)
    SELECT old.account, old.alias, warehouse, -quantity FROM stock_current
    WHERE account = old.account AND sku = old.sku
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
    INSERT INTO alias_warehouse_stock (account, alias, warehouse, quantity)
    SELECT new.account, new.alias, warehouse, quantity FROM stock_current
    WHERE account = new.account AND sku = new.sku
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
    INSERT INTO alias_warehouse_first_days (first_day, account, alias, warehouse, keys)
    SELECT first_day, old.account, old.alias, warehouse, -count(*) FROM stock_current
    WHERE account = old.account AND sku = old.sku AND first_day IS NOT NULL
    GROUP BY first_day, warehouse
    ON CONFLICT DO UPDATE SET keys = keys + excluded.keys;
    INSERT INTO alias_warehouse_first_days (first_day, account, alias, warehouse, keys)
    SELECT first_day, new.account, new.alias, warehouse, count(*) FROM stock_current
    WHERE account = new.account AND sku = new.sku AND first_day IS NOT NULL
    GROUP BY first_day, warehouse
    ON CONFLICT DO UPDATE SET keys = keys + excluded.keys;
    INSERT INTO alias_warehouse_days (day, account, alias, warehouse, ordered_lines, ordered, sales_lines,
                                      bought, returned, stock_delta, ordered_kopecks, bought_kopecks,
                                      returned_kopecks, payout_kopecks, cohort_units,
                                      cohort_bought, cohort_not_bought)
    SELECT f.day, old.account, old.alias, f.warehouse, -f.ordered_lines, -f.ordered, -f.sales_lines,
           -f.bought, -f.returned, -f.stock_delta, -f.ordered_kopecks, -f.bought_kopecks,
           -f.returned_kopecks, -f.payout_kopecks, -f.cohort_units, -f.cohort_bought,
           -f.cohort_not_bought
    FROM daily_figures f
    WHERE f.day IN (SELECT day FROM summary_days) AND f.account = old.account AND f.sku = old.sku
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks, cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
    INSERT INTO alias_warehouse_days (day, account, alias, warehouse, ordered_lines, ordered, sales_lines,
                                      bought, returned, stock_delta, ordered_kopecks, bought_kopecks,
                                      returned_kopecks, payout_kopecks, cohort_units,
                                      cohort_bought, cohort_not_bought)
    SELECT f.day, new.account, new.alias, f.warehouse, f.ordered_lines, f.ordered, f.sales_lines,
           f.bought, f.returned, f.stock_delta, f.ordered_kopecks, f.bought_kopecks,
           f.returned_kopecks, f.payout_kopecks, f.cohort_units, f.cohort_bought,
           f.cohort_not_bought
    FROM daily_figures f
    WHERE f.day IN (SELECT day FROM summary_days) AND f.account = new.account AND f.sku = new.sku
    ON CONFLICT DO UPDATE SET ordered_lines = ordered_lines + excluded.ordered_lines,
        ordered = ordered + excluded.ordered, sales_lines = sales_lines + excluded.sales_lines,
        bought = bought + excluded.bought, returned = returned + excluded.returned,
        stock_delta = stock_delta + excluded.stock_delta, ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks,
        returned_kopecks = returned_kopecks + excluded.returned_kopecks,
        payout_kopecks = payout_kopecks + excluded.payout_kopecks, cohort_units = cohort_units + excluded.cohort_units,
        cohort_bought = cohort_bought + excluded.cohort_bought,
        cohort_not_bought = cohort_not_bought + excluded.cohort_not_bought;
END;

-- An alias row names SKUs of its marketplace by SKU or by article: those are named again.
DROP TRIGGER IF EXISTS sku_names_alias_added;
CREATE TRIGGER sku_names_alias_added AFTER INSERT ON sku_aliases
BEGIN
    UPDATE sku_names SET alias = new.alias, alias_position = new.position
    -- (each side of the OR with its own account list, so that each reaches its index)
    WHERE account IN (SELECT account FROM accounts WHERE marketplace = new.marketplace)
          AND sku = CAST(new.key AS INTEGER) AND CAST(sku AS TEXT) = new.key
       OR account IN (SELECT account FROM accounts WHERE marketplace = new.marketplace) AND article = new.key
          AND NOT EXISTS (SELECT 1 FROM sku_aliases s
                          WHERE s.marketplace = new.marketplace AND s.key = CAST(sku_names.sku AS TEXT));
END;

DROP TRIGGER IF EXISTS sku_names_alias_removed;
CREATE TRIGGER sku_names_alias_removed AFTER DELETE ON sku_aliases
BEGIN
    UPDATE sku_names SET
        alias = coalesce((SELECT s.alias FROM sku_aliases s WHERE s.marketplace = old.marketplace
                                                              AND s.key = CAST(sku_names.sku AS TEXT)),
                         (SELECT s.alias FROM sku_aliases s WHERE s.marketplace = old.marketplace
                                                              AND s.key = sku_names.article),
                         article, CAST(sku AS TEXT)),
        alias_position = coalesce((SELECT s.position FROM sku_aliases s WHERE s.marketplace = old.marketplace
                                                                        AND s.key = CAST(sku_names.sku AS TEXT)),
                                  (SELECT s.position FROM sku_aliases s WHERE s.marketplace = old.marketplace
                                                                        AND s.key = sku_names.article),
                                  1000000000)
    -- (each side of the OR with its own account list, so that each reaches its index: with one list
    -- for both SQLite read the whole article index for the SKU's side, per alias row)
    WHERE account IN (SELECT account FROM accounts WHERE marketplace = old.marketplace)
          AND sku = CAST(old.key AS INTEGER) AND CAST(sku AS TEXT) = old.key
       OR account IN (SELECT account FROM accounts WHERE marketplace = old.marketplace) AND article = old.key;
END;

DROP TRIGGER IF EXISTS sku_names_alias_changed;
CREATE TRIGGER sku_names_alias_changed AFTER UPDATE ON sku_aliases
BEGIN
    UPDATE sku_names SET
        alias = coalesce((SELECT s.alias FROM sku_aliases s WHERE s.marketplace = a.marketplace
                                                              AND s.key = CAST(sku_names.sku AS TEXT)),
                         (SELECT s.alias FROM sku_aliases s WHERE s.marketplace = a.marketplace
                                                              AND s.key = sku_names.article),
                         article, CAST(sku AS TEXT)),
        alias_position = coalesce((SELECT s.position FROM sku_aliases s WHERE s.marketplace = a.marketplace
                                                                        AND s.key = CAST(sku_names.sku AS TEXT)),
                                  (SELECT s.position FROM sku_aliases s WHERE s.marketplace = a.marketplace
                                                                        AND s.key = sku_names.article),
                                  1000000000)
    FROM accounts a
    WHERE a.account = sku_names.account AND a.marketplace IN (old.marketplace, new.marketplace)
      AND (CAST(sku AS TEXT) IN (old.key, new.key) OR article IN (old.key, new.key));
END;

-- Units and money ordered (lines not cancelled) and bought out per day x account x minute of the
-- local day (HH:MM, as the marketplaces write the time): "today against yesterday up to this
-- minute" adds up a few thousand of these instead of two days of order lines (~70,000 at the
-- reference seller). A buyout whose time is unknown (an Ozon posting already delivered when first
-- seen) counts at '24:00': in its whole day, never "up to" a minute.
CREATE TABLE IF NOT EXISTS minute_totals (
    day             TEXT NOT NULL,
    account         TEXT NOT NULL,
    minute          TEXT NOT NULL,
    ordered         INTEGER NOT NULL DEFAULT 0,
    ordered_kopecks INTEGER NOT NULL DEFAULT 0,
    bought          INTEGER NOT NULL DEFAULT 0,
    bought_kopecks  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, account, minute)
) WITHOUT ROWID;

-- Every order line not cancelled (units and money ordered) and every buyout (bought), at its
-- minute of the local day: what minute_totals and recent_minutes add up.
DROP VIEW IF EXISTS minute_lines;
CREATE VIEW minute_lines AS
SELECT day, account, sku, coalesce(warehouse, '') AS warehouse, substr(ordered_at, 12, 5) AS minute,
       quantity AS ordered, coalesce(price_kopecks, 0) * quantity AS ordered_kopecks,
       0 AS bought, 0 AS bought_kopecks
FROM orders WHERE is_cancelled = 0
UNION ALL
SELECT day, account, sku, coalesce(warehouse, ''), coalesce(substr(sold_at, 12, 5), '24:00'), 0, 0,
       quantity, coalesce(amount_kopecks, 0)
FROM sales WHERE kind = 'sale' AND day IS NOT NULL;

-- What minute_totals must hold (its triggers' contract).
DROP VIEW IF EXISTS minute_totals_recomputed;
CREATE VIEW minute_totals_recomputed AS
SELECT day, account, minute, sum(ordered) AS ordered, sum(ordered_kopecks) AS ordered_kopecks,
       sum(bought) AS bought, sum(bought_kopecks) AS bought_kopecks
FROM minute_lines
GROUP BY day, account, minute;

DROP TRIGGER IF EXISTS minute_totals_order_added;
CREATE TRIGGER minute_totals_order_added AFTER INSERT ON orders
WHEN new.is_cancelled = 0
BEGIN
    INSERT INTO minute_totals (day, account, minute, ordered, ordered_kopecks)
    VALUES (new.day, new.account, substr(new.ordered_at, 12, 5), new.quantity,
            coalesce(new.price_kopecks, 0) * new.quantity)
    ON CONFLICT DO UPDATE SET ordered = ordered + excluded.ordered,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks;
END;

-- (a pass's upsert names every column; only a change of what counts moves anything)
DROP TRIGGER IF EXISTS minute_totals_order_changed;
CREATE TRIGGER minute_totals_order_changed
AFTER UPDATE OF day, account, ordered_at, is_cancelled, quantity, price_kopecks ON orders
WHEN (old.is_cancelled = 0 OR new.is_cancelled = 0)
 AND (old.day IS NOT new.day OR old.account IS NOT new.account OR old.ordered_at IS NOT new.ordered_at
      OR old.is_cancelled IS NOT new.is_cancelled OR old.quantity IS NOT new.quantity
      OR old.price_kopecks IS NOT new.price_kopecks)
BEGIN
    UPDATE minute_totals SET ordered = ordered - old.quantity,
        ordered_kopecks = ordered_kopecks - coalesce(old.price_kopecks, 0) * old.quantity
    WHERE old.is_cancelled = 0
      AND day = old.day AND account = old.account AND minute = substr(old.ordered_at, 12, 5);
    INSERT INTO minute_totals (day, account, minute, ordered, ordered_kopecks)
    SELECT new.day, new.account, substr(new.ordered_at, 12, 5), new.quantity,
           coalesce(new.price_kopecks, 0) * new.quantity
    WHERE new.is_cancelled = 0
    ON CONFLICT DO UPDATE SET ordered = ordered + excluded.ordered,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks;
END;

DROP TRIGGER IF EXISTS minute_totals_order_removed;
CREATE TRIGGER minute_totals_order_removed AFTER DELETE ON orders
WHEN old.is_cancelled = 0
BEGIN
    UPDATE minute_totals SET ordered = ordered - old.quantity,
        ordered_kopecks = ordered_kopecks - coalesce(old.price_kopecks, 0) * old.quantity
    WHERE day = old.day AND account = old.account AND minute = substr(old.ordered_at, 12, 5);
END;

DROP TRIGGER IF EXISTS minute_totals_sale_added;
CREATE TRIGGER minute_totals_sale_added AFTER INSERT ON sales
WHEN new.kind = 'sale' AND new.day IS NOT NULL
BEGIN
    INSERT INTO minute_totals (day, account, minute, bought, bought_kopecks)
    VALUES (new.day, new.account, coalesce(substr(new.sold_at, 12, 5), '24:00'), new.quantity,
            coalesce(new.amount_kopecks, 0))
    ON CONFLICT DO UPDATE SET bought = bought + excluded.bought,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks;
END;

DROP TRIGGER IF EXISTS minute_totals_sale_changed;
CREATE TRIGGER minute_totals_sale_changed
AFTER UPDATE OF day, account, sold_at, kind, quantity, amount_kopecks ON sales
WHEN (old.kind = 'sale' AND old.day IS NOT NULL OR new.kind = 'sale' AND new.day IS NOT NULL)
 AND (old.day IS NOT new.day OR old.account IS NOT new.account OR old.sold_at IS NOT new.sold_at
      OR old.kind IS NOT new.kind OR old.quantity IS NOT new.quantity
      OR old.amount_kopecks IS NOT new.amount_kopecks)
BEGIN
    UPDATE minute_totals SET bought = bought - old.quantity,
        bought_kopecks = bought_kopecks - coalesce(old.amount_kopecks, 0)
    WHERE old.kind = 'sale' AND day = old.day AND account = old.account
      AND minute = coalesce(substr(old.sold_at, 12, 5), '24:00');
    INSERT INTO minute_totals (day, account, minute, bought, bought_kopecks)
    SELECT new.day, new.account, coalesce(substr(new.sold_at, 12, 5), '24:00'), new.quantity,
           coalesce(new.amount_kopecks, 0)
    WHERE new.kind = 'sale' AND new.day IS NOT NULL
    ON CONFLICT DO UPDATE SET bought = bought + excluded.bought,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks;
END;

DROP TRIGGER IF EXISTS minute_totals_sale_removed;
CREATE TRIGGER minute_totals_sale_removed AFTER DELETE ON sales
WHEN old.kind = 'sale' AND old.day IS NOT NULL
BEGIN
    UPDATE minute_totals SET bought = bought - old.quantity,
        bought_kopecks = bought_kopecks - coalesce(old.amount_kopecks, 0)
    WHERE day = old.day AND account = old.account AND minute = coalesce(substr(old.sold_at, 12, 5), '24:00');
END;

-- minute_totals per SKU and warehouse, for the last few days only: "today against yesterday up
-- to this minute" for a group, an article or a warehouse adds up a few hundred of these rather
-- than two days of order lines and buyouts (~70,000 at the reference seller, each looked up in
-- a 10 GB file: ~85 ms). Kept from recent_minutes_floor's day on, which the collector moves to
-- the day before yesterday at the start of every pass (Storage.keep_minutes_from): about a row
-- per line of three days, never a year's. A day before the floor is read from minute_lines.
CREATE TABLE IF NOT EXISTS recent_minutes (
    day             TEXT NOT NULL,
    account         TEXT NOT NULL,
    sku             INTEGER NOT NULL,
    warehouse       TEXT NOT NULL,             -- '' for a line that names none
    minute          TEXT NOT NULL,
    ordered         INTEGER NOT NULL DEFAULT 0,
    ordered_kopecks INTEGER NOT NULL DEFAULT 0,
    bought          INTEGER NOT NULL DEFAULT 0,
    bought_kopecks  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, account, sku, warehouse, minute)
) WITHOUT ROWID;
-- (covering: a warehouse's minutes read from it alone, never looked up row by row in the table)
CREATE INDEX IF NOT EXISTS recent_minutes_warehouse
    ON recent_minutes (day, warehouse, minute, ordered, ordered_kopecks, bought, bought_kopecks);

-- The first day recent_minutes keeps: one row, or none while it keeps nothing.
CREATE TABLE IF NOT EXISTS recent_minutes_floor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    day TEXT NOT NULL
);

-- What recent_minutes must hold (its triggers' and Storage.keep_minutes_from's contract): the
-- lines of minute_lines from the floor on, each of its halves read from the floor by its day
-- index (SQLite 3.40 does not carry a bound with a subquery into a view's halves).
DROP VIEW IF EXISTS recent_minutes_recomputed;
CREATE VIEW recent_minutes_recomputed AS
SELECT day, account, sku, warehouse, minute, sum(ordered) AS ordered, sum(ordered_kopecks) AS ordered_kopecks,
       sum(bought) AS bought, sum(bought_kopecks) AS bought_kopecks
FROM (SELECT day, account, sku, coalesce(warehouse, '') AS warehouse, substr(ordered_at, 12, 5) AS minute,
             quantity AS ordered, coalesce(price_kopecks, 0) * quantity AS ordered_kopecks,
             0 AS bought, 0 AS bought_kopecks
      FROM orders WHERE is_cancelled = 0 AND day >= (SELECT day FROM recent_minutes_floor)
      UNION ALL
      SELECT day, account, sku, coalesce(warehouse, ''), coalesce(substr(sold_at, 12, 5), '24:00'), 0, 0,
             quantity, coalesce(amount_kopecks, 0)
      FROM sales WHERE kind = 'sale' AND day >= (SELECT day FROM recent_minutes_floor))
GROUP BY day, account, sku, warehouse, minute;

-- (a view of a first version, which no query reads)
DROP VIEW IF EXISTS day_minutes;

DROP TRIGGER IF EXISTS recent_minutes_order_added;
CREATE TRIGGER recent_minutes_order_added AFTER INSERT ON orders
WHEN new.is_cancelled = 0 AND new.day >= (SELECT day FROM recent_minutes_floor)
BEGIN
    INSERT INTO recent_minutes (day, account, sku, warehouse, minute, ordered, ordered_kopecks)
    VALUES (new.day, new.account, new.sku, coalesce(new.warehouse, ''), substr(new.ordered_at, 12, 5),
            new.quantity, coalesce(new.price_kopecks, 0) * new.quantity)
    ON CONFLICT DO UPDATE SET ordered = ordered + excluded.ordered,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks;
END;

-- (a line's old minute is only there to take from when its day was kept)
DROP TRIGGER IF EXISTS recent_minutes_order_changed;
CREATE TRIGGER recent_minutes_order_changed
AFTER UPDATE OF day, account, sku, warehouse, ordered_at, is_cancelled, quantity, price_kopecks ON orders
WHEN (old.is_cancelled = 0 AND old.day >= (SELECT day FROM recent_minutes_floor)
      OR new.is_cancelled = 0 AND new.day >= (SELECT day FROM recent_minutes_floor))
 AND (old.day IS NOT new.day OR old.account IS NOT new.account OR old.sku IS NOT new.sku
      OR old.warehouse IS NOT new.warehouse OR old.ordered_at IS NOT new.ordered_at
      OR old.is_cancelled IS NOT new.is_cancelled OR old.quantity IS NOT new.quantity
      OR old.price_kopecks IS NOT new.price_kopecks)
BEGIN
    UPDATE recent_minutes SET ordered = ordered - old.quantity,
        ordered_kopecks = ordered_kopecks - coalesce(old.price_kopecks, 0) * old.quantity
    WHERE old.is_cancelled = 0 AND day = old.day AND account = old.account AND sku = old.sku
      AND warehouse = coalesce(old.warehouse, '') AND minute = substr(old.ordered_at, 12, 5);
    INSERT INTO recent_minutes (day, account, sku, warehouse, minute, ordered, ordered_kopecks)
    SELECT new.day, new.account, new.sku, coalesce(new.warehouse, ''), substr(new.ordered_at, 12, 5),
           new.quantity, coalesce(new.price_kopecks, 0) * new.quantity
    WHERE new.is_cancelled = 0 AND new.day >= (SELECT day FROM recent_minutes_floor)
    ON CONFLICT DO UPDATE SET ordered = ordered + excluded.ordered,
        ordered_kopecks = ordered_kopecks + excluded.ordered_kopecks;
END;

DROP TRIGGER IF EXISTS recent_minutes_order_removed;
CREATE TRIGGER recent_minutes_order_removed AFTER DELETE ON orders
WHEN old.is_cancelled = 0 AND old.day >= (SELECT day FROM recent_minutes_floor)
BEGIN
    UPDATE recent_minutes SET ordered = ordered - old.quantity,
        ordered_kopecks = ordered_kopecks - coalesce(old.price_kopecks, 0) * old.quantity
    WHERE day = old.day AND account = old.account AND sku = old.sku
      AND warehouse = coalesce(old.warehouse, '') AND minute = substr(old.ordered_at, 12, 5);
END;

DROP TRIGGER IF EXISTS recent_minutes_sale_added;
CREATE TRIGGER recent_minutes_sale_added AFTER INSERT ON sales
WHEN new.kind = 'sale' AND new.day >= (SELECT day FROM recent_minutes_floor)
BEGIN
    INSERT INTO recent_minutes (day, account, sku, warehouse, minute, bought, bought_kopecks)
    VALUES (new.day, new.account, new.sku, coalesce(new.warehouse, ''),
            coalesce(substr(new.sold_at, 12, 5), '24:00'), new.quantity, coalesce(new.amount_kopecks, 0))
    ON CONFLICT DO UPDATE SET bought = bought + excluded.bought,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks;
END;

DROP TRIGGER IF EXISTS recent_minutes_sale_changed;
CREATE TRIGGER recent_minutes_sale_changed
AFTER UPDATE OF day, account, sku, warehouse, sold_at, kind, quantity, amount_kopecks ON sales
WHEN (old.kind = 'sale' AND old.day >= (SELECT day FROM recent_minutes_floor)
      OR new.kind = 'sale' AND new.day >= (SELECT day FROM recent_minutes_floor))
 AND (old.day IS NOT new.day OR old.account IS NOT new.account OR old.sku IS NOT new.sku
      OR old.warehouse IS NOT new.warehouse OR old.sold_at IS NOT new.sold_at
      OR old.kind IS NOT new.kind OR old.quantity IS NOT new.quantity
      OR old.amount_kopecks IS NOT new.amount_kopecks)
BEGIN
    UPDATE recent_minutes SET bought = bought - old.quantity,
        bought_kopecks = bought_kopecks - coalesce(old.amount_kopecks, 0)
    WHERE old.kind = 'sale' AND day = old.day AND account = old.account AND sku = old.sku
      AND warehouse = coalesce(old.warehouse, '') AND minute = coalesce(substr(old.sold_at, 12, 5), '24:00');
    INSERT INTO recent_minutes (day, account, sku, warehouse, minute, bought, bought_kopecks)
    SELECT new.day, new.account, new.sku, coalesce(new.warehouse, ''),
           coalesce(substr(new.sold_at, 12, 5), '24:00'), new.quantity, coalesce(new.amount_kopecks, 0)
    WHERE new.kind = 'sale' AND new.day >= (SELECT day FROM recent_minutes_floor)
    ON CONFLICT DO UPDATE SET bought = bought + excluded.bought,
        bought_kopecks = bought_kopecks + excluded.bought_kopecks;
END;

DROP TRIGGER IF EXISTS recent_minutes_sale_removed;
CREATE TRIGGER recent_minutes_sale_removed AFTER DELETE ON sales
WHEN old.kind = 'sale' AND old.day >= (SELECT day FROM recent_minutes_floor)
BEGIN
    UPDATE recent_minutes SET bought = bought - old.quantity,
        bought_kopecks = bought_kopecks - coalesce(old.amount_kopecks, 0)
    WHERE day = old.day AND account = old.account AND sku = old.sku
      AND warehouse = coalesce(old.warehouse, '') AND minute = coalesce(substr(old.sold_at, 12, 5), '24:00');
END;

-- Every warehouse orders have named, with the last day one did: the dashboards' warehouse
-- filter lists those of the last 90 days, which otherwise means reading 90 days of orders (1.3 s
-- at a big seller's size on every page view).
CREATE TABLE IF NOT EXISTS order_warehouses (
    warehouse TEXT PRIMARY KEY,
    last_day  TEXT NOT NULL
) WITHOUT ROWID;

DROP TRIGGER IF EXISTS order_warehouses_added;
CREATE TRIGGER order_warehouses_added AFTER INSERT ON orders
WHEN new.warehouse IS NOT NULL
BEGIN
    INSERT INTO order_warehouses (warehouse, last_day) VALUES (new.warehouse, new.day)
    ON CONFLICT DO UPDATE SET last_day = excluded.last_day WHERE excluded.last_day > last_day;
END;

DROP TRIGGER IF EXISTS order_warehouses_changed;
CREATE TRIGGER order_warehouses_changed AFTER UPDATE OF warehouse, day ON orders
WHEN new.warehouse IS NOT NULL AND (old.warehouse IS NOT new.warehouse OR old.day IS NOT new.day)
BEGIN
    INSERT INTO order_warehouses (warehouse, last_day) VALUES (new.warehouse, new.day)
    ON CONFLICT DO UPDATE SET last_day = excluded.last_day WHERE excluded.last_day > last_day;
END;

-- ---------------------------------------------------------------------------------------------
-- Views. Canned queries in metadata.yml read these.

-- Every SKU any table knows (sku_names, kept by triggers: the products, the SKUs with orders or
-- sales on a day, the SKUs with stock), with its best-known article and name. Read in its key's
-- order: a page of it costs a few rows at any size of history.
DROP VIEW IF EXISTS sku_catalog;
CREATE VIEW sku_catalog AS
SELECT n.account, a.marketplace, n.sku, n.article,
       (SELECT p.name FROM products p
         WHERE p.account = n.account AND p.sku = n.sku AND p.name IS NOT NULL
         ORDER BY p.updated_at DESC LIMIT 1) AS name
FROM sku_names n
JOIN accounts a ON a.account = n.account;

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
SELECT account, sku, day, nullif(warehouse, '') AS warehouse, ordered, ordered_kopecks
FROM daily_figures
WHERE ordered_lines > 0;

-- Units bought out (kind sale) and returned (kind return) per day and warehouse (the viewer
-- filters by warehouse). Ozon returns count when the customer returned a bought item
-- (ClientReturn) or the type is unknown; refusals at handover and cancellations were never bought.
-- Counted by daily_figures' triggers.
DROP VIEW IF EXISTS daily_sales;
CREATE VIEW daily_sales AS
SELECT account, sku, day, nullif(warehouse, '') AS warehouse, bought, returned, bought_kopecks,
       returned_kopecks
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
       NULL AS time, NULL AS kopecks
FROM stock_current
UNION ALL
SELECT 'ordered', account, sku, NULL, warehouse, day, ordered, NULL, ordered_kopecks FROM daily_ordered
UNION ALL
SELECT 'bought', account, sku, NULL, warehouse, day, bought, NULL, bought_kopecks FROM daily_sales
UNION ALL
SELECT 'returned', account, sku, NULL, warehouse, day, returned, NULL, returned_kopecks FROM daily_sales
UNION ALL
SELECT 'ordered_at', account, sku, size, warehouse, day, quantity, substr(ordered_at, 12, 5),
       coalesce(price_kopecks, 0) * quantity
FROM orders WHERE is_cancelled = 0
UNION ALL
SELECT 'bought_at', account, sku, size, warehouse, day, quantity, substr(sold_at, 12, 5),
       coalesce(amount_kopecks, 0)
FROM sales WHERE kind = 'sale' AND day IS NOT NULL;

-- sku_figures with each row's marketplace, article and alias, from sku_names (kept by triggers
-- with sku_groups' rule: the SKU's alias, else its article's alias, else the article, else the
-- SKU); a SKU not named yet stands for itself.
-- `sku_text` is the SKU as text, for the canned queries' filter
-- `:alias IN ('', alias, article, sku_text)` (an alias, an article or a SKU).
DROP VIEW IF EXISTS alias_figures;
-- (Looked up row by row rather than joined: SQLite reads a compound view joined to another table
-- only after writing it whole, all of the history, before its first row; this way the rows
-- stream, and the first page of the view's page, or a `measure` and `day` asked for, read only
-- what they show.)
CREATE VIEW alias_figures AS
SELECT f.measure, f.account, (SELECT a.marketplace FROM accounts a WHERE a.account = f.account) AS marketplace,
       f.sku, CAST(f.sku AS TEXT) AS sku_text,
       (SELECT nm.article FROM sku_names nm WHERE nm.account = f.account AND nm.sku = f.sku) AS article,
       f.size, f.warehouse, f.day, f.units, f.time, f.kopecks,
       coalesce((SELECT nm.alias FROM sku_names nm WHERE nm.account = f.account AND nm.sku = f.sku),
                CAST(f.sku AS TEXT)) AS alias,
       coalesce((SELECT nm.alias_position FROM sku_names nm WHERE nm.account = f.account AND nm.sku = f.sku),
                1000000000) AS alias_position
FROM sku_figures f
WHERE f.account IN (SELECT account FROM accounts);

-- ---------------------------------------------------------------------------------------------
-- Full exports. A canned query stops at max_returned_rows. These two views give the whole history
-- in the shape a spreadsheet pivots, alias and article resolved as in alias_figures; a year of
-- them is streamed by /-/export/daily.csv and /-/export/stock.csv (collector/export.py: the same
-- rows, read in key order from daily_figures and stock_current a page at a time), which also
-- answer the views' own `?_stream=on` (Datasette's would run the view again for every page).

-- Units ordered, bought out and returned per day x account x SKU x warehouse: a row of
-- daily_figures that counted an order line or a sales row, named as alias_figures names it (what
-- sku_figures' daily_ordered and daily_sales add up to, a row each), in daily_figures' key order,
-- so that a page of the view reads its own rows only. collector/export.py streams the same rows.
DROP VIEW IF EXISTS export_daily;
CREATE VIEW export_daily AS
SELECT f.day, a.marketplace, f.account, coalesce(nm.alias, CAST(f.sku AS TEXT)) AS alias, nm.article, f.sku,
       nullif(f.warehouse, '') AS warehouse,
       iif(f.ordered_lines > 0, f.ordered, 0) AS ordered,
       iif(f.sales_lines > 0, f.bought, 0) AS bought,
       iif(f.sales_lines > 0, f.returned, 0) AS returned,
       iif(f.ordered_lines > 0, f.ordered_kopecks, 0) / 100.0 AS ordered_rub,
       iif(f.sales_lines > 0, f.bought_kopecks, 0) / 100.0 AS bought_rub,
       iif(f.sales_lines > 0, f.returned_kopecks, 0) / 100.0 AS returned_rub
FROM daily_figures f
CROSS JOIN accounts a ON a.account = f.account  -- (daily_figures stays the outer loop: its key's order)
LEFT JOIN sku_names nm ON nm.account = f.account AND nm.sku = f.sku
WHERE f.ordered_lines > 0 OR f.sales_lines > 0
ORDER BY f.day, f.account, f.sku, f.warehouse;

-- The current stock per key (account x SKU x size x warehouse), in stock_current's key order.
DROP VIEW IF EXISTS export_stock;
CREATE VIEW export_stock AS
SELECT a.marketplace, k.account, coalesce(nm.alias, CAST(k.sku AS TEXT)) AS alias, nm.article, k.sku, k.size,
       k.warehouse, k.quantity AS stock
FROM stock_current k
CROSS JOIN accounts a ON a.account = k.account  -- (stock_current stays the outer loop: its key's order)
LEFT JOIN sku_names nm ON nm.account = k.account AND nm.sku = k.sku
ORDER BY k.account, k.sku, k.size, k.warehouse;

-- ---------------------------------------------------------------------------------------------
-- today_now and buyout_now are emptied by the first write of a pass to what `today` and `buyout`
-- read for today (their groups' days, of which marketplace_alias_days is made, and stock, the
-- aliases' order, the accounts' marketplaces); the rest find them empty.

DROP TRIGGER IF EXISTS today_now_alias_days_added;
CREATE TRIGGER today_now_alias_days_added AFTER INSERT ON alias_days WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_alias_days_changed;
CREATE TRIGGER today_now_alias_days_changed AFTER UPDATE ON alias_days WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_alias_days_removed;
CREATE TRIGGER today_now_alias_days_removed AFTER DELETE ON alias_days WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_alias_stock_added;
CREATE TRIGGER today_now_alias_stock_added AFTER INSERT ON alias_stock WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_alias_stock_changed;
CREATE TRIGGER today_now_alias_stock_changed AFTER UPDATE ON alias_stock WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_alias_stock_removed;
CREATE TRIGGER today_now_alias_stock_removed AFTER DELETE ON alias_stock WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_sku_aliases_added;
CREATE TRIGGER today_now_sku_aliases_added AFTER INSERT ON sku_aliases WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_sku_aliases_changed;
CREATE TRIGGER today_now_sku_aliases_changed AFTER UPDATE ON sku_aliases WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_sku_aliases_removed;
CREATE TRIGGER today_now_sku_aliases_removed AFTER DELETE ON sku_aliases WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_accounts_added;
CREATE TRIGGER today_now_accounts_added AFTER INSERT ON accounts WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_accounts_changed;
CREATE TRIGGER today_now_accounts_changed AFTER UPDATE ON accounts WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;
DROP TRIGGER IF EXISTS today_now_accounts_removed;
CREATE TRIGGER today_now_accounts_removed AFTER DELETE ON accounts WHEN EXISTS (SELECT 1 FROM today_now) OR EXISTS (SELECT 1 FROM buyout_now)
BEGIN DELETE FROM today_now; DELETE FROM buyout_now; END;

-- ---------------------------------------------------------------------------------------------
-- The bases of the pages kept ready (restock_now_basis, warehouse_month_basis) stop vouching for
-- them at the first write to what their queries read (the groups' figures, stock and first days
-- per warehouse, the SKUs' groups and order, the accounts' marketplaces); the rest of the pass
-- finds them cleared. One trigger per write clears both: each row written tests one condition.
DROP TRIGGER IF EXISTS kept_basis_alias_warehouse_days_added;
CREATE TRIGGER kept_basis_alias_warehouse_days_added AFTER INSERT ON alias_warehouse_days
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_alias_warehouse_days_changed;
CREATE TRIGGER kept_basis_alias_warehouse_days_changed AFTER UPDATE ON alias_warehouse_days
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_alias_warehouse_days_removed;
CREATE TRIGGER kept_basis_alias_warehouse_days_removed AFTER DELETE ON alias_warehouse_days
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_alias_warehouse_stock_added;
CREATE TRIGGER kept_basis_alias_warehouse_stock_added AFTER INSERT ON alias_warehouse_stock
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_alias_warehouse_stock_changed;
CREATE TRIGGER kept_basis_alias_warehouse_stock_changed AFTER UPDATE ON alias_warehouse_stock
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_alias_warehouse_stock_removed;
CREATE TRIGGER kept_basis_alias_warehouse_stock_removed AFTER DELETE ON alias_warehouse_stock
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_alias_warehouse_first_days_added;
CREATE TRIGGER kept_basis_alias_warehouse_first_days_added AFTER INSERT ON alias_warehouse_first_days
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_alias_warehouse_first_days_changed;
CREATE TRIGGER kept_basis_alias_warehouse_first_days_changed AFTER UPDATE ON alias_warehouse_first_days
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_alias_warehouse_first_days_removed;
CREATE TRIGGER kept_basis_alias_warehouse_first_days_removed AFTER DELETE ON alias_warehouse_first_days
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_sku_names_added;
CREATE TRIGGER kept_basis_sku_names_added AFTER INSERT ON sku_names
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_sku_names_changed;
CREATE TRIGGER kept_basis_sku_names_changed AFTER UPDATE ON sku_names
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_sku_names_removed;
CREATE TRIGGER kept_basis_sku_names_removed AFTER DELETE ON sku_names
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_sku_aliases_added;
CREATE TRIGGER kept_basis_sku_aliases_added AFTER INSERT ON sku_aliases
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_sku_aliases_changed;
CREATE TRIGGER kept_basis_sku_aliases_changed AFTER UPDATE ON sku_aliases
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_sku_aliases_removed;
CREATE TRIGGER kept_basis_sku_aliases_removed AFTER DELETE ON sku_aliases
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_accounts_added;
CREATE TRIGGER kept_basis_accounts_added AFTER INSERT ON accounts
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_accounts_changed;
CREATE TRIGGER kept_basis_accounts_changed AFTER UPDATE ON accounts
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;
DROP TRIGGER IF EXISTS kept_basis_accounts_removed;
CREATE TRIGGER kept_basis_accounts_removed AFTER DELETE ON accounts
WHEN EXISTS (SELECT 1 FROM restock_now_basis WHERE in_step) OR EXISTS (SELECT 1 FROM warehouse_month_basis WHERE in_step)
BEGIN
  UPDATE restock_now_basis SET in_step = 0 WHERE in_step;
  UPDATE warehouse_month_basis SET in_step = 0 WHERE in_step;
END;

-- ---------------------------------------------------------------------------------------------
-- stock_days_basis stops vouching at a change of stock on a day it vouches for
-- (daily_figures' stock_delta, which only the stock rows move: alias_warehouse_days' passes
-- through other values while an order line's figures move), when a SKU changes group and when
-- an account changes marketplace or leaves;
-- changes of today (the day after `through`) are what the next pass adds when the day is over.
DROP TRIGGER IF EXISTS stock_days_basis_figures_added;
CREATE TRIGGER stock_days_basis_figures_added AFTER INSERT ON daily_figures
WHEN new.stock_delta <> 0
 AND new.day <= (SELECT through FROM stock_days_basis WHERE in_step)
BEGIN
  UPDATE stock_days_basis SET in_step = 0;
END;
DROP TRIGGER IF EXISTS stock_days_basis_figures_changed;
CREATE TRIGGER stock_days_basis_figures_changed
AFTER UPDATE OF day, account, sku, warehouse, stock_delta ON daily_figures
WHEN (old.stock_delta <> 0 OR new.stock_delta <> 0)
 AND (old.day, old.account, old.sku, old.warehouse, old.stock_delta)
     IS NOT (new.day, new.account, new.sku, new.warehouse, new.stock_delta)
 AND min(old.day, new.day) <= (SELECT through FROM stock_days_basis WHERE in_step)
BEGIN
  UPDATE stock_days_basis SET in_step = 0;
END;
DROP TRIGGER IF EXISTS stock_days_basis_figures_removed;
CREATE TRIGGER stock_days_basis_figures_removed AFTER DELETE ON daily_figures
WHEN old.stock_delta <> 0
 AND old.day <= (SELECT through FROM stock_days_basis WHERE in_step)
BEGIN
  UPDATE stock_days_basis SET in_step = 0;
END;
DROP TRIGGER IF EXISTS stock_days_basis_sku_names_changed;
CREATE TRIGGER stock_days_basis_sku_names_changed AFTER UPDATE OF account, sku, alias ON sku_names
WHEN (old.account, old.sku, old.alias) IS NOT (new.account, new.sku, new.alias)
 AND EXISTS (SELECT 1 FROM stock_days_basis WHERE in_step)
BEGIN
  UPDATE stock_days_basis SET in_step = 0;
END;
DROP TRIGGER IF EXISTS stock_days_basis_sku_names_removed;
CREATE TRIGGER stock_days_basis_sku_names_removed AFTER DELETE ON sku_names
WHEN EXISTS (SELECT 1 FROM stock_days_basis WHERE in_step)
BEGIN
  UPDATE stock_days_basis SET in_step = 0;
END;
DROP TRIGGER IF EXISTS stock_days_basis_accounts_changed;
CREATE TRIGGER stock_days_basis_accounts_changed AFTER UPDATE OF account, marketplace ON accounts
WHEN (old.account, old.marketplace) IS NOT (new.account, new.marketplace)
 AND EXISTS (SELECT 1 FROM stock_days_basis WHERE in_step)
BEGIN
  UPDATE stock_days_basis SET in_step = 0;
END;
DROP TRIGGER IF EXISTS stock_days_basis_accounts_removed;
CREATE TRIGGER stock_days_basis_accounts_removed AFTER DELETE ON accounts
WHEN EXISTS (SELECT 1 FROM stock_days_basis WHERE in_step)
BEGIN
  UPDATE stock_days_basis SET in_step = 0;
END;
