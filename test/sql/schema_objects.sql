-- What pg_dump --schema-only leaves out for an extension's own objects but
-- an upgrade must get right: the tables registered for pg_dump with their
-- filters, as a sorted list (registration order differs between a fresh
-- install and an upgrade, and does not matter).
SELECT format('%s %L', t.tab::regclass, t.cond)
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS t(tab, cond)
 WHERE e.extname = 'enterprise_lab'
 ORDER BY 1;
