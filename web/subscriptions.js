// Webhook subscriptions: state (active, paused with the reason, disabled),
// failures, last success, and deliveries waiting, in flight or dead-lettered.
// Operators, auditors and admins may read them; anonymous readers are told
// to sign in.

import { h, $, badge, table, renderIfChanged } from './dom.js';

export function renderSubscriptions(result) {
  const el = $('table-subscriptions');
  if (result === null) {
    renderIfChanged(el, 'signed-out', () => el.replaceChildren(
      h('p', { class: 'empty small' }, 'Sign in as an operator, auditor or admin to see the webhook subscriptions.')));
    return;
  }
  const items = result.items || [];
  renderIfChanged(el, items, () => el.replaceChildren(table(items, [
    ['name', 'Name', (r) => h('span', { title: r.url ?? '' }, r.name ?? '')],
    ['state', 'State', (r) => badge(r.state)],
    ['paused_reason', 'Paused because'],
    ['event_types', 'Event types', (r) => (r.event_types ? r.event_types.join(', ') : 'all')],
    ['consecutive_failures', 'Failures in a row'],
    ['last_success_at', 'Last success'],
    ['waiting', 'Waiting'],
    ['in_flight', 'In flight'],
    ['dead_letters', 'Dead letters'],
    ['delivered_count', 'Delivered'],
  ], 'No webhook subscriptions.')));
}
