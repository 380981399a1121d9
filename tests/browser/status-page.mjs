// The status page in a real browser: Debian's Chromium, headless, driven by
// playwright-core, against the page the real demo serves.
//
// Run by `tests/tests/browser.rs`, which starts the demo and talks to this
// script over its standard streams, one line at a time:
//
//   script -> driver   `ready`                the browser is up (before the demo starts)
//   driver -> script   `url http://ADDR/`     the demo's page
//   script -> driver   `live-checks-passed`   the page checks passed, the screenshot is written
//   driver -> script   `terminated`           the driver sent SIGTERM to the demo
//   script -> driver   `done`                 the page saw the shutdown; the browser is closed
//
// Anything else it prints is progress, for the driver's log. Any failed check
// exits 1 with a message starting `browser test failed:` on stderr. Every wait
// is for something to appear on the page, up to PATIENCE_MS, never a sleep.
//
// Environment: CHROMIUM (the browser, default /usr/bin/chromium), SCREENSHOT
// (the PNG to write, default target/browser/status-page.png; the shutdown
// screenshot goes beside it), EXPECTED_SERVICES (comma-separated names, a
// nested service by its path, that must each have a row), PATIENCE_MS
// (default 30000).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = process.env.SCREENSHOT || 'target/browser/status-page.png';
const EXPECTED = (process.env.EXPECTED_SERVICES || '').split(',').filter(Boolean);
const PATIENCE = Number(process.env.PATIENCE_MS || 30000);

// What a hostile service could be called and could fail with: the page must
// show these as text.
const HOSTILE_NAME = '<script>alert(1)</script>';
const HOSTILE_ERROR = '<img src=x onerror=alert(2)>';

// The flags Debian's Chromium needs here: as root (no sandbox), without a GPU,
// and without the background connections a closed network refuses.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

class CheckFailed extends Error {}

function fail(message) {
  throw new CheckFailed(message);
}

function say(line) {
  process.stdout.write(line + '\n');
}

const input = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function expectLine(prefix) {
  const { value, done } = await input.next();
  if (done) fail(`the driver closed stdin before \`${prefix}\``);
  const line = value.trim();
  if (!line.startsWith(prefix)) fail(`expected \`${prefix}\` from the driver, got \`${line}\``);
  return line.slice(prefix.length).trim();
}

// `page.waitForFunction`, failing with `what` and a description of the page
// (from `describe`, evaluated in the page) instead of a bare timeout.
async function waitOn(page, what, predicate, arg, describe) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: PATIENCE, polling: 100 });
  } catch (error) {
    const seen = describe ? await page.evaluate(describe, arg).catch((e) => `(cannot describe: ${e.message})`) : '';
    fail(`${what}: not seen within ${PATIENCE} ms${seen ? `; the page shows ${seen}` : ''} (${error.message.split('\n')[0]})`);
  }
}

