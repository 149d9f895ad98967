-- One case status change per transaction (bench/run, at a fixed rate).
SELECT operational.set_case_status(c.id, 'in_progress', 'bench', 'latency benchmark')
  FROM (SELECT id FROM operational.operation_cases
         WHERE team_code = 'operations' AND processing_status = 'open'
         LIMIT 1 FOR UPDATE SKIP LOCKED) c;
