//! The exact-match LLM response cache (#18): keys, the moka store with a byte cap,
//! recording a response (whole or as SSE events) and replaying it.