// Installed before the page's own script, in the page: the helpers the
// checks below call there (`window.__check`), and a record of every value
// each row's restart counter shows, so a change is seen however late the
// check runs.
function installPageHelpers() {
  const rows = () => [...document.querySelectorAll('#services tr[data-service]')];
  const text = (row, selector) => row.querySelector(selector)?.textContent;

  window.__restartHistory = {};
  const record = () => {
    for (const row of rows()) {
      const name = text(row, '.name');
      const count = text(row, '.restarts .count');
      if (name === undefined || count === undefined || count === '') continue;
      const history = (window.__restartHistory[name] ||= []);
      if (history[history.length - 1] !== count) history.push(count);
    }
  };
  new MutationObserver(record).observe(document, { subtree: true, childList: true, characterData: true });

  window.__check = {
    names: () => new Set(rows().map((row) => text(row, '.name'))),
    row: (name) => rows().find((row) => text(row, '.name') === name),
    connection: () => document.documentElement.dataset.connection,

    // The rows, for failure messages.
    describe() {
      return JSON.stringify(Object.fromEntries(rows().map((row) => [text(row, '.name'), {
        phase: text(row, '.pill'),
        restarts: text(row, '.restarts .count'),
        failures: [...row.querySelectorAll('.kind')].map((chip) => chip.textContent).join(', '),
      }])));
    },

    // The services of `/status`, as the rows should show them.
    async status() {
      const base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
      const json = await (await fetch(base + 'status', { cache: 'no-store' })).json();
      const list = Array.isArray(json) ? json : json.services;
      return list.map((status) => {
        const snapshot = status.snapshot || status;
        return {
          name: snapshot.service_name,
          phase: snapshot.phase.replace(/_/g, ' '),
          restarts: String(Math.max(0, snapshot.start_count - 1)),
          failures: ['error', 'panic', 'timeout'].map((kind) => `${kind} ${snapshot.failures[kind]}`).join(', '),
          dependencies: (status.dependencies || []).join(', '),
        };
      });
    },

    // Whether every row shows what `/status` says, and nothing more.
    async agrees() {
      const services = await this.status();
      if (rows().length !== services.length) return false;
      return services.every((service) => {
        const row = this.row(service.name);
        return row !== undefined
          && text(row, '.pill') === service.phase
          && text(row, '.restarts .count') === service.restarts
          && [...row.querySelectorAll('.kind')].map((chip) => chip.textContent).join(', ') === service.failures
          && [...row.querySelectorAll('.dep')].map((dep) => dep.textContent).join(', ') === service.dependencies;
      });
    },

    // Where each nested service's row is, against `/status`: right under
    // its node's row (only the node's services between them), indented
    // deeper than it, the node's path dimmed before its own name. Returns
    // the problems, and how many nested rows were checked.
    async tree() {
      const json = await (await fetch(location.pathname.replace(/\/?$/, '/') + 'status', { cache: 'no-store' })).json();
      const list = Array.isArray(json) ? json : json.services;
      const all = rows();
      const problems = [];
      let nested = 0;
      const indent = (row) => parseFloat(getComputedStyle(row.querySelector('td.service')).paddingLeft);
      for (const status of list) {
        if (typeof status.supervisor !== 'string') continue;
        nested += 1;
        const name = status.snapshot.service_name;
        const node = status.supervisor;
        const row = this.row(name);
        const nodeRow = this.row(node);
        if (row === undefined || nodeRow === undefined) {
          problems.push(`${name}: no row for it or for its node ${node}`);
          continue;
        }
        const at = all.indexOf(row);
        const nodeAt = all.indexOf(nodeRow);
        const between = all.slice(nodeAt + 1, at).map((r) => text(r, '.name'));
        if (at <= nodeAt || between.some((other) => !other.startsWith(node + '/'))) {
          problems.push(`${name} is not under ${node}: rows between them ${JSON.stringify(between)}`);
        }
        if (row.dataset.supervisor !== node) problems.push(`${name}: data-supervisor ${row.dataset.supervisor}`);
        if (text(row, '.name .parent') !== node + '/' || text(row, '.name .leaf') !== name.slice(node.length + 1)) {
          problems.push(`${name}: shown as ${JSON.stringify([text(row, '.name .parent'), text(row, '.name .leaf')])}`);
        }
        if (!(indent(row) > indent(nodeRow))) problems.push(`${name}: indented ${indent(row)}px, its node ${indent(nodeRow)}px`);
      }
      return { problems, nested };
    },

    // Markup in the data must never become elements: the page's one
    // script, no element the page never makes, no inline handler.
    markup() {
      const problems = [];
      const scripts = document.querySelectorAll('script').length;
      if (scripts !== 1) problems.push(`${scripts} <script> elements`);
      const foreign = document.querySelectorAll('#services :is(script, img, iframe, object, embed, a, b, i, style, link)');
      if (foreign.length) problems.push(`elements from data in the table: ${[...foreign].map((e) => e.outerHTML).join(' ')}`);
      const handlers = [...document.querySelectorAll('*')]
        .filter((e) => [...e.attributes].some((a) => a.name.toLowerCase().startsWith('on')));
      if (handlers.length) problems.push(`inline handlers on ${handlers.map((e) => e.tagName).join(', ')}`);
      return problems;
    },
  };
}

