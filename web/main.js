// The console: loads the reference data once, then refreshes the overview,
// the submission list and the selected submission every couple of seconds
// while the tab is visible.

import config from './config.js';
import { $, h } from './dom.js';
import * as auth from './auth.js';
import { rpc, onTokenRejected, describe } from './api.js';
import { renderOverview, renderCaseLegend } from './overview.js';
import { SubmissionList } from './submissions.js';
import { renderDetail, clearDetail } from './detail.js';
import { renderSubscriptions } from './subscriptions.js';
import { Workflow } from './workflow.js';
import { IntakeForm } from './intake.js';
import { RecordTables } from './records.js';

const SELECTED_KEY = 'enterprise_lab.selected';

const list = new SubmissionList({ onSelect: select, onFilterChange: () => refresh() });
const workflow = new Workflow({ onChanged: () => refresh() });
const intake = new IntakeForm({ onSubmitted: (r) => { select(r.submission_id); } });
const records = new RecordTables({ onSelect: (id) => { select(id); $('detail').scrollIntoView({ block: 'start' }); }, onPage: () => refresh() });

let selected = sessionStorage.getItem(SELECTED_KEY);
let referenceLoaded = false;
let timer = null;
let running = null;
let again = false;

function banner(text) {
  $('banner').textContent = text || '';
  $('banner').hidden = !text;
}

function select(id) {
  selected = id;
  sessionStorage.setItem(SELECTED_KEY, id);
  list.select(id);
  clearDetail('Loading…');
  refresh();
}

async function loadReference() {
  const ref = await rpc('reference_data', {});
  intake.setReference(ref);
  workflow.setReference(ref);
  list.setTeams(ref.teams || []);
  renderCaseLegend(ref.case_statuses);
  referenceLoaded = true;
}

function showHealth(m) {
  const p = m.processing || {};
  const workers = Number(p.workers_running ?? (m.workers || []).length);
  const pill = $('health');
  pill.className = `pill ${workers > 0 ? 'pill-ok' : 'pill-warn'}`;
  pill.textContent = workers > 0 ? `${workers} worker${workers === 1 ? '' : 's'} running` : 'no worker running';
  pill.title = `${p.pending_events ?? 0} events pending`;
}

// One refresh at a time; a request for another while one runs is folded
// into a single follow-up.
async function refresh() {
  if (running) { again = true; return running; }
  running = (async () => {
    try {
      if (!referenceLoaded) await loadReference();
      const role = (auth.claims() || {}).role;
      const [metrics, submissions, detail, subscriptions, ...pages] = await Promise.all([
        rpc('metrics', {}),
        rpc('submissions', list.query()),
        selected ? rpc('submission_detail', { submission_id: selected }).catch((e) => {
          if (e.status === 404 || e.code === 'PT404') return null;
          throw e;
        }) : Promise.resolve(undefined),
        // Not for anonymous readers; a token the server rejects reads on anonymously.
        ['lab_operator', 'lab_auditor', 'lab_admin'].includes(role)
          ? rpc('subscriptions', {}).catch((e) => { if (e.status === 401 || e.status === 403) return null; throw e; })
          : Promise.resolve(null),
        ...records.queries().map(([name, body]) => rpc(name, body)),
      ]);
      renderOverview(metrics);
      renderSubscriptions(subscriptions);
      showHealth(metrics);
      list.render(submissions);
      list.select(selected);
      records.render(pages);
      if (detail) {
        renderDetail(detail, () => refresh());
        workflow.show(detail.case);
      } else if (detail === null) {
        selected = null;
        sessionStorage.removeItem(SELECTED_KEY);
        clearDetail('That submission no longer exists. Choose another one.');
      }
      $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
      if ($('banner').dataset.kind === 'api') { banner(''); $('banner').dataset.kind = ''; }
    } catch (e) {
      $('health').className = 'pill pill-bad';
      $('health').textContent = 'API unreachable';
      banner(describe(e));
      $('banner').dataset.kind = 'api';
    } finally {
      running = null;
      if (again) { again = false; refresh(); }
    }
  })();
  return running;
}

function schedule() {
  clearInterval(timer);
  timer = null;
  if (document.hidden) {
    $('live').className = 'pill pill-muted';
    $('live').textContent = 'paused';
    return;
  }
  $('live').className = 'pill pill-live';
  $('live').textContent = 'live';
  timer = setInterval(refresh, config.pollMilliseconds);
}

function showIdentity() {
  const c = auth.claims();
  const teams = auth.teams(c);
  $('identity-label').replaceChildren(c
    ? h('span', null, h('b', null, String(c.sub ?? 'signed in')), ` · ${c.role}${teams.length ? ` · ${teams.join(', ')}` : ''}`)
    : 'anonymous');
  $('signin-open').hidden = Boolean(c);
  $('signout').hidden = !c;
}

function setUpSignIn() {
  const dialog = $('signin-dialog');
  $('signin-open').addEventListener('click', () => {
    $('signin-error').textContent = '';
    $('signin-token').value = '';
    dialog.showModal();
    $('signin-token').focus();
  });
  $('signin-cancel').addEventListener('click', () => dialog.close());
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    try {
      auth.signIn($('signin-token').value);
      dialog.close();
      banner('');
      refresh();
    } catch (err) {
      $('signin-error').textContent = err.message;
    }
  });
  $('signout').addEventListener('click', () => { auth.signOut(); refresh(); });
  auth.onChange(showIdentity);
  onTokenRejected((e) => banner(`Signed out: the server rejected the token (${e.message}).`));
  showIdentity();
}

setUpSignIn();
document.addEventListener('visibilitychange', () => { schedule(); if (!document.hidden) refresh(); });
if (selected) list.select(selected);
schedule();
refresh();
