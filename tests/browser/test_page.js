#!/usr/bin/env node
/*
 * test_page.js — drives Debian's chromium (never a downloaded browser) through
 * the page classifyd serves at /, against a running daemon (tests/browser/run.sh).
 *
 * Ground truth is the API itself: for every file the page classifies, the
 * same bytes are POSTed to /classify from Node and the five labels, indices
 * and percentages shown must equal that answer. Error messages must equal the
 * JSON error's message. Errors the suite cannot provoke on demand (queue full,
 * not ready, deadline, a non-JSON answer, a dropped connection) are injected
 * with request interception to check how the page words them.
 * Prints "ok - ..." / "FAIL - ..." per check and "browser: N passed, M failed".
 */
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

function parseArgs(argv) {
  const a = {};
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const k of ['base', 'photo', 'gif', 'big', 'artifacts', 'chromium', 'node-dir']) {
    if (!a[k]) throw new Error('missing --' + k);
  }
  return a;
}

const args = parseArgs(process.argv.slice(2));
const { chromium } = require(path.join(args['node-dir'], 'node_modules', 'playwright-core'));
const BASE = args.base;
const WAIT_MS = 60000;
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: " +
  "data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) {
    passed++;
    console.log('ok - ' + name);
  } else {
    failed++;
    console.log('FAIL - ' + name + (detail !== undefined ? ': ' + detail : ''));
  }
}

/* The page's rule (web/app.js formatPercent), applied to the API's numbers. */
function formatPercent(p) {
  const v = p * 100;
  if (v > 0 && v < 0.05) return '<0.1%';
  return v.toFixed(1) + '%';
}

/* POST /classify from Node with "Expect: 100-continue", so that a refusal made
 * before the body is read (413 from Content-Length) reaches us before any
 * body byte is sent, however loaded the machine is. */
function apiClassify(file, model) {
  const data = fs.readFileSync(file);
  const url = new URL(BASE + '/classify?model=' + encodeURIComponent(model));
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', timeout: WAIT_MS, headers: {
      'Content-Type': 'application/octet-stream', 'Content-Length': data.length,
      Expect: '100-continue' } });
    req.on('continue', () => req.end(data));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString()) });
        } catch (e) {
          reject(e);
        }
      });
    });
  });
}

function expectedBars(answer) {
  return answer.predictions.map((p) => ({
    label: p.label, pct: formatPercent(p.probability), index: String(p.index),
  }));
}

async function shownBars(page) {
  return page.$$eval('#bars li', (lis) => lis.map((li) => ({
    label: li.querySelector('.bar-label').textContent,
    pct: li.querySelector('.bar-pct').textContent,
    index: li.dataset.index,
  })));
}

/* Waits until the page has finished a request: bars or an error, not busy. */
async function settled(page) {
  await page.waitForFunction(() => {
    const r = document.getElementById('results');
    return r.getAttribute('aria-busy') === 'false' &&
      (document.querySelectorAll('#bars li').length > 0 ||
       !document.getElementById('error').hidden);
  }, null, { timeout: WAIT_MS });
}

async function sameAsApi(page, name, file, model) {
  await settled(page);
  const want = expectedBars((await apiClassify(file, model)).body);
  const got = await shownBars(page);
  check(name + ': five bars equal POST /classify?model=' + model,
    got.length === 5 && JSON.stringify(got) === JSON.stringify(want),
    'shown ' + JSON.stringify(got) + ' api ' + JSON.stringify(want));
  return got;
}

async function shownError(page) {
  await settled(page);
  return page.evaluate(() => ({
    visible: !document.getElementById('error').hidden,
    title: document.getElementById('error-title').textContent,
    message: document.getElementById('error-message').textContent,
    hint: document.getElementById('error-hint').textContent,
    bars: document.querySelectorAll('#bars li').length,
  }));
}

