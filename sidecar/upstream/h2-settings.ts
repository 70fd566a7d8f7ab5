/**
 * HTTP/2 flow-control and memory settings shared by both sides of the proxy. The default 64 KiB
 * windows throttle large messages across a hop; these keep a few hundred KiB in flight per stream
 * while flow control still bounds what one slow peer can make us buffer.
 */
export const STREAM_WINDOW_BYTES = 1 << 20;
export const CONNECTION_WINDOW_BYTES = 8 << 20;
/** nghttp2's per-session memory cap, in MiB (node's default of 10 is tight for 16 MiB messages). */
export const MAX_SESSION_MEMORY_MB = 64;
/** Per-connection stream limit we advertise to callers: bounds what one client can hold open. */
export const MAX_CONCURRENT_STREAMS = 1000;
