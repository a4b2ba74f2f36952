//! STUB: the HTTP server on :9090 (owned by the scrape/serve work).