async function checkHeaders() {
  const page = await fetch(BASE + '/');
  const html = await page.text();
  const h = page.headers;
  check('GET / is text/html with the strict CSP and nosniff',
    h.get('content-type') === 'text/html; charset=utf-8' &&
    h.get('content-security-policy') === CSP && h.get('x-content-type-options') === 'nosniff',
    [...h.entries()].join(' | '));
  check('GET / is revalidated (no-cache + ETag)',
    h.get('cache-control') === 'no-cache' && /^"[0-9a-f]{16}"$/.test(h.get('etag') || ''));
  const again = await fetch(BASE + '/', { headers: { 'If-None-Match': h.get('etag') } });
  check('If-None-Match with the ETag gets 304', again.status === 304, again.status);
  check('the page has no inline script or style and no external URL',
    !/<script(?![^>]*\bsrc=)[^>]*>/i.test(html) && !/<style/i.test(html) &&
    !/\sstyle=/i.test(html) && !/\son[a-z]+=/i.test(html) && !/(https?:)?\/\/(?!www\.w3)/.test(html));
  const types = { 'app.js': 'text/javascript; charset=utf-8', 'app.css': 'text/css; charset=utf-8',
    'favicon.svg': 'image/svg+xml' };
  for (const [name, type] of Object.entries(types)) {
    const m = html.match(new RegExp('/static/' + name.replace('.', '\\.') + '\\?v=([0-9a-f]{16})'));
    check('the page links ' + name + ' with a content version', !!m);
    if (!m) continue;
    const r = await fetch(BASE + m[0]);
    const body = Buffer.from(await r.arrayBuffer());
    check(name + ': ' + type + ', immutable for a year, CSP, ETag = version',
      r.status === 200 && r.headers.get('content-type') === type &&
      r.headers.get('cache-control') === 'public, max-age=31536000, immutable' &&
      r.headers.get('content-security-policy') === CSP &&
      r.headers.get('etag') === '"' + m[1] + '"' &&
      body.equals(fs.readFileSync(path.join(__dirname, '..', '..', 'web', name))),
    r.status + ' ' + [...r.headers.entries()].join(' | '));
    const plain = await fetch(BASE + '/static/' + name);
    check(name + ' without ?v= is revalidated', plain.headers.get('cache-control') === 'no-cache');
  }
  const missing = await fetch(BASE + '/static/nothing.js');
  check('an unknown asset is a JSON 404', missing.status === 404 &&
    (await missing.json()).error.code === 'not_found');
}

/* A fresh tab that fails the suite on console errors, CSP violations, page
 * exceptions or any request that leaves the daemon. */
async function openPage(context, label) {
  const page = await context.newPage();
  /* Intercepting file choosers is switched on asynchronously by the first
   * listener: do it before anything can open one. */
  page.on('filechooser', () => {});
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  page.on('pageerror', (e) => problems.push('exception: ' + e.message));
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(BASE + '/') && !u.startsWith('blob:') && !u.startsWith('data:')) {
      problems.push('external request: ' + u);
    }
  });
  await page.goto(BASE + '/', { waitUntil: 'load' });
  await page.waitForFunction(() => !document.getElementById('model').disabled, null,
    { timeout: WAIT_MS });
  page.problems = problems;
  page.label = label;
  return page;
}

async function dispatchFile(page, kind, file) {
  const b64 = fs.readFileSync(file).toString('base64');
  await page.evaluate(([k, data, name]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: 'image/jpeg' }));
    if (k === 'drop') {
      const zone = document.getElementById('drop');
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    } else {
      document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }
  }, [kind, b64, path.basename(file)]);
}