async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'status-page-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1360, height: 820 },
    colorScheme: 'dark',
  });
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

// Fails the run on anything the page should never do: throw, open a dialog,
// or request anything from another origin.
function guard(page, origin, problems) {
  page.on('pageerror', (error) => problems.push(`the page threw: ${error.message}`));
  page.on('dialog', (dialog) => {
    problems.push(`the page opened a ${dialog.type()} dialog: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith('data:') && new URL(url).origin !== origin) problems.push(`an external request: ${url}`);
  });
}

function checkProblems(problems, when) {
  if (problems.length) fail(`${when}: ${problems.join('; ')}`);
}

// Waits for a row for each expected service.
async function waitForEveryService(page, when) {
  await waitOn(page, `a row for each of ${EXPECTED.join(', ')}${when}`,
    (names) => names.every((name) => window.__check.names().has(name)),
    EXPECTED, () => window.__check.describe());
}

async function openPage(context, url, problems) {
  const page = await context.newPage();
  guard(page, new URL(url).origin, problems);
  await page.addInitScript(installPageHelpers);
  return page;
}

// The live page: every service, a restart counter that moves without a
// reload, rows that agree with `/status`, and the screenshot.
async function checkLivePage(context, url, problems) {
  const page = await openPage(context, url, problems);
  let navigations = 0;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });
  await page.goto(url);

  await waitOn(page, 'the live event stream', () => window.__check.connection() === 'live', null,
    () => `connection "${window.__check.connection()}" (${document.getElementById('connection-label').textContent})`);
  say('page: live from /events');

  await waitForEveryService(page, '');
  say(`page: found ${EXPECTED.join(', ')}`);

  await waitOn(page, 'a restart counter changing without a reload',
    () => Object.values(window.__restartHistory).some((h) => h.length > 1 && Number(h[h.length - 1]) > Number(h[0])),
    null, () => JSON.stringify(window.__restartHistory));
  const history = await page.evaluate(() => window.__restartHistory);
  const moved = Object.entries(history).filter(([, h]) => h.length > 1).map(([name, h]) => `${name} ${h.join(' → ')}`);
  say(`page: restart counters moved live: ${moved.join('; ')}`);
  if (navigations !== 1) fail(`the page navigated ${navigations} times: it must update without a reload`);

  const uptimes = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#services tr[data-phase="running"]')]
    .map((row) => [row.querySelector('.name').textContent, row.querySelector('.uptime').textContent])));

  // The demo settles within seconds: a circuit breaker opens (price-poller),
  // a panic is counted (orders/risk-engine). Both arrive as events.
  await waitOn(page, 'a service terminated by its circuit breaker, shown with its reason',
    () => [...document.querySelectorAll('#services tr[data-phase="terminated"][data-failed="true"] .reason')]
      .some((reason) => reason.textContent.startsWith('circuit breaker open after ')),
    null, () => window.__check.describe());
  await waitOn(page, 'a panic counted',
    () => [...document.querySelectorAll('#services .kind')].some((chip) => /^panic [1-9]/.test(chip.textContent)),
    null, () => window.__check.describe());
  await waitOn(page, 'the uptime of a running service counting up',
    (before) => Object.entries(before).some(([name, uptime]) => {
      const row = window.__check.row(name);
      return row !== undefined && row.dataset.phase === 'running' && row.querySelector('.uptime').textContent !== uptime;
    }),
    uptimes, () => window.__check.describe());
  say('page: a circuit breaker opened, a panic was counted, uptimes count up, all live');

  // What the events built agrees with the snapshots.
  await waitOn(page, 'rows agreeing with /status (names, phases, restarts, failures by kind, dependencies)',
    () => window.__check.agrees(), null,
    async () => `rows ${window.__check.describe()}; /status ${JSON.stringify(await window.__check.status())}`);
  say('page: rows agree with /status');

  // A nested supervisor's services are shown under their node.
  const tree = await page.evaluate(() => window.__check.tree());
  if (tree.nested === 0) fail('no nested service in /status: the demo is a tree');
  if (tree.problems.length) fail(`nested rows: ${tree.problems.join('; ')}`);
  say(`page: ${tree.nested} nested services shown under their nodes`);

  const markup = await page.evaluate(() => window.__check.markup());
  if (markup.length) fail(`markup in the live page: ${markup.join('; ')}`);
  checkProblems(problems, 'the live page');

  fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  say(`page: screenshot ${SCREENSHOT}`);
  return page;
}

// A second page whose `/status` also lists a hostile service (the real
// response, with one service copied under a name and an error made of
// markup), and whose `/events` fails: it must fall back to polling and show
// the markup as text.
async function checkHostileData(context, url, problems) {
  const page = await openPage(context, url, problems);
  await page.route(/\/events$/, (route) => route.abort());
  await page.route(/\/status$/, async (route) => {
    const response = await route.fetch();
    const json = await response.json();
    const list = Array.isArray(json) ? json : json.services;
    const hostile = structuredClone(list[0]);
    const snapshot = hostile.snapshot || hostile;
    snapshot.service_name = HOSTILE_NAME;
    snapshot.phase = 'terminated';
    snapshot.last_error = HOSTILE_ERROR;
    snapshot.termination_reason = { panicked: HOSTILE_ERROR };
    hostile.dependencies = [HOSTILE_ERROR];
    list.push(hostile);
    await route.fulfill({ response, json });
  });
  await page.goto(url);

  await waitOn(page, 'polling /status once the event stream fails', () => window.__check.connection() === 'polling', null,
    () => `connection "${window.__check.connection()}"`);
  await waitOn(page, 'the hostile service shown as text',
    ([name, error]) => {
      const row = window.__check.row(name);
      return row !== undefined
        && row.querySelector('.error').textContent === error
        && row.querySelector('.reason').textContent === `panicked: ${error}`
        && row.querySelector('.dep')?.textContent === error;
    },
    [HOSTILE_NAME, HOSTILE_ERROR], () => window.__check.describe());
  await waitForEveryService(page, ' while polling');
  const markup = await page.evaluate(() => window.__check.markup());
  if (markup.length) fail(`markup from the data became elements: ${markup.join('; ')}`);
  checkProblems(problems, 'the page with a hostile service');
  say(`page: ${JSON.stringify(HOSTILE_NAME)} and ${JSON.stringify(HOSTILE_ERROR)} shown as text; polling works`);
  await page.close();
}

async function main() {
  const { context, close } = await launch();
  try {
    say('ready');
    const url = await expectLine('url ');
    const problems = [];
    const live = await checkLivePage(context, url, problems);
    await checkHostileData(context, url, problems);
    say('live-checks-passed');

    await expectLine('terminated');
    // The drain: the page says the supervisor is shutting down, and why.
    await waitOn(live, 'the page showing the shutdown and its cause (SIGTERM)',
      () => document.getElementById('shutdown').classList.contains('shown')
        && document.getElementById('shutdown-cause').textContent.includes('SIGTERM'),
      null, () => `readiness "${document.getElementById('readiness-value').textContent}", `
        + `banner shown: ${document.getElementById('shutdown').classList.contains('shown')}, `
        + `connection "${document.getElementById('connection-label').textContent}"`);
    const seen = await live.evaluate(() => `readiness "${document.getElementById('readiness-value').textContent}", `
      + `"${document.getElementById('shutdown').textContent.trim()}", connection "${document.getElementById('connection-label').textContent}"`);
    say(`page: after SIGTERM: ${seen}`);
    const shutdownShot = SCREENSHOT.replace(/(\.png)?$/, '-shutdown.png');
    await live.screenshot({ path: shutdownShot, fullPage: true });
    say(`page: screenshot ${shutdownShot}`);
    checkProblems(problems, 'during the shutdown');
  } finally {
    await close();
  }
  say('done');
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`browser test failed: ${error instanceof CheckFailed ? error.message : error.stack}\n`);
    process.exit(1);
  },
);
