#!/usr/bin/python3
"""A TCP proxy in front of S3 that can be made to stall: it forwards bytes
both ways until it gets SIGUSR1, then holds every request byte (on open and
new connections alike, so clients run into their timeouts) until SIGUSR2.
Lets a test upload through a working S3 and then take S3 away in the middle
of a transaction.
"""
import argparse
import signal
import socket
import threading

flowing = threading.Event()
flowing.set()


def pump(src, dst, gated):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if gated:
                flowing.wait()
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, backend):
    try:
        upstream = socket.create_connection(backend, timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    threading.Thread(target=pump, args=(client, upstream, True), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--listen', required=True, help='host:port')
    parser.add_argument('--backend', required=True, help='host:port')
    args = parser.parse_args()
    host, port = args.listen.rsplit(':', 1)
    bhost, bport = args.backend.rsplit(':', 1)
    signal.signal(signal.SIGUSR1, lambda *_: flowing.clear())
    signal.signal(signal.SIGUSR2, lambda *_: flowing.set())
    listener = socket.create_server((host, int(port)))
    while True:
        client, _ = listener.accept()
        serve(client, (bhost, int(bport)))


if __name__ == '__main__':
    main()
