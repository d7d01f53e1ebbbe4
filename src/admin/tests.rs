//! Unit tests of the admin rules over the in-memory store.
