// A local HTTP server for the download tests: files by path with Range/206 support, redirects (absolute to
// another host name, or relative), and misbehaviour on demand: a connection destroyed mid-body, a server that
// ignores Range, a slow body, error statuses. Bodies carry an ETag (their SHA-256), honoured in If-Range.
// Every request is recorded (path, Range, If-Range and Host headers).
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Route {
  body?: Buffer;
  /** Answer with this status (and a short text body) instead. */
  status?: number;
  /** 302 to this Location (absolute, or relative to the request). */
  redirect?: string;
  /** Destroy the connection after sending half of the body: on the first request only, or on every one. */
  drop?: "once" | "always";
  /** Destroy the connection right after the headers, before any body byte (every request). */
  dropAtStart?: boolean;
  /** Ignore Range headers (always 200 with the whole body). */
  noRange?: boolean;
  /** Send the body in 16 kB pieces every 10 ms. */
  slow?: boolean;
}

export interface SeenRequest {
  path: string;
  range: string | undefined;
  ifRange: string | undefined;
  host: string | undefined;
}

export interface TestServer {
  /** e.g. http://127.0.0.1:40123 (or http://localhost:40123 with hostName "localhost"). */
  readonly origin: string;
  readonly port: number;
  readonly routes: Map<string, Route>;
  readonly requests: SeenRequest[];
  close(): Promise<void>;
}

/** Bytes that differ at every position (so an off-by-N resume shows), deterministic from `seed`. */
export function testBytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    b[i] = s & 0xff;
  }
  return b;
}

export function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Starts a server on 127.0.0.1 (port chosen by the OS); `hostName` is the name used in `origin`. */
export async function startServer(hostName = "127.0.0.1"): Promise<TestServer> {
  const routes = new Map<string, Route>();
  const requests: SeenRequest[] = [];
  const served = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    requests.push({
      path,
      range: req.headers.range,
      ifRange: req.headers["if-range"] as string | undefined,
      host: req.headers.host,
    });
    const route = routes.get(path);
    const count = (served.get(path) ?? 0) + 1;
    served.set(path, count);
    if (!route) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    if (route.redirect) {
      res.writeHead(302, { location: route.redirect }).end();
      return;
    }
    if (route.status) {
      res.writeHead(route.status, { "content-type": "text/plain" }).end(`status ${route.status}\n`);
      return;
    }
    serveBody(req, res, route, count);
  });
  server.keepAliveTimeout = 100;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `http://${hostName}:${port}`,
    port,
    routes,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function serveBody(req: http.IncomingMessage, res: http.ServerResponse, route: Route, count: number): void {
  const body = route.body ?? Buffer.alloc(0);
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const etag = `"${sha256(body)}"`;
  const ifRange = req.headers["if-range"];
  let start = 0;
  if (m && !route.noRange && (ifRange === undefined || ifRange === etag)) {
    start = Number(m[1]);
    if (start >= body.length) {
      res.writeHead(416, { "content-range": `bytes */${body.length}` }).end();
      return;
    }
    res.writeHead(206, {
      "content-length": body.length - start,
      "content-range": `bytes ${start}-${body.length - 1}/${body.length}`,
      "accept-ranges": "bytes",
      etag,
    });
  } else {
    res.writeHead(200, { "content-length": body.length, "accept-ranges": "bytes", etag });
  }
  const rest = body.subarray(start);
  if (route.dropAtStart) {
    res.flushHeaders();
    setTimeout(() => res.destroy(), 5);
    return;
  }
  if (route.drop === "always" || (route.drop === "once" && count === 1)) {
    res.write(rest.subarray(0, Math.floor(rest.length / 2)), () => setTimeout(() => res.destroy(), 5));
    return;
  }
  if (!route.slow) {
    res.end(rest);
    return;
  }
  let at = 0;
  const tick = () => {
    if (res.destroyed) return;
    if (at >= rest.length) return void res.end();
    res.write(rest.subarray(at, at + 16384));
    at += 16384;
    setTimeout(tick, 10);
  };
  tick();
}
