//! STUB: the scrape loop (owned by the scrape/serve work).
