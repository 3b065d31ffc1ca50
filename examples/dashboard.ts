/**
 * The demo's pages. The dashboard is cached like any other page, so it holds nothing live: its
 * script reads how its own load went (Navigation Timing and the Server-Timing the demo adds on
 * the way out, see activity.ts) and follows the counters and the request log as Server-Sent
 * Events from `/_demo/events`.
 */

export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const STYLE = `
:root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#f6f7f9;--hit:#12805c;--hitbg:#dcf5e9;
--miss:#b54708;--missbg:#fef0c7;--stale:#175cd3;--stalebg:#dbe8fe;--purge:#c01048;--purgebg:#fde4ec}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);margin:0}
main{max-width:1180px;margin:0 auto;padding:20px 24px 40px}
header{display:flex;align-items:baseline;gap:16px;flex-wrap:wrap}
h1{font-size:22px;margin:0}h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:0 0 10px}
.sub{color:var(--muted)}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eef0f3;padding:1px 5px;border-radius:4px}
.panel{background:#fff;border:1px solid var(--line);border-radius:10px;padding:16px 18px;margin-top:16px}
.own{display:flex;gap:18px;align-items:center;flex-wrap:wrap}
.own .big{font-size:26px;font-weight:700}
.badge{display:inline-block;font-weight:700;font-size:12px;letter-spacing:.04em;text-transform:uppercase;
padding:2px 8px;border-radius:999px;background:#eef0f3;color:var(--muted)}
.own .badge{font-size:20px;padding:4px 14px}
.b-hit,.b-not-modified{background:var(--hitbg);color:var(--hit)}.b-miss{background:var(--missbg);color:var(--miss)}
.b-stale,.b-revalidated,.b-refresh{background:var(--stalebg);color:var(--stale)}.b-purge{background:var(--purgebg);color:var(--purge)}
.history{margin-top:8px;color:var(--muted)}.history .badge{font-size:11px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:16px}
.card h3{margin:0 0 8px;font-size:15px}.card h3 .tag{font-weight:400;color:var(--muted)}
.ratio{display:flex;align-items:center;gap:14px}.ratio b{font-size:34px;min-width:90px}
.bar{flex:1;height:12px;background:var(--missbg);border-radius:6px;overflow:hidden}
.bar i{display:block;height:100%;width:0;background:var(--hit);transition:width .3s}
.nums{display:grid;grid-template-columns:repeat(3,1fr);gap:8px;margin-top:12px}
.nums div{background:var(--bg);border-radius:8px;padding:6px 10px}.nums b{display:block;font-size:20px}
.nums span{font-size:12px;color:var(--muted)}
.actions{display:grid;grid-template-columns:1fr 1.5fr;gap:16px}
button{font:inherit;font-size:14px;border:1px solid var(--line);background:#fff;border-radius:8px;padding:7px 12px;
margin:0 6px 8px 0;cursor:pointer}button:hover{border-color:#98a2b3}
button.purge{color:var(--purge);border-color:#f5b8cb}
#said{color:var(--muted);min-height:1.4em;margin:4px 0 0}
table{width:100%;border-collapse:collapse;font-size:14px}
th{white-space:nowrap;text-align:left;font-size:12px;color:var(--muted);font-weight:600;border-bottom:1px solid var(--line);padding:6px 8px}
td{border-bottom:1px solid var(--line);padding:6px 8px;vertical-align:top}
td.proc{white-space:nowrap}.b-other{background:#f4ebff;color:#6941c6}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.mine td{background:#fffbea}tr.fresh td{animation:flash 1.2s}
@keyframes flash{from{background:#e8f0ff}}
.empty{color:var(--muted);text-align:center;padding:18px}
`

/** A plain page for the routes that are not the dashboard. */
export function page(title: string, body: string): string {
  return `<!doctype html><meta charset="utf-8"><title>${esc(title)}</title><link rel="icon" href="data:,">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}</style>
<p><a href="/">← the dashboard</a></p><h1>${esc(title)}</h1>\n${body}`
}

export interface DashboardOptions {
  /** The process rendering it: ":3000 (pid 123)". */
  proc: string
  redisUrl: string | undefined
  port: number
  renderedAt: string
  renderMs: number
}

