-- One case status change per transaction (bench/run, bench/soak, at a fixed
-- rate): the next open case of the operations team, oldest first.  Each
-- client keeps its place in :last, a quoted case id (case ids are
-- time-ordered; start with -D last="'00000000-0000-0000-0000-000000000000'"),
-- so a pick reads past the cases moved since its last pick only.
-- Picking "any open case" afresh each time read past every case moved
-- since the table's last vacuum: up to 2 ms a pick in a soak, 0.4 of a
-- core at 200 picks/s, taken from the server under test.  The team and
-- status are tested in a form no index matches, so that the pick walks
-- the primary key whatever the statistics say: before the first ANALYZE,
-- the planner read every open case from operation_cases_team_status_idx
-- and sorted them (a status change took 2.6 ms over a soak's first 48 s,
-- 0.5 ms once the tables had statistics).
SELECT quote_literal(coalesce(max(c.id::text), :last)) AS last,
       count(operational.set_case_status(c.id, 'in_progress', 'bench', 'latency benchmark')) AS moved
  FROM (SELECT id FROM operational.operation_cases
         WHERE id > :last::uuid
           AND CASE WHEN team_code = 'operations' AND processing_status = 'open' THEN true END
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) c
\gset
