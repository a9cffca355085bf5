/* MP Dashboard: draws the charts of a datasette-dashboards page (templates/dashboard_view.html).
 *
 * Every chart names a canned query of metadata.yml (`canned`) and optional fixed `params`; the
 * page's filters go to it as query parameters of the same names. So the figures on the page come
 * from the very SQL behind the CSV and JSON exports, and the charts need no ad-hoc SQL.
 *
 * Libraries:
 *   mp-metric     one figure: display.field of the first row, display.suffix after it; under it
 *                 display.money (a field in roubles, as «1 234 567,89 ₽») and display.note
 *                 ({field, label, suffix}: a smaller figure, such as «в пути»);
 *   mp-table      display.columns [{field, label, group, link, labels, signed, omit_when, money,
 *                 date, below}] (`below`: a field in roubles written small under the column's
 *                 figure, so that units and money share a column) and display.total (a footer
 *                 row of sums, labelled so); display.expand
 *                 ({canned, param, field, params, columns}) gives each row a button that opens,
 *                 under it, the rows of another canned query of the same database for that
 *                 row (its `field` as the query's `param`, with the page's `params` filters);
 *   mp-vega-lite  a Vega-Lite spec (display) over the rows, themed for dark mode.
 *
 * The group filter's suggestions come from the canned query its `options_query` names, fetched
 * when the field is first used (suggestOnFirstUse).
 *
 * A chart's `switch` ({param, fields: {value: {shown: source}}, titles: {value: title}}) lets a
 * page filter swap what a chart draws: with ?in=rub the history charts draw roubles. A line
 * chart's `unfinished: <field>` says its newest value of that field is a day not over yet
 * (today): the line into it is dashed and its points hollow, so that a morning's few orders
 * do not read as a fall.
 *
 * Values are always inserted as text, never as HTML: warehouse and product names come from the
 * marketplaces' APIs. When every chart has drawn (or failed), <body data-mp-ready="1"> is set,
 * which the browser tests and screenshots wait for; the rows each chart got are kept in
 * mpDashboard.data for them too.
 */
'use strict'