/** The dashboard: cached 30 s, tagged `page`. */
export function dashboard({
  proc,
  redisUrl,
  port,
  renderedAt,
  renderMs,
}: DashboardOptions): string {
  const store = redisUrl
    ? `Redis at <code>${esc(redisUrl)}</code>. Start a second process with <code>PORT=${port + 1} REDIS_URL=${esc(redisUrl)} npm start</code>: its requests, hits and purges show here too.`
    : 'the in-memory store of this process.'
  return `<!doctype html><html lang="en"><meta charset="utf-8"><title>node-accelerator demo</title>
<meta name="viewport" content="width=device-width"><link rel="icon" href="data:,"><style>${STYLE}</style>
<main>
<header><h1>node-accelerator demo</h1><span class="sub">an HTTP cache inside a Node process · store: ${store}</span></header>

<section class="panel">
  <h2>This page's own load</h2>
  <div class="own">
    <span id="own-outcome" class="badge">…</span>
    <span class="big" id="own-ms">… ms</span>
    <span id="own-detail">reading this page's load…</span>
  </div>
  <div class="history">Your loads of this page: <span id="history"></span></div>
  <div class="history">This copy was rendered by ${esc(proc)} at ${renderedAt} in ${renderMs} ms.
    Reload: it comes from the cache for 30 s, or until purged.</div>
</section>

<section class="grid" id="cards"></section>

<section class="panel actions">
  <div>
    <h2>Request a page (from this browser)</h2>
    <button data-get="/slow">GET /slow <span class="sub">1 s to build</span></button>
    <button data-get="/posts/1">GET /posts/1</button>
    <button data-get="/posts/2">GET /posts/2</button>
    <button data-get="/report">GET /report <span class="sub">streamed</span></button>
  </div>
  <div>
    <h2>Purge</h2>
    <button class="purge" data-purge="tag=posts">Purge tag <code>posts</code></button>
    <button class="purge" data-purge="tag=posts&amp;soft=1">Soft purge <code>posts</code></button>
    <button class="purge" data-purge="url=/slow">Purge URL <code>/slow</code></button>
    <button class="purge" data-purge="tag=page">Purge this page <span class="sub">(tag <code>page</code>)</span></button>
    <p id="said"></p>
  </div>
</section>

<section class="panel">
  <h2>Requests, newest first: what the cache did, and whether the handler ran</h2>
  <table><thead><tr><th>#</th><th>answered by</th><th>request</th><th>Cache-Status</th><th>handler</th>
  <th class="num">time (whole response)</th></tr></thead><tbody id="log"><tr><td colspan="6" class="empty">No request yet</td></tr></tbody></table>
</section>
</main>
<script>${CLIENT}</script>`
}

