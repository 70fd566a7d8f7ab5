/**
 * HTTP/2 flow-control and memory settings shared by both sides of the proxy. The default 64 KiB
 * windows throttle large messages across a hop; these keep a few hundred KiB in flight per stream
 * while flow control still bounds what one slow peer can make us buffer.
 */
export const STREAM_WINDOW_BYTES = 1 << 20;
export const CONNECTION_WINDOW_BYTES = 8 << 20;
/**
 * What an app's response headers (or trailers) may hold. Generous, since the app is trusted more
 * than a caller, but bounded: one header list is held in memory whole.
 */
export const UPSTREAM_MAX_HEADER_LIST_BYTES = 256 * 1024;
export const UPSTREAM_MAX_HEADER_LIST_PAIRS = 1_000;
/** Per-connection stream limit we advertise to callers: bounds what one client can hold open. */
export const MAX_CONCURRENT_STREAMS = 1000;

/**
 * Keepalive on pooled upstream sessions. A connection can go silent without closing (an app whose
 * event loop is stuck, a peer gone without a FIN), and calls put on it would never end. A session that read nothing for a whole tick while streams opened since its last PING
 * are waiting is sent a PING, and destroyed (its calls fail UNAVAILABLE) if no answer comes within
 * pingTimeoutMs. Idle sessions and sessions already proven alive since their last new stream are
 * not pinged: gRPC servers (grpc-go, grpc-core) count PINGs with no data in between as abuse and
 * close the connection (GOAWAY "too_many_pings") after two or three of them.
 */
export const UPSTREAM_KEEPALIVE = {
  // Slow on purpose: a PING must not kill a connection whose app is busy (a handler blocking its
  // event loop for seconds answers no PING meanwhile), and grpc-go counts a PING within 5 minutes
  // of the last one, with nothing sent in between, as a strike towards GOAWAY "too_many_pings".
  // Catching a dead session within ~15 s beats calls hanging on it until their deadlines forever.
  tickMs: 5_000,
  pingTimeoutMs: 10_000,
} as const;

/**
 * RST_STREAMs a session may send to the app, as a token bucket. nghttp2 (so node and grpc-js
 * servers) closes a connection whose peer resets more than 1,000 streams in a burst or 33/s after
 * (CVE-2023-44487); we stay well under both.
 */
export const UPSTREAM_RESET_BUDGET = {
  burst: 500,
  perSecond: 20,
} as const;
