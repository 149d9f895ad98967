-- api (delivery): webhook subscriptions and their deliveries over HTTP.
-- Admins manage subscriptions; operators and admins replay or skip
-- deliveries; operators, auditors and admins read them.  Signing secrets
-- are returned once, to the admin who creates a subscription.

CREATE FUNCTION enterprise_lab.api_subscription_fields(fn text, b jsonb, OUT event_types text[], OUT headers jsonb,
                                                       OUT enabled boolean, OUT timeout_ms integer)
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF b ? 'event_types' AND jsonb_typeof(b -> 'event_types') <> 'null' THEN
    IF jsonb_typeof(b -> 'event_types') <> 'array' OR EXISTS (
         SELECT 1 FROM jsonb_array_elements(b -> 'event_types') v WHERE jsonb_typeof(v) <> 'string') THEN
      RAISE EXCEPTION '%: event_types must be an array of strings', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'event_types',
              HINT = 'Send ["RequestCreated", "OperationalCaseStatusChanged"], or leave it out for every type.';
    END IF;
    event_types := ARRAY(SELECT jsonb_array_elements_text(b -> 'event_types'));
    IF cardinality(event_types) NOT BETWEEN 1 AND 50 THEN
      RAISE EXCEPTION '%: event_types must name 1 to 50 event types', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'event_types',
              HINT = 'Leave event_types out to receive every type.';
    END IF;
  END IF;
  IF b ? 'headers' AND jsonb_typeof(b -> 'headers') <> 'null' THEN
    IF jsonb_typeof(b -> 'headers') <> 'object' THEN
      RAISE EXCEPTION '%: headers must be an object', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'headers', HINT = 'Send {"Header-Name": "value"}.';
    END IF;
    headers := b -> 'headers';
  END IF;
  IF b ? 'enabled' AND jsonb_typeof(b -> 'enabled') <> 'null' THEN
    IF jsonb_typeof(b -> 'enabled') <> 'boolean' THEN
      RAISE EXCEPTION '%: enabled must be true or false', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'enabled';
    END IF;
    enabled := (b -> 'enabled')::boolean;
  END IF;
  timeout_ms := enterprise_lab.api_integer(fn, b, 'timeout_ms', NULL, 100, 60000);
END $$;
COMMENT ON FUNCTION enterprise_lab.api_subscription_fields(text, jsonb) IS
  'api helper: the optional fields of a subscription body (event_types, headers, enabled, timeout_ms), checked (22023).';

