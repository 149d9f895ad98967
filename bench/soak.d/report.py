#!/usr/bin/env python3
"""bench/soak's report: joins the server samples with pgbench's logs per
interval, writes soak.csv, checks the criteria and the invariants, prints
PASS/FAIL for each; exits 1 if any failed.

usage: report.py WORK OUT DURATION INTERVAL RATE MOVE_RATE READ_RATE INDEX_BOUND_KB
"""
import csv
import glob
import os
import sys

work, out = sys.argv[1], sys.argv[2]
duration, interval, rate, move_rate, read_rate, index_bound_kb = (int(a) for a in sys.argv[3:9])
t0 = float(open(os.path.join(work, 't0')).read())
n = duration // interval


def bucket(epoch):
    """Index of the interval a time falls in (0 = the first)."""
    return min(max(int((epoch - t0) // interval), 0), n - 1)


def transactions(prefix):
    """Per interval, from pgbench's per-transaction logs (with --rate a line
    holds the latency from the scheduled start and the start's lag, in us):
    transactions completed, transactions whose scheduled start fell in it,
    lag sum and max (us).  pgbench -R draws a Poisson schedule, so what it
    offers in 30 s is itself off the nominal rate by a few per mille."""
    done, offered, lag_sum, lag_max = [0] * n, [0] * n, [0.0] * n, [0.0] * n
    for path in glob.glob(os.path.join(work, prefix + '.[0-9]*')):
        for line in open(path):
            # client_id transaction_no latency_us script_no epoch us schedule_lag_us
            f = line.split()
            end = int(f[4]) + int(f[5]) / 1e6
            i = bucket(end)
            done[i] += 1
            offered[bucket(end - float(f[2]) / 1e6)] += 1
            lag_sum[i] += float(f[6])
            lag_max[i] = max(lag_max[i], float(f[6]))
    return done, offered, lag_sum, lag_max


def percentile(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def ms(us):
    return round(us / 1000.0, 2)


sub_n, sub_offered, sub_lag, sub_lag_max = transactions('submit')
mov_n, mov_offered, mov_lag, mov_lag_max = transactions('move')
reads = [[] for _ in range(n)]
read_lag_max = [0.0] * n
for path in glob.glob(os.path.join(work, 'dashboard.[0-9]*')):
    for line in open(path):
        # client_id transaction_no latency_us script_no epoch us schedule_lag_us
        f = line.split()
        i = bucket(int(f[4]) + int(f[5]) / 1e6)
        reads[i].append(float(f[2]))
        read_lag_max[i] = max(read_lag_max[i], float(f[6]))

samples = list(csv.DictReader(open(os.path.join(work, 'samples.csv'))))
claims0, claim_ms0 = (float(x) for x in open(os.path.join(work, 'claim.start')).read().split(','))
rows = []
for i, s in enumerate(samples[:n]):
    claims, claim_ms = float(s['claims']), float(s['claim_total_ms'])
    dc, dt = claims - claims0, claim_ms - claim_ms0
    claims0, claim_ms0 = claims, claim_ms
    rows.append({
        'elapsed_s': s['elapsed_s'],
        'submit_per_s': round(sub_n[i] / interval, 1),
        'submit_lag_mean_ms': ms(sub_lag[i] / sub_n[i]) if sub_n[i] else 0,
        'submit_lag_max_ms': ms(sub_lag_max[i]),
        'move_per_s': round(mov_n[i] / interval, 1),
        'move_lag_mean_ms': ms(mov_lag[i] / mov_n[i]) if mov_n[i] else 0,
        'move_lag_max_ms': ms(mov_lag_max[i]),
        'read_per_s': round(len(reads[i]) / interval, 1),
        'read_p50_ms': ms(percentile(reads[i], 0.5)),
        'read_p99_ms': ms(percentile(reads[i], 0.99)),
        'read_lag_max_ms': ms(read_lag_max[i]),
        'processed_per_s': round(int(s['processed']) / interval, 1),
        'c2p_p50_ms': s['c2p_p50_ms'],
        'c2p_p99_ms': s['c2p_p99_ms'],
        'claims_per_s': round(dc / interval, 1),
        'claim_mean_ms': round(dt / dc, 3) if dc else 0,
        'events_mb': round(int(s['events_kb']) / 1024, 1),
        'events_indexes_mb': round(int(s['events_indexes_kb']) / 1024, 1),
        'due_idx_kb': s['due_idx_kb'],
        'unfinished_idx_kb': s['unfinished_idx_kb'],
        'live_rows': s['live_rows'],
        'dead_rows': s['dead_rows'],
        'autovacuums': s['autovacuums'],
        'unfinished': s['unfinished'],
        'submit_offered_per_s': round(sub_offered[i] / interval, 1),
        'move_offered_per_s': round(mov_offered[i] / interval, 1),
    })
with open(os.path.join(out, 'soak.csv'), 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)

cols = [('elapsed_s', 's'), ('submit_per_s', 'sub/s'), ('submit_lag_max_ms', 'lag ms'), ('move_per_s', 'mov/s'),
        ('read_p99_ms', 'read p99'), ('c2p_p50_ms', 'c2p p50'), ('c2p_p99_ms', 'c2p p99'),
        ('claim_mean_ms', 'claim ms'), ('events_mb', 'events MB'), ('due_idx_kb', 'due kB'),
        ('unfinished_idx_kb', 'unfin kB'), ('dead_rows', 'dead')]
print()
print(' '.join('%9s' % h for _, h in cols))
for r in rows:
    print(' '.join('%9s' % r[k] for k, _ in cols))
print()

results = []


def check(ok, what):
    results.append(ok)
    print('%s  %s' % ('PASS' if ok else 'FAIL', what))


def reached(done, nominal, name):
    got = sum(done) / duration
    check(got >= 0.98 * nominal,
          '%s reached %.1f/s of %d/s offered over the run (>= 98%%)' % (name, got, nominal))


# Per interval against what the schedule offered in it, by interval index
# (an interval the schedule offered nothing is left out).  The last interval
# is left out too: the run's end cuts its transactions short.
reached(sub_n, rate, 'submissions')
ratios = {i: sub_n[i] / sub_offered[i] for i in range(len(sub_n) - 1) if sub_offered[i]}
worst = min(ratios, key=ratios.get)
check(ratios[worst] >= 0.99,
      'submissions reached >= 99%% of the rate offered in every interval: worst %.1f%% (%.1f/s of %.1f/s offered'
      ' at %d s), %d of %d below; offered %.1f-%.1f/s per interval'
      % (100 * ratios[worst], sub_n[worst] / interval, sub_offered[worst] / interval, (worst + 1) * interval,
         sum(1 for r in ratios.values() if r < 0.99), len(ratios), min(sub_offered[:-1]) / interval,
         max(sub_offered[:-1]) / interval))
reached(mov_n, move_rate, 'status changes')
first, last = float(rows[0]['c2p_p99_ms']), float(rows[-1]['c2p_p99_ms'])
p99s = [float(r['c2p_p99_ms']) for r in rows]
check(last <= 1.5 * first,
      'commit-to-processed p99: last interval %.1f ms <= 1.5 x first %.1f ms (worst interval %.1f ms)'
      % (last, first, max(p99s)))
check(max(p99s) <= 20, 'commit-to-processed p99 <= 20 ms in every interval: worst %.1f ms, %d of %d above'
      % (max(p99s), sum(1 for x in p99s if x > 20), len(p99s)))
# Bounded: no growth once retention and vacuum have reached their steady
# state, i.e. the second half of the run no larger than the first.
half = max(1, len(rows) // 2)
for name, index in (('due_idx_kb', 'events_due_idx'), ('unfinished_idx_kb', 'events_unfinished_idx')):
    early = max(int(r[name]) for r in rows[:half])
    late = max(int(r[name]) for r in rows[half:] or rows[-1:])
    check(late <= max(1.25 * early, index_bound_kb),
          '%s: largest %d kB in the second half <= max(1.25 x %d kB (the first half\'s largest), %d kB);'
          ' %d kB at 1 minute' % (index, late, early, index_bound_kb, int(rows[min(1, len(rows) - 1)][name])))
all_reads = [x for r in reads for x in r]
p99 = ms(percentile(all_reads, 0.99))
check(p99 <= 50, 'dashboard refresh p99 %.1f ms <= 50 ms over the run (p50 %.1f ms, worst interval p99 %.1f ms, %.1f/s)'
      % (p99, ms(percentile(all_reads, 0.5)), max(float(r['read_p99_ms']) for r in rows), len(all_reads) / duration))

unfinished = int(open(os.path.join(work, 'invariant.unfinished')).read())
(subs, cases, case_subs, objects, object_subs, not_integrated, synced, normalized, moves, processed,
 failed) = (int(x) for x in open(os.path.join(work, 'invariant.counts')).read().split())
retention_runs = int(open(os.path.join(work, 'invariant.retention')).read())
check(unfinished == 0, 'no event left unfinished after the drain (%d)' % unfinished)
check(cases == case_subs == subs, 'one case per submission (%d submissions, %d cases for %d submissions)'
      % (subs, cases, case_subs))
check(objects == object_subs == subs, 'one canonical object per submission (%d objects for %d submissions)'
      % (objects, object_subs))
check(not_integrated == 0 and synced == normalized == subs,
      'every service request integrated, two lineage edges each (%d not integrated, %d + %d edges)'
      % (not_integrated, synced, normalized))
check(processed == subs + moves and failed == 0,
      'every event completed once: the workers processed %d = %d submissions + %d status changes, %d failed'
      % (processed, subs, moves, failed))
check(retention_runs >= duration // 60 - 1, 'retention ran %d times (pg_cron, every minute)' % retention_runs)

print()
print('%s: %d of %d criteria passed' % ('PASS' if all(results) else 'FAIL', sum(results), len(results)))
sys.exit(0 if all(results) else 1)
