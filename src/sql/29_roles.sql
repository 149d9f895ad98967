-- Roles and request identity: the PostgREST model.  A client presents a
-- JWT; PostgREST (or the built-in gateway) logs in as lab_authenticator,
-- runs `SET LOCAL ROLE <the token's role claim>` and puts the claims in
-- request.jwt.claims for one transaction.  The helpers below read both
-- back, so the api functions and the row-level security policies agree on
-- who is asking and for which teams.
--
-- Any role may set request.jwt.claims, so the claims count only in a
-- session of the authenticator, which verified the token.  A person who
-- logs in directly is who session_user says, and its teams are data an
-- administrator keeps in operational.role_teams.

-- Roles are cluster-wide and outlive the extension: create them only when
-- absent, so a second database (or CREATE after DROP EXTENSION) reuses them.
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES
      ('lab_anon',          'INHERIT',   'enterprise_lab: anonymous requester (reference data, submit, list without e-mail addresses).'),
      ('lab_operator',      'INHERIT',   'enterprise_lab: operator; reads everything, changes the cases of the teams in its JWT claims.'),
      ('lab_auditor',       'INHERIT',   'enterprise_lab: auditor; read-only on every table, history and log.'),
      ('lab_admin',         'INHERIT',   'enterprise_lab: administrator; every team, replays events.'),
      ('lab_authenticator', 'NOINHERIT', 'enterprise_lab: the role PostgREST logs in as; it may only SET ROLE to the four request roles.')
    ) AS v(name, inherit, description)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN %s', r.name, r.inherit);
      EXECUTE format('COMMENT ON ROLE %I IS %L', r.name, r.description);
    END IF;
  END LOOP;

  -- The authenticator logs in (PostgREST and the built-in gateway connect
  -- as it) but holds no rights of its own; a password, if PostgREST needs
  -- one, is the administrator's to set.
  IF NOT (SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = 'lab_authenticator') THEN
    ALTER ROLE lab_authenticator LOGIN;
  END IF;

  -- PostgREST's authenticator may become any request role and nothing else.
  FOR r IN SELECT unnest(ARRAY['lab_anon', 'lab_operator', 'lab_auditor', 'lab_admin']) AS name LOOP
    IF NOT pg_catalog.pg_has_role('lab_authenticator', r.name, 'MEMBER') THEN
      EXECUTE format('GRANT %I TO lab_authenticator', r.name);
    END IF;
  END LOOP;
END $$;

-- The role the request runs as.  Inside a SECURITY DEFINER function
-- current_user is the function's owner, but the "role" setting still holds
-- what SET [LOCAL] ROLE chose (PostgreSQL lets only members set it); a
-- session that never ran SET ROLE is its own session user.
CREATE FUNCTION enterprise_lab.request_role() RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN current_setting('role') = 'none' THEN session_user
              ELSE current_setting('role')::name END
$$;
COMMENT ON FUNCTION enterprise_lab.request_role() IS
  'The role the request runs as (what SET ROLE chose, else the session user), also inside SECURITY DEFINER functions.';

-- admin > operator > auditor > anon.  USAGE (not MEMBER) so a NOINHERIT
-- role such as lab_authenticator has no rights until it runs SET ROLE.
CREATE FUNCTION enterprise_lab.request_access() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE
           WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = r) THEN 'admin'
           WHEN pg_has_role(r, 'lab_admin', 'USAGE') THEN 'admin'
           WHEN pg_has_role(r, 'lab_operator', 'USAGE') THEN 'operator'
           WHEN pg_has_role(r, 'lab_auditor', 'USAGE') THEN 'auditor'
           WHEN pg_has_role(r, 'lab_anon', 'USAGE') THEN 'anon'
         END
    FROM enterprise_lab.request_role() AS r
$$;
COMMENT ON FUNCTION enterprise_lab.request_access() IS
  'Access level of the request: admin (superusers too), operator, auditor, anon, or NULL for any other role.';