CREATE FUNCTION api.subscriptions(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('subscriptions', body, '{}');
  RETURN jsonb_build_object('items', coalesce((
    SELECT jsonb_agg(to_jsonb(s) || jsonb_build_object('id', s.subscription_id) ORDER BY s.name)
      FROM integration.subscription_status s), '[]'));
END $$;
COMMENT ON FUNCTION api.subscriptions(jsonb) IS
  'Webhook subscriptions with their state (active, paused with the reason, disabled), failures, last success and waiting, in-flight and dead-lettered deliveries. Body: {}.';

CREATE FUNCTION api.create_subscription(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'create_subscription';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['name', 'url', 'event_types', 'secret', 'timeout_ms', 'headers', 'enabled']);
  v_name text := enterprise_lab.api_text(fn, b, 'name', true, 63);
  v_url text := enterprise_lab.api_text(fn, b, 'url', true, 2000);
  v_secret text := enterprise_lab.api_text(fn, b, 'secret', false, 300);
  f record := enterprise_lab.api_subscription_fields(fn, b);
  s integration.subscriptions;
BEGIN
  IF v_name !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' THEN
    RAISE EXCEPTION '%: name "%" is not a valid subscription name', fn, v_name
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'name',
            HINT = 'Use letters, digits, _, . and -, starting with a letter or digit.';
  END IF;
  s := integration.create_subscription(v_name, v_url, f.event_types, v_secret,
                                       coalesce(f.timeout_ms, 10000), coalesce(f.headers, '{}'), coalesce(f.enabled, true));
  RETURN to_jsonb(s) || jsonb_build_object(
    'secret', (SELECT k.secret FROM integration.subscription_secrets k WHERE k.subscription_id = s.id));
END $$;
COMMENT ON FUNCTION api.create_subscription(jsonb) IS
  'Admins: subscribe a URL to events: {"name", "url", "event_types"?, "secret"?, "timeout_ms"?, "headers"?, "enabled"?}. Returns the subscription and its signing secret. 23505 (HTTP 409) when the name is taken.';

CREATE FUNCTION api.update_subscription(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'update_subscription';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['subscription_id', 'url', 'event_types', 'timeout_ms', 'headers', 'enabled', 'paused', 'reason']);
  v_id uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', true);
  v_url text := enterprise_lab.api_text(fn, b, 'url', false, 2000);
  v_reason text := enterprise_lab.api_text(fn, b, 'reason', false, 500);
  f record := enterprise_lab.api_subscription_fields(fn, b);
  s integration.subscriptions;
BEGIN
  IF b ? 'paused' AND jsonb_typeof(b -> 'paused') <> 'boolean' THEN
    RAISE EXCEPTION '%: paused must be true or false', fn USING ERRCODE = 'invalid_parameter_value', COLUMN = 'paused';
  END IF;
  UPDATE integration.subscriptions x
     SET url = coalesce(v_url, x.url),
         event_types = CASE WHEN b ? 'event_types' THEN f.event_types ELSE x.event_types END,
         timeout_ms = coalesce(f.timeout_ms, x.timeout_ms),
         headers = coalesce(f.headers, x.headers),
         enabled = coalesce(f.enabled, x.enabled)
   WHERE x.id = v_id RETURNING * INTO s;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('subscription', v_id);
  END IF;
  IF (b -> 'paused') = 'true' THEN
    s := integration.pause_subscription(v_id, coalesce(v_reason, 'paused by ' || enterprise_lab.request_subject()));
  ELSIF (b -> 'paused') = 'false' THEN
    s := integration.resume_subscription(v_id);
  END IF;
  RETURN to_jsonb(s);
END $$;
COMMENT ON FUNCTION api.update_subscription(jsonb) IS
  'Admins: change a subscription: {"subscription_id", "url"?, "event_types"?, "timeout_ms"?, "headers"?, "enabled"?, "paused"?, "reason"?}. paused=false resumes it. PT404 when unknown.';

CREATE FUNCTION api.delete_subscription(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'delete_subscription';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['subscription_id']);
  v_id uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', true);
  s integration.subscriptions;
BEGIN
  DELETE FROM integration.subscriptions x WHERE x.id = v_id RETURNING * INTO s;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('subscription', v_id);
  END IF;
  RETURN to_jsonb(s);
END $$;
COMMENT ON FUNCTION api.delete_subscription(jsonb) IS
  'Admins: remove a subscription with its secret and deliveries: {"subscription_id"}. PT404 when unknown.';

CREATE FUNCTION api.deliveries(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'deliveries';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'subscription_id', 'status', 'limit']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_subscription uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', false);
  v_status text := enterprise_lab.api_text(fn, b, 'status', false, 40);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
BEGIN
  IF v_status NOT IN ('pending', 'in_flight', 'failed', 'delivered', 'dead_letter', 'skipped') THEN
    RAISE EXCEPTION '%: status "%" is not a delivery status', fn, v_status
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'status',
            HINT = 'Use pending, in_flight, failed, delivered, dead_letter or skipped.';
  END IF;
  RETURN jsonb_build_object('items', coalesce((
    SELECT jsonb_agg(to_jsonb(x) - 'payload' ORDER BY x.event_seq DESC, x.subscription_name)
      FROM (SELECT d.*, s.name AS subscription_name
              FROM integration.deliveries d
              JOIN integration.subscriptions s ON s.id = d.subscription_id
             WHERE (v_submission IS NULL OR d.submission_id = v_submission)
               AND (v_subscription IS NULL OR d.subscription_id = v_subscription)
               AND (v_status IS NULL OR d.status = v_status)
             ORDER BY d.event_seq DESC
             LIMIT v_limit) x), '[]'));
END $$;
COMMENT ON FUNCTION api.deliveries(jsonb) IS
  'Webhook deliveries, newest event first: {"submission_id"?, "subscription_id"?, "status"?, "limit"? (1..1000, default 100)}.';

CREATE FUNCTION api.replay_delivery(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'replay_delivery';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['delivery_id', 'subscription_id']);
  v_delivery uuid := enterprise_lab.api_uuid(fn, b, 'delivery_id', false);
  v_subscription uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', false);
  msg text;
  det text;
BEGIN
  IF (v_delivery IS NULL) = (v_subscription IS NULL) THEN
    RAISE EXCEPTION '%: give either delivery_id or subscription_id', fn
      USING ERRCODE = 'invalid_parameter_value',
            HINT = '{"delivery_id": ...} replays one delivery; {"subscription_id": ...} every dead letter of a subscription.';
  END IF;
  IF v_delivery IS NOT NULL THEN
    RETURN to_jsonb(integration.replay_delivery(v_delivery)) - 'payload';
  END IF;
  RETURN jsonb_build_object('replayed', integration.replay_dead_deliveries(v_subscription));
EXCEPTION
  WHEN no_data_found THEN
    PERFORM enterprise_lab.api_not_found(CASE WHEN v_delivery IS NULL THEN 'subscription' ELSE 'delivery' END,
                                         coalesce(v_delivery, v_subscription));
  WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION '%', msg USING ERRCODE = 'PT409', DETAIL = det;
END $$;
COMMENT ON FUNCTION api.replay_delivery(jsonb) IS
  'Operators and admins: send a dead-lettered, failed or skipped delivery again ({"delivery_id"}), or every dead letter of a subscription ({"subscription_id"}). PT404, PT409.';

CREATE FUNCTION api.skip_delivery(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'skip_delivery';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['delivery_id', 'reason']);
  v_delivery uuid := enterprise_lab.api_uuid(fn, b, 'delivery_id', true);
  v_reason text := enterprise_lab.api_text(fn, b, 'reason', true, 500);
  msg text;
BEGIN
  RETURN to_jsonb(integration.skip_delivery(v_delivery, v_reason)) - 'payload';
EXCEPTION
  WHEN no_data_found THEN
    PERFORM enterprise_lab.api_not_found('delivery', v_delivery);
  WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
    RAISE EXCEPTION '%', msg USING ERRCODE = 'PT409';
END $$;
COMMENT ON FUNCTION api.skip_delivery(jsonb) IS
  'Operators and admins: give up on a delivery, releasing the later ones of its subscription and submission: {"delivery_id", "reason"}. PT404, PT409.';

REVOKE ALL ON FUNCTION api.subscriptions(jsonb), api.create_subscription(jsonb), api.update_subscription(jsonb),
  api.delete_subscription(jsonb), api.deliveries(jsonb), api.replay_delivery(jsonb), api.skip_delivery(jsonb)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions(jsonb), api.deliveries(jsonb) TO lab_operator, lab_auditor, lab_admin;
GRANT EXECUTE ON FUNCTION api.replay_delivery(jsonb), api.skip_delivery(jsonb) TO lab_operator, lab_admin;
GRANT EXECUTE ON FUNCTION api.create_subscription(jsonb), api.update_subscription(jsonb), api.delete_subscription(jsonb)
  TO lab_admin;
