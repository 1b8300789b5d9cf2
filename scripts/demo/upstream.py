# SPDX-License-Identifier: Apache-2.0
"""A stand-in apiserver for the demo: HTTPS on ADDR:PORT answering
GET /version and /readyz with which instance served it."""
import http.server
import json
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = self.server.server_address[0]
        if self.path == "/readyz":
            body = b"ok"
        else:
            body = json.dumps({"gitVersion": "v1.33.0-demo", "servedBy": host}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    host, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    srv = http.server.ThreadingHTTPServer((host, port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