async function checkModels(page) {
  const api = await (await fetch(BASE + '/models')).json();
  const opts = await page.$$eval('#model option', (os) => os.map((o) => [o.value, o.textContent]));
  check('the model selector lists GET /models',
    JSON.stringify(opts.map((o) => o[0])) === JSON.stringify(api.models.map((m) => m.name)),
    JSON.stringify(opts));
  check('the default model is selected', (await page.inputValue('#model')) === api.default);
  const fmt = (n) => (n >= 1e9 ? (n / 1e9).toFixed(2) + 'G' : (n / 1e6).toFixed(1) + 'M');
  check('each option shows parameters and MACs per image', api.models.every((m, i) =>
    opts[i][1].includes(fmt(m.parameters) + ' params') && opts[i][1].includes(fmt(m.macs) + ' MACs/image')),
  JSON.stringify(opts));
  const def = api.models.find((m) => m.name === api.default);
  const info = await page.textContent('#model-info');
  check('the model details give exact parameters and multiply-accumulates',
    info.includes(def.parameters.toLocaleString('en-US') + ' parameters') &&
    info.includes(def.macs.toLocaleString('en-US') + ' multiply-accumulates per image'), info);
  const warn = await page.isVisible('#untrained');
  check('an untrained demo model is flagged', warn === def.untrained &&
    (!def.untrained || opts.every((o) => o[1].endsWith(' — untrained'))));
  return api;
}

async function checkKeyboardUpload(page) {
  await page.keyboard.press('Tab');
  const first = await page.evaluate(() => document.activeElement.id);
  await page.keyboard.press('Tab');
  const second = await page.evaluate(() => document.activeElement.id);
  check('Tab reaches the model selector, then the drop zone', first === 'model' && second === 'drop',
    first + ', ' + second);
  const outline = await page.$eval('#drop', (e) => getComputedStyle(e).outlineStyle);
  check('the focused drop zone shows a focus ring', outline !== 'none', outline);
  const [chooser] = await Promise.all([
    page.waitForEvent('filechooser', { timeout: WAIT_MS }),
    page.keyboard.press('Enter'),
  ]);
  check('Enter on the drop zone opens the file picker', !!chooser);
  await chooser.setFiles(args.photo);
}

async function checkResult(page, model) {
  const got = await sameAsApi(page, 'file picker (' + path.basename(args.photo) + ')', args.photo, model);
  const s = await page.evaluate(() => ({
    preview: (() => { const i = document.getElementById('preview'); return !i.hidden && i.naturalWidth > 0 && i.src.startsWith('blob:'); })(),
    timing: document.getElementById('timing').textContent,
    status: document.getElementById('status').textContent,
    badge: !document.getElementById('result-badge').hidden,
    widths: [...document.querySelectorAll('.bar-fill')].map((f) => f.getBoundingClientRect().width),
    live: document.getElementById('status').getAttribute('aria-live'),
  }));
  check('the preview shows the photo', s.preview);
  check('the timing of the request is shown',
    /^Server [\d.]+\u00a0ms \(queue [\d.]+\u00a0ms, decode [\d.]+\u00a0ms, inference [\d.]+\u00a0ms, batch of \d+\) · round trip [\d.]+\u00a0ms\.$/.test(s.timing), s.timing);
  check('the status (aria-live) names the top guess',
    s.live === 'polite' && s.status.startsWith(model + ': ' + got[0].label), s.status);
  check('the answer is flagged untrained', s.badge);
  check('bar lengths follow the probabilities',
    s.widths.every((w, i) => i === 0 || w <= s.widths[i - 1] + 0.5) && s.widths[0] > 0,
    JSON.stringify(s.widths));
}

async function checkApiErrors(page, model) {
  for (const [file, status, title] of [[args.gif, 415, 'Unsupported format'],
    [args.big, 413, 'File too large']]) {
    await page.setInputFiles('#file', file);
    const e = await shownError(page);
    const api = await apiClassify(file, model);
    check(status + ' (' + path.basename(file) + '): the page shows the JSON error\'s message',
      api.status === status && e.visible && e.title === title && e.message === api.body.error.message &&
      e.bars === 0, JSON.stringify(e) + ' api ' + JSON.stringify(api));
  }
}