-- The teams of roles that log in directly (psql, reports, scripts).  A row
-- names a login role or a group role; a session belongs to the teams of
-- every role it is a member of.  Requests through PostgREST or the gateway
-- take their teams from the token instead.
CREATE TABLE operational.role_teams (
  role_name  name NOT NULL,
  team_code  text NOT NULL REFERENCES reference.teams (code),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (role_name, team_code)
);
COMMENT ON TABLE operational.role_teams IS
  'Teams of roles that log in directly (not through PostgREST or the gateway): a session is in the teams of every role it is a member of. Kept by administrators.';
SELECT pg_catalog.pg_extension_config_dump('operational.role_teams', '');

-- The authenticator, a role granted to it (a login role PostgREST or the
-- gateway uses), or a superuser: each may SET ROLE to any request role,
-- lab_admin included, so its claims grant nothing it could not take.
CREATE FUNCTION enterprise_lab.request_trusts_claims() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_has_role(session_user, 'lab_authenticator', 'MEMBER')
$$;
COMMENT ON FUNCTION enterprise_lab.request_trusts_claims() IS
  'Whether request.jwt.claims counts: only in a session of lab_authenticator (or of a role granted it, or a superuser), which verified the token.';

-- PostgREST 10+ sets request.jwt.claims to the token's claims as JSON; an
-- unset or empty setting means no token (psql, the workers).
CREATE FUNCTION enterprise_lab.request_claims() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN enterprise_lab.request_trusts_claims()
              THEN coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb, '{}'::jsonb)
              ELSE '{}'::jsonb
         END
$$;
COMMENT ON FUNCTION enterprise_lab.request_claims() IS
  'The JWT claims of the request (request.jwt.claims) in a session of the authenticator, else {} (no token, or a direct login, whose claims are ignored).';

CREATE FUNCTION enterprise_lab.request_subject() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN enterprise_lab.request_trusts_claims()
              THEN coalesce(nullif(btrim(c -> 'sub' #>> '{}'), ''), enterprise_lab.request_role()::text)
              ELSE session_user::text
         END
    FROM enterprise_lab.request_claims() AS c
$$;
COMMENT ON FUNCTION enterprise_lab.request_subject() IS
  'Who acts: the JWT "sub" claim (else the request role''s name) through the authenticator; the login role''s name for a direct login. Recorded as changed_by and submitted_by.';

-- Teams from a "teams" array or a single "team" string (other shapes give
-- none) through the authenticator; from operational.role_teams otherwise.
CREATE FUNCTION enterprise_lab.request_teams() RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE
           WHEN NOT enterprise_lab.request_trusts_claims() THEN
             ARRAY(SELECT DISTINCT t.team_code
                     FROM operational.role_teams t
                     JOIN pg_roles r ON r.rolname = t.role_name
                    WHERE pg_has_role(session_user, r.oid, 'MEMBER')
                    ORDER BY 1)
           WHEN jsonb_typeof(c -> 'teams') = 'array' THEN
             ARRAY(SELECT e.v #>> '{}' FROM jsonb_array_elements(c -> 'teams') AS e(v)
                    WHERE jsonb_typeof(e.v) = 'string')
           WHEN jsonb_typeof(c -> 'team') = 'string' THEN ARRAY[c ->> 'team']
           ELSE '{}'::text[]
         END
    FROM enterprise_lab.request_claims() AS c
$$;
COMMENT ON FUNCTION enterprise_lab.request_teams() IS
  'Teams of the request: named in the JWT claims ("teams": [...] or "team": "...") through the authenticator, else those operational.role_teams gives the login role; empty without.';

CREATE FUNCTION enterprise_lab.request_may_change_team(team_code text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE enterprise_lab.request_access()
           WHEN 'admin' THEN true
           WHEN 'operator' THEN team_code = ANY (enterprise_lab.request_teams())
           ELSE false
         END
$$;
COMMENT ON FUNCTION enterprise_lab.request_may_change_team(text) IS
  'Row-level security predicate: admins may change every team''s cases, operators those of their teams (request_teams()).';
