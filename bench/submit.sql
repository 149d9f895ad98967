-- One intake submission per transaction (bench/run, at a fixed rate).
SELECT intake.submit_request('Bench', 'bench@example.test', 'latency benchmark', 'incident', 'low',
                             'operations', '10000000-0000-4000-8000-000000000002');
