-- One dashboard refresh, as the browser makes it (web/main.js): the metrics
-- with the overview counts, and the first page of the submissions list.
SELECT api.metrics('{}');
SELECT api.submissions('{}');
