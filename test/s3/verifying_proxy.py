#!/usr/bin/python3
"""A Signature V4 verifying front for an S3-compatible server.

s3rver stores and serves objects faithfully but does not check Signature V4
(it accepts any secret).  This proxy sits in front of it and recomputes the
signature of every request with botocore, the signer of the AWS CLI and
SDKs, from the known secret key:

- header-signed requests: the Authorization header botocore computes for
  the signed headers and the body must equal the one received, byte for
  byte, and x-amz-content-sha256 must be the body's SHA-256;
- presigned URLs: the X-Amz-Signature botocore computes must match, and an
  expired URL is refused.

A mismatch is answered the way S3 answers it (403 SignatureDoesNotMatch,
AccessDenied "Request has expired", ...); a valid request is forwarded
unchanged.  Every verdict is appended to the --log file, one line each:
"<verdict> <METHOD> <path>".
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import http.server
import threading
import urllib.parse
import uuid
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SIGV4_TIMESTAMP = '%Y%m%dT%H%M%SZ'
MAX_SKEW = datetime.timedelta(minutes=15)
HOP_BY_HOP = {'connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer',
              'upgrade', 'proxy-authorization', 'proxy-authenticate'}


class Refusal(Exception):
    def __init__(self, status, code, message, **extra):
        super().__init__(code)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def parse_amz_date(value):
    try:
        return datetime.datetime.strptime(value, SIGV4_TIMESTAMP)
    except (TypeError, ValueError):
        raise Refusal(403, 'AccessDenied', 'X-Amz-Date is missing or malformed.')


class Verifier:
    def __init__(self, access_key, secret_key, region):
        self.credentials = Credentials(access_key, secret_key)
        self.access_key, self.region = access_key, region

    def check_scope(self, credential):
        parts = credential.split('/')
        if len(parts) != 5 or parts[3] != 's3' or parts[4] != 'aws4_request':
            raise Refusal(400, 'AuthorizationHeaderMalformed', 'The credential scope is malformed.')
        if parts[0] != self.access_key:
            raise Refusal(403, 'InvalidAccessKeyId',
                          'The AWS Access Key Id you provided does not exist in our records.',
                          AWSAccessKeyId=parts[0])
        if parts[2] != self.region:
            raise Refusal(400, 'AuthorizationHeaderMalformed',
                          "The authorization header is malformed; the region '%s' is wrong; "
                          "expecting '%s'" % (parts[2], self.region), Region=self.region)
        return parts[1]

    def verify_header(self, method, url, headers, body):
        auth = headers.get('authorization', '')
        algorithm, _, rest = auth.partition(' ')
        if algorithm != 'AWS4-HMAC-SHA256':
            raise Refusal(400, 'InvalidRequest', 'Only AWS4-HMAC-SHA256 is supported.')
        fields = dict(f.strip().partition('=')[::2] for f in rest.split(','))
        date = self.check_scope(fields.get('Credential', ''))
        signed = fields.get('SignedHeaders', '').split(';')
        amz_date = headers.get('x-amz-date')
        when = parse_amz_date(amz_date)
        if not amz_date.startswith(date):
            raise Refusal(400, 'AuthorizationHeaderMalformed', 'The credential date does not match X-Amz-Date.')
        if abs(datetime.datetime.utcnow() - when) > MAX_SKEW:
            raise Refusal(403, 'RequestTimeTooSkewed',
                          'The difference between the request time and the current time is too large.')
        declared = headers.get('x-amz-content-sha256')
        if declared != 'UNSIGNED-PAYLOAD' and declared != hashlib.sha256(body).hexdigest():
            raise Refusal(400, 'XAmzContentSHA256Mismatch',
                          "The provided 'x-amz-content-sha256' header does not match what was computed.")

        request = AWSRequest(method=method, url=url,
                             headers={name: headers[name] for name in signed if name in headers},
                             data=body)
        request.context['timestamp'] = amz_date
        signer = S3SigV4Auth(self.credentials, 's3', self.region)
        signer._modify_request_before_signing(request)
        if declared == 'UNSIGNED-PAYLOAD':
            request.headers['X-Amz-Content-SHA256'] = declared
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        signer._inject_signature_to_request(request, signer.signature(string_to_sign, request))
        if not hmac.compare_digest(request.headers['Authorization'], auth):
            raise Refusal(403, 'SignatureDoesNotMatch',
                          'The request signature we calculated does not match the signature you '
                          'provided. Check your key and signing method.',
                          AWSAccessKeyId=self.access_key, StringToSign=string_to_sign,
                          CanonicalRequest=canonical)

    def verify_query(self, method, url, headers, query):
        params = dict(query)
        date = self.check_scope(params.get('X-Amz-Credential', ''))
        amz_date = params.get('X-Amz-Date')
        when = parse_amz_date(amz_date)
        if not amz_date.startswith(date):
            raise Refusal(400, 'AuthorizationQueryParametersError', 'The credential date does not match X-Amz-Date.')
        try:
            expires = int(params.get('X-Amz-Expires', ''))
        except ValueError:
            raise Refusal(400, 'AuthorizationQueryParametersError', 'X-Amz-Expires must be a number.')
        if not 1 <= expires <= 604800:
            raise Refusal(400, 'AuthorizationQueryParametersError',
                          'X-Amz-Expires must be between 1 and 604800 seconds.')
        now = datetime.datetime.utcnow()
        if when - now > MAX_SKEW:
            raise Refusal(403, 'AccessDenied', 'Request is not valid yet.')
        if now > when + datetime.timedelta(seconds=expires):
            raise Refusal(403, 'AccessDenied', 'Request has expired',
                          XAmzExpires=str(expires), Expires=(when + datetime.timedelta(seconds=expires)).isoformat() + 'Z',
                          ServerTime=now.isoformat() + 'Z')

        parts = urllib.parse.urlsplit(url)
        rest = urllib.parse.urlencode([(k, v) for k, v in query if not k.startswith('X-Amz-')],
                                      quote_via=urllib.parse.quote, safe='-_.~')
        signed = params.get('X-Amz-SignedHeaders', '').split(';')
        request = AWSRequest(method=method,
                             url=urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, rest, '')),
                             headers={name: headers[name] for name in signed if name in headers})
        request.context['timestamp'] = amz_date
        signer = S3SigV4QueryAuth(self.credentials, 's3', self.region, expires=expires)
        signer._modify_request_before_signing(request)
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        if not hmac.compare_digest(signer.signature(string_to_sign, request), params.get('X-Amz-Signature', '')):
            raise Refusal(403, 'SignatureDoesNotMatch',
                          'The request signature we calculated does not match the signature you '
                          'provided. Check your key and signing method.',
                          AWSAccessKeyId=self.access_key, StringToSign=string_to_sign,
                          CanonicalRequest=canonical)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    verifier = None
    backend = None
    log_file = None
    log_lock = threading.Lock()

    def log_message(self, fmt, *args):
        pass

    def verdict(self, text):
        with self.log_lock, open(self.log_file, 'a') as f:
            f.write('%s %s %s\n' % (text, self.command, self.path))

    def reply(self, status, headers, body):
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and name.lower() != 'content-length':
                self.send_header(name, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def refuse(self, refusal):
        request_id = uuid.uuid4().hex[:16].upper()
        extra = ''.join('<%s>%s</%s>' % (k, escape(v), k) for k, v in refusal.extra.items())
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
                '%s<RequestId>%s</RequestId></Error>' % (refusal.code, escape(refusal.message), extra, request_id))
        self.verdict('refused %s' % refusal.code)
        self.reply(refusal.status, [('Content-Type', 'application/xml'), ('x-amz-request-id', request_id)],
                   body.encode())

    def handle_any(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        headers = {k.lower(): v for k, v in self.headers.items()}
        url = 'http://%s%s' % (headers.get('host', ''), self.path)
        query = urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)
        try:
            if 'authorization' in headers:
                self.verifier.verify_header(self.command, url, headers, body)
                self.verdict('verified header')
            elif any(k == 'X-Amz-Signature' for k, _ in query):
                self.verifier.verify_query(self.command, url, headers, query)
                self.verdict('verified presigned')
            else:
                raise Refusal(403, 'AccessDenied', 'Anonymous requests are not allowed.')
        except Refusal as refusal:
            self.refuse(refusal)
            return
        conn = http.client.HTTPConnection(self.backend, timeout=60)
        try:
            forward = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(self.command, self.path, body=body if body or self.command in ('PUT', 'POST') else None,
                         headers=forward)
            response = conn.getresponse()
            data = response.read()
            self.reply(response.status, response.getheaders(), data)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--listen', required=True, help='host:port to listen on')
    parser.add_argument('--backend', required=True, help='host:port of the S3 server')
    parser.add_argument('--access-key', required=True)
    parser.add_argument('--secret-key', required=True)
    parser.add_argument('--region', default='us-east-1')
    parser.add_argument('--log', required=True, help='file that receives one verdict per request')
    args = parser.parse_args()
    Handler.verifier = Verifier(args.access_key, args.secret_key, args.region)
    Handler.backend = args.backend
    Handler.log_file = args.log
    host, port = args.listen.rsplit(':', 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == '__main__':
    main()