const mpDashboard = (() => {
  const numbers = new Intl.NumberFormat('ru-RU', { maximumFractionDigits: 1 })
  const roubles = new Intl.NumberFormat('ru-RU', { minimumFractionDigits: 2, maximumFractionDigits: 2 })
  const dark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches
  const data = {}

  // Vega's defaults are dark text on white; with a dark page the axes need light ink.
  const DARK_CONFIG = {
    axis: { domainColor: '#8b949e', gridColor: '#30363d', tickColor: '#8b949e',
            labelColor: '#c9d1d9', titleColor: '#c9d1d9' },
    legend: { labelColor: '#c9d1d9', titleColor: '#c9d1d9' },
    title: { color: '#c9d1d9' },
  }

  function element (tag, attributes = {}, text = null) {
    const node = document.createElement(tag)
    for (const [name, value] of Object.entries(attributes)) {
      if (name === 'dataset') Object.assign(node.dataset, value)
      else node.setAttribute(name, value)
    }
    if (text !== null) node.textContent = text
    return node
  }

  // The page's filters plus the chart's fixed parameters (which win).
  function parameters (queryString, fixed) {
    const params = new URLSearchParams(queryString)
    for (const [key, value] of Object.entries(fixed || {})) params.set(key, value)
    return params
  }

  function withQuery (path, params, extra = {}) {
    const all = new URLSearchParams(params)
    for (const [key, value] of Object.entries(extra)) all.set(key, value)
    const query = all.toString()
    return query ? `${path}?${query}` : path
  }

  // A canned query's rows are asked for as Datasette sends them by default (arrays, the column
  // names once) and without its check of every value for infinity (`_json_infinity=1`: SQLite
  // gives NULL, never infinity, for a division by zero, and the queries compute nothing else
  // that could be one); they become objects here. Half the server's work of `_shape=objects`
  // for a table of 500 rows (docs/PERFORMANCE.md). benchmarks/viewer.py asks the same.
  const ROWS = { _json_infinity: '1' }

  async function fetchJson (url) {
    const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
    if (!response.ok) throw new Error(`HTTP ${response.status}`)
    const body = await response.json()
    if (body.ok === false) throw new Error(body.error || 'ошибка запроса')
    if (Array.isArray(body.rows) && Array.isArray(body.columns)) {
      body.rows = body.rows.map(row => Object.fromEntries(body.columns.map((name, i) => [name, row[i]])))
    }
    return body
  }

  // Charts that read the same query with the same parameters (the eight figures of `summary`,
  // the three `history` charts) share one request: each runs the whole query on the server,
  // and at a big seller's size that is the difference between a page in one second and five
  // (docs/PERFORMANCE.md). Each chart gets its own copy of the rows, which renderers may change.
  const shared = new Map()
  async function fetchShared (url) {
    if (!shared.has(url)) shared.set(url, fetchJson(url))
    return structuredClone(await shared.get(url))
  }

  function format (value, column = {}) {
    if (value === null || value === undefined || value === '') return '—'
    if (column.labels && Object.prototype.hasOwnProperty.call(column.labels, value)) return column.labels[value]
    if (typeof value === 'number') {
      const text = (column.money ? roubles : numbers).format(value)
      return column.signed && value > 0 ? `+${text}` : text
    }
    // 2026-12-18 -> 18.12.2026
    if (column.date && /^\d{4}-\d{2}-\d{2}$/.test(value)) return value.split('-').reverse().join('.')
    return String(value)
  }

  // 1234567.89 -> «1 234 567,89 ₽»
  function money (value) {
    return value === null || value === undefined ? '—' : `${roubles.format(value)}\u00a0₽`
  }

  // "/-/dashboards/warehouses?alias={alias}" with the row's values, under Datasette's base URL.
  function linkFor (template, row, base) {
    const path = template.replace(/\{(\w+)\}/g, (_, field) => encodeURIComponent(row[field] ?? ''))
    return base.replace(/\/$/, '') + path
  }

  function renderMetric (el, chart, body) {
    const display = chart.display
    const row = body.rows.length ? body.rows[0] : {}
    const value = row[display.field]
    const text = value === null || value === undefined ? '—' : numbers.format(value) + (display.suffix || '')
    const parts = [element('p', { class: 'mp-metric-value', dataset: { field: display.field } }, text)]
    if (display.money) {
      parts.push(element('p', { class: 'mp-metric-money', dataset: { field: display.money } }, money(row[display.money])))
    }
    if (display.note) {
      const note = row[display.note.field]
      const shown = display.note.money ? money(note) : `${format(note)}${display.note.suffix || ''}`
      parts.push(element('p', { class: 'mp-metric-note', dataset: { field: display.note.field } },
        `${display.note.label} ${shown}`))
    }
    el.replaceChildren(...parts)
  }

  // The canned query `canned` of the same database as `queryUrl` (…/mp/today -> …/mp/<canned>).
  function siblingQuery (queryUrl, canned) {
    return queryUrl.replace(/[^/]+$/, encodeURIComponent(canned))
  }

  // A row's detail (display.expand): a row under it holding a small table of the other query's
  // rows for it; the button closes it again. Rows once fetched are kept in `data` too.
  async function toggleDetail (button, tr, slug, expand, row, queryUrl, params, base) {
    const open = tr.nextElementSibling && tr.nextElementSibling.dataset.detailOf === tr.dataset.key
    if (open) {
      tr.nextElementSibling.remove()
      button.setAttribute('aria-expanded', 'false')
      return
    }
    button.setAttribute('aria-expanded', 'true')
    const detail = element('tr', { class: 'mp-detail', dataset: { detailOf: tr.dataset.key } })
    const td = element('td', { colspan: tr.cells.length })
    const holder = element('div', { class: 'mp-detail-body' })
    holder.appendChild(element('p', { class: 'mp-loading' }, '…'))
    td.appendChild(holder)
    detail.appendChild(td)
    tr.after(detail)
    const asked = new URLSearchParams()
    for (const name of expand.params || []) if (params.get(name)) asked.set(name, params.get(name))
    asked.set(expand.param, row[expand.field] ?? '')
    try {
      const body = await fetchShared(withQuery(`${siblingQuery(queryUrl, expand.canned)}.json`, asked, ROWS))
      data[`${slug}:${tr.dataset.key}`] = body.rows
      renderTable(holder, { display: { columns: expand.columns } }, body, base, new URLSearchParams())
      detail.dataset.ready = '1'
    } catch (error) {
      holder.replaceChildren(element('p', { class: 'mp-error' }, `Не удалось загрузить: ${error.message}`))
      detail.dataset.ready = 'error'
    }
  }

  // A column's sum, or null when it is not all numbers; kopecks are summed as whole numbers, so
  // that a column of roubles adds up exactly.
  function columnTotal (rows, field, inRoubles) {
    const values = rows.map(row => row[field])
    if (!values.every(value => typeof value === 'number' || value === null)) return null
    return inRoubles
      ? values.reduce((sum, value) => sum + Math.round((value || 0) * 100), 0) / 100
      : values.reduce((sum, value) => sum + (value || 0), 0)
  }

  // «46 150,04 ₽» in small type under a cell's figure (a column's `below`); nothing under a
  // figure of 0 or none, which has no roubles to show.
  function appendBelow (td, field, figure, value) {
    td.appendChild(element('span', { class: 'mp-below', dataset: { column: field } }, figure ? money(value) : ''))
  }

  function renderTable (el, chart, body, base, params, slug = '', queryUrl = '') {
    const display = chart.display || {}
    // `omit_when: alias`: a column that says nothing once the page is filtered by it.
    const columns = (display.columns || body.columns.map(field => ({ field, label: field })))
      .filter(column => !(column.omit_when && params.get(column.omit_when)))
    const table = element('table', { class: 'mp-table' })
    const thead = table.createTHead()

    // Two header rows when columns are grouped (Wildberries | Ozon): the group over its columns,
    // an ungrouped column spanning both rows.
    if (columns.some(column => column.group)) {
      const groups = thead.insertRow()
      for (let i = 0; i < columns.length;) {
        const group = columns[i].group
        let span = 1
        while (group && i + span < columns.length && columns[i + span].group === group) span++
        const th = element('th', { colspan: span }, group || columns[i].label)
        if (!group) th.rowSpan = 2
        th.className = group ? 'mp-group' : ''
        groups.appendChild(th)
        i += span
      }
    }
    const labels = thead.insertRow()
    for (const column of columns) {
      if (columns.some(c => c.group) && !column.group) continue
      labels.appendChild(element('th', { dataset: { column: column.field } }, column.label))
    }

    const tbody = table.createTBody()
    const expand = display.expand && queryUrl ? display.expand : null
    // `limit`: the first rows only (fetched with one more, so that a cut is known)
    const cut = display.limit && body.rows.length > display.limit
    const rows = cut ? body.rows.slice(0, display.limit) : body.rows
    for (const row of rows) {
      const tr = tbody.insertRow()
      tr.dataset.key = row[columns[0].field] ?? ''
      for (const column of columns) {
        const value = row[column.field]
        const td = element('td', { dataset: { column: column.field } })
        if (typeof value === 'number') td.className = 'mp-num' + (column.signed && value < 0 ? ' mp-down' : column.signed && value > 0 ? ' mp-up' : '')
        if (column.link) td.appendChild(element('a', { href: linkFor(column.link, row, base) }, format(value, column)))
        else td.textContent = format(value, column)
        if (column.below) appendBelow(td, column.below, value, row[column.below])
        tr.appendChild(td)
      }
      // (a row without the key, say orders with no warehouse, cannot be asked for on its own)
      if (expand && (row[expand.field] ?? '') !== '') {
        // the ▸ / ▾ is drawn by mp.css, so that the cell's text stays the group's name
        const button = element('button', { type: 'button', class: 'mp-expand', 'aria-expanded': 'false',
          title: expand.title || 'Подробнее', 'aria-label': expand.title || 'Подробнее' })
        button.addEventListener('click', () => toggleDetail(button, tr, slug, expand, row, queryUrl, params, base))
        tr.cells[0].prepend(button)
      }
    }
    if (!body.rows.length) {
      const td = element('td', { colspan: columns.length, class: 'mp-empty' }, 'Нет данных')
      tbody.insertRow().appendChild(td)
    } else if (display.total) {
      const tr = table.createTFoot().insertRow()
      columns.forEach((column, i) => {
        const total = columnTotal(body.rows, column.field, column.money)
        const td = element('td', { dataset: { column: column.field } })
        if (i === 0) td.textContent = display.total
        else if (total !== null && !column.signed) {
          td.className = 'mp-num'
          td.textContent = format(total, column)
          if (column.below) appendBelow(td, column.below, total, columnTotal(body.rows, column.below, true))
        }
        tr.appendChild(td)
      })
    }
    const wrapper = element('div', { class: 'mp-table-wrapper' })
    wrapper.appendChild(table)
    el.replaceChildren(wrapper)
    if (cut && queryUrl) {
      const note = element('p', { class: 'mp-note mp-more' }, `Показаны первые ${display.limit}. `)
      note.appendChild(element('a', { href: withQuery(queryUrl, params) }, 'Все строки'))
      el.appendChild(note)
    }
  }

  // The spec as two layers: the line up to the day before the newest, and, dashed with hollow
  // points, from that day into the newest (chart.unfinished); as it is with fewer than two days.
  function dashedLastDay (display, field, rows) {
    const days = [...new Set(rows.map(row => row[field]))].sort()
    if (days.length < 2) return display
    // (a temporal field is a Date by the time a filter sees it: compared as times)
    const [before, last] = days.slice(-2).map(day => `time(toDate(${JSON.stringify(day)}))`)
    const value = `time(toDate(datum[${JSON.stringify(field)}]))`
    const { mark, ...shared } = display
    const line = typeof mark === 'string' ? { type: mark } : mark
    return {
      ...shared,
      layer: [
        { mark: line, transform: [{ filter: `${value} < ${last}` }] },
        { mark: { ...line, strokeDash: [4, 4], point: line.point ? { filled: false } : false },
          transform: [{ filter: `${value} >= ${before}` }] },
      ],
    }
  }

  async function renderVegaLite (el, chart, body, base, params) {
    const display = chart.unfinished
      ? dashedLastDay(chart.display || {}, chart.unfinished, body.rows)
      : chart.display || {}
    const spec = {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      width: 'container',
      height: display.height || 220,
      background: null,
      ...display,
      config: { view: { stroke: null }, ...(dark ? DARK_CONFIG : {}), ...(display.config || {}) },
      data: { values: body.rows },
    }
    el.replaceChildren()
    await vegaEmbed(el, spec, {
      mode: 'vega-lite',
      renderer: 'svg',
      actions: { export: true, source: false, compiled: false, editor: false },
      formatLocale: { decimal: ',', thousands: '\u00a0', grouping: [3], currency: ['', '\u00a0₽'] },
      i18n: { PNG_ACTION: 'Сохранить PNG', SVG_ACTION: 'Сохранить SVG' },
    })
  }

  const RENDERERS = { 'mp-metric': renderMetric, 'mp-table': renderTable, 'mp-vega-lite': renderVegaLite }

  function addLinks (card, queryUrl, params, library) {
    const links = card.querySelector('.mp-card-links')
    const title = card.querySelector('.mp-card-title')
    if (!links || !title) return
    const page = element('a', { href: withQuery(queryUrl, params), title: 'Таблица с этими же фильтрами' })
    page.textContent = title.textContent
    title.replaceChildren(page)
    if (library === 'mp-metric') return
    links.appendChild(element('a', { class: 'mp-export', href: withQuery(`${queryUrl}.csv`, params, { _dl: '1' }) }, 'CSV'))
    links.appendChild(element('a', { class: 'mp-export', href: withQuery(`${queryUrl}.json`, params, { _shape: 'array' }) }, 'JSON'))
  }

  // ?in=rub: the fields the chart draws take their values from the money ones, and the title says so.
  function applySwitch (card, chart, rows, params) {
    const choice = chart.switch && params.get(chart.switch.param)
    if (!choice) return
    for (const [shown, source] of Object.entries(chart.switch.fields[choice] || {})) {
      for (const row of rows) row[shown] = row[source]
    }
    const title = chart.switch.titles && chart.switch.titles[choice]
    const heading = card && card.querySelector('.mp-card-title a, .mp-card-title')
    if (title && heading) heading.textContent = title
  }

  async function renderChart (slug, chart, options) {
    const el = document.getElementById(`chart-${slug}`)
    const card = document.getElementById(`card-${slug}`)
    const render = RENDERERS[chart.library]
    const queryUrl = options.queryUrls[slug]
    if (!el || !render || !queryUrl) return
    const params = parameters(options.queryString, chart.params)
    addLinks(card, queryUrl, params, chart.library)
    el.replaceChildren(element('p', { class: 'mp-loading' }, '…'))
    try {
      const limit = (chart.display || {}).limit
      const body = await fetchShared(withQuery(`${queryUrl}.json`, params,
        limit ? { ...ROWS, top: String(limit + 1) } : ROWS))
      applySwitch(card, chart, body.rows, params)
      data[slug] = body.rows
      await render(el, chart, body, options.base, params, slug, queryUrl)
      if (body.truncated) {
        el.appendChild(element('p', { class: 'mp-note' },
          'Показаны не все строки — полная выгрузка по ссылке CSV.'))
      }
    } catch (error) {
      card.dataset.error = error.message
      el.replaceChildren(element('p', { class: 'mp-error' }, `Не удалось загрузить: ${error.message}`))
    }
  }

  // "Данные: Wildberries — 14:05 (12 мин назад), Ozon — ..." from the freshness query: per
  // marketplace the oldest of its sources' last successful loads, so a stuck source shows.
  const REQUIRED = ['stocks', 'orders', 'sales']

  async function renderFreshness () {
    const el = document.getElementById('mp-freshness')
    if (!el) return
    try {
      const body = await fetchJson(el.dataset.url)
      const names = { wb: 'Wildberries', ozon: 'Ozon' }
      const parts = []
      for (const marketplace of ['wb', 'ozon']) {
        // the figures on the page come from these; balance and the catalogue are optional
        const rows = body.rows.filter(row => row.marketplace === marketplace && REQUIRED.includes(row.dataset))
        if (!rows.length) continue
        if (rows.some(row => !row.last_success_at)) {
          parts.push(`${names[marketplace]} — ещё не всё загружено`)
          continue
        }
        const oldest = rows.reduce((a, b) => (a.minutes_since_success >= b.minutes_since_success ? a : b))
        parts.push(`${names[marketplace]} — ${oldest.last_success_at.slice(11, 16)} (${numbers.format(oldest.minutes_since_success)} мин назад)`)
      }
      const failed = body.rows.filter(row => row.status === 'failed')
      el.replaceChildren(document.createTextNode(parts.length ? `Данные: ${parts.join(', ')}.` : 'Данных ещё нет: сборщик не запускался.'))
      if (failed.length) {
        el.classList.add('mp-stale')
        el.appendChild(document.createTextNode(` Последняя загрузка не удалась: ${failed.map(row => `${row.account} ${row.dataset}`).join(', ')}. `))
        el.appendChild(element('a', { href: el.dataset.page }, 'Подробнее'))
      }
    } catch (error) {
      el.textContent = `Свежесть данных неизвестна: ${error.message}`
    }
  }

  // A filter's suggestions that come from a canned query (the group filter: every group and
  // article, ~5,000 at a big seller) are fetched the first time the field is used, so that the
  // page itself stays small and does not wait for them.
  function suggestOnFirstUse () {
    for (const list of document.querySelectorAll('datalist[data-options-url]')) {
      const input = document.querySelector(`input[list="${list.id}"]`)
      if (!input) continue
      let loading = null
      const load = () => {
        loading = loading || fetchJson(list.dataset.optionsUrl).then(values => {
          list.replaceChildren(...values.map(value => element('option', { value: String(value) })))
          list.dataset.loaded = '1'
        }).catch(() => { loading = null })  // tried again on the next use
      }
      input.addEventListener('focus', load)
      input.addEventListener('input', load)
    }
  }

  async function render (options) {
    suggestOnFirstUse()
    const jobs = Object.entries(options.charts).map(([slug, chart]) => renderChart(slug, chart, options))
    jobs.push(renderFreshness())
    await Promise.allSettled(jobs)
    document.body.dataset.mpReady = '1'
    if (options.autorefreshMinutes > 0) {
      // The whole page, so that the filters' options (new warehouses, aliases) refresh too.
      window.setTimeout(() => window.location.reload(), options.autorefreshMinutes * 60 * 1000)
    }
  }

  return { render, data }
})()
