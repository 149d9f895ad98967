#!/usr/bin/python3
"""An S3 endpoint that hangs: it accepts connections and reads requests but
never answers a PUT, GET or HEAD (so clients run into their timeouts or
get cancelled), while DELETE is answered at once with 204, so that the
cleanup after an interrupted upload can be observed.  Each request line is
appended to the --log file as soon as its headers have arrived.
"""
import argparse
import http.server
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    log_file = None
    lock = threading.Lock()

    def log_message(self, fmt, *args):
        pass

    def handle_any(self):
        with self.lock, open(self.log_file, 'a') as f:
            f.write('%s %s\n' % (self.command, self.path))
        if self.command == 'DELETE':
            self.send_response(204)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        time.sleep(3600)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = handle_any


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--listen', required=True, help='host:port')
    parser.add_argument('--log', required=True)
    args = parser.parse_args()
    Handler.log_file = args.log
    host, port = args.listen.rsplit(':', 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == '__main__':
    main()
