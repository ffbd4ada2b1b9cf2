//! Response cache metrics (#18): hits, misses, bypasses, bytes and evictions.
