#!/usr/bin/python3
"""Signature V4: the extension's signer against botocore's, byte for byte.

For a few hundred generated inputs (keys with spaces, +, =, &, %, unicode,
nested paths; odd regions; every expiry class; several signing times and
time zones; path-style and virtual-hosted addressing; query parameters,
extra headers and payloads), the presigned URLs of
document_repo.s3_presign() and the Authorization headers of
document_repo.s3_signature() (the code path of every real request) must
equal what botocore, the signer of the AWS CLI, computes.  Then the same
awkward keys go through the live path: PUT, GET, presigned GET with curl
and DELETE, each request verified by the proxy in front of s3rver.
"""
import datetime
import json
import os
import pwd
import random
import subprocess
import sys
import urllib.parse
from unittest import mock

import botocore.auth
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import tap  # noqa: E402
from tap import ok  # noqa: E402

DB = 's3_signing'


def psql(sql, db=DB, check=True):
    run = subprocess.run(['psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db],
                         input=sql, capture_output=True, text=True)
    if check and run.returncode != 0:
        raise RuntimeError(run.stderr)
    return run


def literal(value):
    return "'" + value.replace("'", "''") + "'"


KEYS = [
    'simple.txt', 'with space.txt', 'plus+sign.pdf', 'equals=and&ampersand.csv',
    'nested/a/b/c/deep.txt', 'unicode/ünïcødé/文件.png', 'emoji 😀 face.jpg',
    'tilde~under_score-dash.txt', "quote'and\"double.txt", 'percent%20literal.txt',
    'star*paren(1).txt', 'colon:semi;comma,.txt', 'hash#question?.txt',
    'a//double//slash.txt', 'trailing/slash/', '$dollar@at!bang.txt', 'tab\tin key.txt',
    'submissions/6f1c2d3e-0000-4000-8000-000000000001/x/Quarterly_Report.pdf',
]
REGIONS = ['us-east-1', 'eu-west-3', 'ap-southeast-2', 'us-gov-west-1', 'cn-north-1', 'me-central-1', 'custom-region-9']
EXPIRIES = [1, 59, 60, 900, 3600, 86399, 86400, 604800]
TIMES = ['2013-05-24 00:00:00+00', '2024-02-29 12:34:56+00', '2024-12-31 23:59:59+00',
         '2025-06-01 02:00:00+02', '2030-01-01 00:00:00-08']
ENDPOINTS = ['http://127.0.0.1:9000', 'https://s3.eu-west-3.amazonaws.com', 'http://minio.internal:19000',
             'https://storage.example.test']
BUCKETS = ['enterprise-documents', 'examplebucket', 'my.dotted.bucket', 'b-1']
ACCESS_KEYS = ['AKIAIOSFODNN7EXAMPLE', 'S3RVER', 'minioadmin']
SECRETS = ['wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'S3RVER', 'se+cr/et=with==odd chars', 'minioadmin']
QUERIES = [[], [('list-type', '2')], [('list-type', '2'), ('prefix', 'submissions/a b+c')],
           [('continuation-token', '1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM='), ('list-type', '2'),
            ('max-keys', '1000'), ('prefix', 'ünï/')],
           [('lifecycle', '')], [('uploads', ''), ('prefix', '&=?')]]
HEADERS = [[], [('Content-Type', 'application/pdf')], [('Range', 'bytes=0-9')],
           [('Content-Type', 'text/plain; charset=utf-8'), ('x-amz-meta-note', '  spaced   out  value ')],
           [('x-amz-storage-class', 'REDUCED_REDUNDANCY'), ('Cache-Control', 'no-cache')]]
# No Date header: given one, botocore signs it instead of X-Amz-Date (both
# are valid SigV4); the extension always signs X-Amz-Date and never sends
# Date.  AWS's own example with both is checked in sql/documents.sql.
PAYLOADS = [b'', b'hello', 'Welcome to Amazon S3.'.encode(), 'ünïcødé ✓'.encode(), bytes(range(256))]


def sigv4_time(text):
    return datetime.datetime.fromisoformat(text.replace(' ', 'T') + ':00').astimezone(
        datetime.timezone.utc).replace(tzinfo=None)


def base_url(config, key):
    parts = urllib.parse.urlsplit(config['endpoint'])
    path = '' if key is None else '/' + urllib.parse.quote(key, safe='/~')
    if config['path_style']:
        return '%s://%s/%s%s' % (parts.scheme, parts.netloc, config['bucket'], path)
    return '%s://%s.%s%s' % (parts.scheme, config['bucket'], parts.netloc, path or '/')


def botocore_sign(signer, request, at):
    # botocore reads the clock through get_current_datetime() since 1.34
    # (trixie and later), through datetime.datetime.utcnow() before.
    if hasattr(botocore.auth, 'get_current_datetime'):
        with mock.patch('botocore.auth.get_current_datetime', return_value=sigv4_time(at)):
            signer.add_auth(request)
        return request
    with mock.patch('botocore.auth.datetime') as fake:
        fake.datetime.utcnow.return_value = sigv4_time(at)
        fake.datetime.strptime = datetime.datetime.strptime
        signer.add_auth(request)
    return request


def expected_presign(config, case):
    request = AWSRequest(method=case['method'], url=base_url(config, case['key']))
    signer = S3SigV4QueryAuth(Credentials(config['access_key'], config['secret_key']), 's3',
                              config['region'], expires=case['expires'])
    return botocore_sign(signer, request, case['at']).url


def expected_header(config, case):
    query = urllib.parse.urlencode(sorted((urllib.parse.quote(k, safe='-_.~'), urllib.parse.quote(v, safe='-_.~'))
                                          for k, v in case['query']), safe='%-_.~')
    url = base_url(config, case['key']) + ('?' + query if query else '')
    request = AWSRequest(method=case['method'], url=url, headers=dict(case['headers']),
                         data=bytes.fromhex(case['payload']))
    signer = S3SigV4Auth(Credentials(config['access_key'], config['secret_key']), 's3', config['region'])
    request = botocore_sign(signer, request, case['at'])
    return url, request.headers['Authorization']


def secret_file(secret):
    """The extension reads the secret key from a file only the server's user reads."""
    path = os.path.join(os.environ['EL_TEST_WORK'], 'signing-secret-%s' % secret.encode().hex()[:32])
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'w') as f:
        f.write(secret)
    os.chown(path, pwd.getpwnam('postgres').pw_uid, -1)
    return '@' + path


def settings_sql(config):
    return ''.join('SET enterprise_lab.%s = %s;\n' % (name, literal(str(value)))
                   for name, value in [('s3_endpoint', config['endpoint']), ('s3_bucket', config['bucket']),
                                       ('s3_region', config['region']), ('s3_access_key', config['access_key']),
                                       ('s3_secret_key', secret_file(config['secret_key'])),
                                       ('s3_path_style', 'on' if config['path_style'] else 'off')])


def run_group(config, cases):
    sql = settings_sql(config) + """
SELECT jsonb_agg(CASE WHEN c->>'kind' = 'presign'
         THEN jsonb_build_object('url', document_repo.s3_presign(c->>'method', c->>'key', (c->>'expires')::int,
                                                                 (c->>'at')::timestamptz))
         ELSE (SELECT to_jsonb(s) FROM document_repo.s3_signature(
                 c->>'method', c->>'key',
                 ARRAY(SELECT q->>0 FROM jsonb_array_elements(c->'query') q),
                 ARRAY(SELECT q->>1 FROM jsonb_array_elements(c->'query') q),
                 ARRAY(SELECT h->>0 FROM jsonb_array_elements(c->'headers') h),
                 ARRAY(SELECT h->>1 FROM jsonb_array_elements(c->'headers') h),
                 decode(c->>'payload', 'hex'), (c->>'at')::timestamptz) s) END ORDER BY ord)
  FROM jsonb_array_elements($cases$%s$cases$::jsonb) WITH ORDINALITY AS x(c, ord);
""" % json.dumps(cases)
    return json.loads(psql(sql).stdout)


def differential():
    rng = random.Random(20130524)
    groups = []
    for _ in range(24):
        config = {'endpoint': rng.choice(ENDPOINTS), 'bucket': rng.choice(BUCKETS), 'region': rng.choice(REGIONS),
                  'access_key': rng.choice(ACCESS_KEYS), 'secret_key': rng.choice(SECRETS),
                  'path_style': rng.random() < 0.5}
        cases = []
        for key in KEYS:
            cases.append({'kind': 'presign', 'method': rng.choice(['GET', 'GET', 'PUT', 'HEAD', 'DELETE']),
                          'key': key, 'expires': rng.choice(EXPIRIES), 'at': rng.choice(TIMES)})
            cases.append({'kind': 'header', 'method': rng.choice(['GET', 'PUT', 'HEAD', 'DELETE']),
                          'key': key, 'query': rng.choice(QUERIES), 'headers': rng.choice(HEADERS),
                          'payload': rng.choice(PAYLOADS).hex(), 'at': rng.choice(TIMES)})
        # bucket-level requests (ListObjectsV2, CreateBucket, HeadBucket)
        for query in QUERIES:
            cases.append({'kind': 'header', 'method': rng.choice(['GET', 'PUT', 'HEAD']), 'key': None,
                          'query': query, 'headers': rng.choice(HEADERS),
                          'payload': rng.choice(PAYLOADS).hex(), 'at': rng.choice(TIMES)})
        groups.append((config, cases))

    presign_total = presign_bad = header_total = header_bad = 0
    presign_diag, header_diag = [], []
    configs = set()
    for config, cases in groups:
        configs.add((config['endpoint'], config['region'], config['path_style']))
        results = run_group(config, cases)
        for case, got in zip(cases, results):
            if case['kind'] == 'presign':
                presign_total += 1
                want = expected_presign(config, case)
                if got['url'] != want:
                    presign_bad += 1
                    presign_diag += ['key %r: got  %s' % (case['key'], got['url']), '        want %s' % want]
            else:
                header_total += 1
                want_url, want_auth = expected_header(config, case)
                if got['url'] != want_url or got['authorization_header'] != want_auth:
                    header_bad += 1
                    header_diag += ['%s %r %r: got  %s %s' % (case['method'], case['key'], case['query'],
                                                                got['url'], got['authorization_header']),
                                    '        want %s %s' % (want_url, want_auth)]
    ok(presign_bad == 0, '%d presigned URLs equal botocore\'s byte for byte (%d settings combinations)'
       % (presign_total, len(configs)), '\n'.join(presign_diag[:12]))
    ok(header_bad == 0, '%d request URLs and Authorization headers equal botocore\'s byte for byte'
       % header_total, '\n'.join(header_diag[:12]))
    ok(presign_total >= 400 and header_total >= 500, 'enough cases were compared (%d + %d)'
       % (presign_total, header_total))


def live():
    """The awkward keys through the real path, verified by the proxy."""
    log = os.environ['EL_S3_PROXY_LOG']
    start = sum(1 for _ in open(log))
    failures = []
    # s3rver cannot store keys with empty path segments or a trailing slash.
    for i, key in enumerate(k for k in KEYS if not k.endswith('/') and '//' not in k):
        key = 'signing-suite/%d/%s' % (i, key)
        body = ('content of %s' % key).encode()
        run = psql("""
SELECT document_repo.s3_put_object(%(k)s, decode(%(b)s, 'hex'), 'text/plain') IS NOT NULL;
SELECT encode(document_repo.s3_get_object(%(k)s), 'hex');
SELECT document_repo.s3_presign('GET', %(k)s, 60, now());
""" % {'k': literal(key), 'b': literal(body.hex())}, check=False)
        lines = run.stdout.splitlines()
        if run.returncode != 0 or len(lines) != 3 or lines[1] != body.hex():
            failures.append('%r: %s %s' % (key, run.stderr.strip(), lines))
            continue
        fetched = subprocess.run(['curl', '-s', '-f', '-g', '--max-time', '10', lines[2]], capture_output=True)
        if fetched.returncode != 0 or fetched.stdout != body:
            failures.append('%r: presigned GET with curl failed (%d)' % (key, fetched.returncode))
        deleted = psql('SELECT document_repo.s3_delete_object(%s); SELECT document_repo.s3_object_exists(%s);'
                       % (literal(key), literal(key)), check=False)
        if deleted.stdout.strip() != 'f':
            failures.append('%r: still there after DELETE' % key)
    ok(not failures, 'awkward keys: PUT, GET, presigned GET (curl) and DELETE through the verifying proxy',
       '\n'.join(failures))
    verdicts = open(log).read().splitlines()[start:]
    refused = [v for v in verdicts if not v.startswith('verified')]
    ok(len(verdicts) >= 4 * 15 and not refused,
       'the proxy verified all %d of those requests with botocore, refused none' % len(verdicts),
       '\n'.join(refused[:10]))


def main():
    subprocess.run(['dropdb', '--if-exists', DB], check=True, stderr=subprocess.DEVNULL)
    subprocess.run(['createdb', DB], check=True)
    psql('CREATE EXTENSION enterprise_lab;')
    try:
        differential()
        live()
    finally:
        subprocess.run(['dropdb', DB])
    return tap.done()


if __name__ == '__main__':
    sys.exit(main())