// The page's script: plain browser JavaScript, served as is.
const CLIENT = String.raw`
const $ = (id) => document.getElementById(id)
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';')
const badge = (kind, text) => '<span class="badge b-' + esc(kind) + '">' + esc(text ?? kind) + '</span>'
const LABELS = { 'not-modified': '304 hit', revalidated: 'revalidated' }
let me = ''
let ownReq = ''
const stats = new Map()

// This document's load: Navigation Timing for its time (request start to the last byte, the whole
// response), and the Server-Timing the demo adds on the way out for what the cache did, whether
// the handler ran, and which request of which process it was (a page cannot read its own headers).
function showOwnLoad() {
  const nav = performance.getEntriesByType('navigation')[0]
  const timing = Object.fromEntries(nav.serverTiming.map((e) => [e.name, e.description]))
  const ms = Math.round(nav.responseEnd - nav.requestStart)
  ownReq = timing.req
  const by = timing.req.split('#')[0]
  $('own-outcome').className = 'badge b-' + timing.cache
  $('own-outcome').textContent = timing.cache
  $('own-ms').textContent = ms + ' ms'
  $('own-detail').innerHTML = (timing.handler === 'ran' ? 'the handler <b>ran</b> to render it' : 'the handler <b>did not run</b>: served from the cache') +
    ' · answered by <b>' + esc(by) + '</b>'
  const loads = JSON.parse(sessionStorage.getItem('loads') ?? '[]')
  if (loads.at(-1)?.req !== timing.req) loads.push({ req: timing.req, outcome: timing.cache, ms })
  sessionStorage.setItem('loads', JSON.stringify(loads.slice(-6)))
  $('history').innerHTML = loads.slice(-6).map((l) => badge(l.outcome) + ' ' + l.ms + ' ms').join(' → ')
  document.querySelectorAll('tr[data-req="' + CSS.escape(ownReq) + '"]').forEach(markOwn)
}
if (document.readyState === 'complete') showOwnLoad()
else addEventListener('load', showOwnLoad)

function markOwn(tr) {
  tr.classList.add('mine')
  tr.children[2].insertAdjacentHTML('beforeend', ' <span class="sub">← this page</span>')
}

function renderCards() {
  const procs = [...stats.keys()].sort((a, b) => (a === me ? -1 : b === me ? 1 : a.localeCompare(b)))
  $('cards').innerHTML = procs.map((proc) => {
    const s = stats.get(proc)
    // hits counts the stale answers too: each lookup is a hit or a miss.
    const looked = s.hits + s.misses
    const ratio = looked ? Math.round((100 * s.hits) / looked) : 0
    const num = (key, label) => '<div><b data-stat="' + key + '">' + (s[key] ?? '–') + '</b><span>' + label + '</span></div>'
    return '<section class="panel card' + (proc === me ? ' mine' : '') + '" data-proc="' + esc(proc) + '">' +
      '<h3>Process ' + esc(proc) + ' <span class="tag">' + (proc === me ? '· answers this page' : '· another process') + '</span></h3>' +
      '<div class="ratio"><b data-stat="ratio">' + (looked ? ratio + '%' : '–') + '</b><div class="bar"><i style="width:' + ratio + '%"></i></div>' +
      '<span class="sub">hit ratio: hits ÷ (hits + misses)</span></div><div class="nums">' +
      num('hits', 'hits') + num('misses', 'misses: the handler ran') + num('staleHits', 'of those, stale') +
      num('stores', 'responses stored') + num('notModified', '304s sent') + num('entries', 'entries held') + '</div></section>'
  }).join('')
}

function addRow(row) {
  const empty = $('log').querySelector('.empty')
  if (empty) empty.parentElement.remove()
  const tr = document.createElement('tr')
  tr.dataset.kind = row.kind
  tr.dataset.what = row.what
  tr.dataset.outcome = row.outcome ?? row.kind
  tr.dataset.req = row.proc + '#' + row.id
  tr.className = 'fresh'
  const by = row.renderedBy && row.renderedBy !== row.proc && row.outcome !== 'miss' ? ' <span class="sub">rendered by ' + esc(row.renderedBy) + '</span>' : ''
  let status, handler
  if (row.kind === 'purge') {
    status = badge('purge') + ' ' + (row.what.includes('soft') ? 'marked stale: ' : 'dropped: ') + row.entries + ' entr' + (row.entries === 1 ? 'y' : 'ies')
    handler = ''
  } else if (row.kind === 'refresh') {
    status = badge('refresh', 'background refresh') + ' after a stale answer'
    handler = '<b>ran</b>'
  } else {
    status = badge(row.outcome, LABELS[row.outcome]) + ' <code>' + esc(row.cacheStatus) + '</code>' + by
    handler = row.handlerRan ? '<b>ran</b>' : 'not run'
  }
  const [port, ...pid] = row.proc.split(' ')
  tr.innerHTML = '<td class="num">' + row.id + '</td><td class="proc"><b>' + esc(port) + '</b> <span class="sub">' + esc(pid.join(' ')) + '</span>' +
    (row.proc === me ? '' : ' <span class="badge b-other">other process</span>') +
    '</td><td><code>' + esc(row.what) + '</code>' +
    '</td><td>' + status + '</td><td>' + handler + '</td><td class="num">' + (row.kind === 'purge' ? '' : row.ms + ' ms') + '</td>'
  if (tr.dataset.req === ownReq) markOwn(tr)
  $('log').prepend(tr)
  while ($('log').children.length > 40) $('log').lastElementChild.remove()
}

function handle(event) {
  if (event.type === 'row') addRow(event.row)
  else {
    stats.set(event.proc, event.stats)
    renderCards()
  }
}

const events = new EventSource('/_demo/events')
events.addEventListener('init', (e) => {
  const init = JSON.parse(e.data)
  me = init.me
  $('log').innerHTML = '<tr><td colspan="6" class="empty">No request yet</td></tr>'
  stats.clear()
  init.events.forEach(handle)
  document.body.dataset.live = 'yes'
})
events.addEventListener('row', (e) => handle(JSON.parse(e.data)))
events.addEventListener('stats', (e) => handle(JSON.parse(e.data)))

document.querySelectorAll('[data-get]').forEach((button) => button.addEventListener('click', async () => {
  // no-store: past the browser's own cache, to this server's.
  const response = await fetch(button.dataset.get, { cache: 'no-store' })
  await response.arrayBuffer()
}))
document.querySelectorAll('[data-purge]').forEach((button) => button.addEventListener('click', async () => {
  const response = await fetch('/_demo/purge?' + button.dataset.purge, { method: 'POST' })
  const done = await response.json()
  $('said').textContent = done.what + ': ' + done.entries + ' entr' + (done.entries === 1 ? 'y' : 'ies')
}))
`