async function checkInjectedErrors(page) {
  const cases = [
    [503, 'queue_full', 'the queue is full (64 waiting); retry later', 'Server busy'],
    [503, 'not_ready', "model 'resnet18' is still loading", 'Not ready yet'],
    [504, 'deadline_exceeded', 'not started within 30000 ms', 'Timed out'],
    [400, 'invalid_image', 'corrupt JPEG data', 'The image could not be read'],
  ];
  for (const [status, code, message, title] of cases) {
    await page.route('**/classify?*', (r) => r.fulfill({
      status, contentType: 'application/json', headers: { 'Retry-After': '1' },
      body: JSON.stringify({ error: { code, message } }),
    }));
    await page.setInputFiles('#file', args.photo);
    const e = await shownError(page);
    check(status + ' ' + code + ': "' + title + '" with the API message',
      e.visible && e.title === title && e.message === message && e.bars === 0, JSON.stringify(e));
    await page.unroute('**/classify?*');
  }
  await page.route('**/classify?*', (r) => r.fulfill({ status: 502, contentType: 'text/html', body: '<h1>Bad gateway</h1>' }));
  await page.setInputFiles('#file', args.photo);
  let e = await shownError(page);
  check('a non-JSON 502 is reported with its status', e.visible && e.title === 'HTTP 502' &&
    e.message.includes('HTTP 502'), JSON.stringify(e));
  await page.unroute('**/classify?*');
  await page.route('**/classify?*', (r) => r.abort('connectionreset'));
  await page.setInputFiles('#file', args.photo);
  e = await shownError(page);
  check('a dropped connection is a network error', e.visible && e.title === 'Network error', JSON.stringify(e));
  await page.unroute('**/classify?*');
  page.problems.splice(0); /* the injected failures log console errors by design */
}

async function checkLayout(page) {
  const m = await page.evaluate(() => ({
    overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    bg: getComputedStyle(document.body).backgroundColor,
  }));
  check(page.label + ': no horizontal scrolling', m.overflow <= 0, m.overflow);
  return m.bg;
}

async function shot(page, name) {
  const file = path.join(args.artifacts, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  console.log('# screenshot ' + file);
}

async function desktop(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const page = await openPage(context, 'desktop');
  const api = await checkModels(page);
  const model = api.default;
  const other = api.models.find((m) => m.name !== model).name;
  await checkKeyboardUpload(page);
  await checkResult(page, model);
  const light = await checkLayout(page);
  await shot(page, 'desktop-light');

  await page.selectOption('#model', other);
  const a = await sameAsApi(page, 'switching the model re-classifies', args.photo, other);
  const st = await page.textContent('#status');
  check('the status names the new model', st.startsWith(other + ':'), st);
  await dispatchFile(page, 'drop', args.photo);
  await sameAsApi(page, 'drag and drop', args.photo, other);
  await page.selectOption('#model', model);
  await settled(page);
  await dispatchFile(page, 'paste', args.photo);
  const b = await sameAsApi(page, 'paste from the clipboard', args.photo, model);
  check('the two models answer differently (the switch is real)', JSON.stringify(a) !== JSON.stringify(b));

  await checkApiErrors(page, model);
  await page.setInputFiles('#file', args.gif);
  await shownError(page);
  await shot(page, 'desktop-error');
  await checkInjectedErrors(page);
  check('desktop: no console errors, CSP violations or external requests',
    page.problems.length === 0, page.problems.join('; '));
  await context.close();
  return light;
}

async function phone(browser, scheme) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: scheme });
  const page = await openPage(context, 'phone ' + scheme);
  await page.setInputFiles('#file', args.photo);
  await sameAsApi(page, 'phone ' + scheme, args.photo, await page.inputValue('#model'));
  const bg = await checkLayout(page);
  await shot(page, 'phone-' + scheme);
  check('phone ' + scheme + ': no console errors, CSP violations or external requests',
    page.problems.length === 0, page.problems.join('; '));
  await context.close();
  return bg;
}

async function main() {
  await checkHeaders();
  const browser = await chromium.launch({ executablePath: args.chromium, headless: true,
    args: FLAGS, timeout: WAIT_MS });
  try {
    const light = await desktop(browser);
    await phone(browser, 'light');
    const dark = await phone(browser, 'dark');
    check('the dark theme follows the system preference', light !== dark, light + ' vs ' + dark);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  failed++;
  console.log('FAIL - unexpected: ' + (e && e.stack ? e.stack : e));
}).finally(() => {
  console.log('browser: ' + passed + ' passed, ' + failed + ' failed');
  process.exitCode = failed ? 1 : 0;
});
