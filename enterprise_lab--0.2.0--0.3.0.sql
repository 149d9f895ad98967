-- enterprise_lab 0.2.0 -> 0.3.0.
--
-- Every change to src/sql/ after 0.2.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.3.0'" to load this file. \quit
