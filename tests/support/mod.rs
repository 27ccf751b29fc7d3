//! Helpers the integration tests share: `mod support;` in a test file, then
//! `use support::channel::…`. What hosts can use too (signed webhook bodies, the fake
//! `SendApi`, the clock, the store conformance suite) is in the crate's `testing` module
//! (feature `test-util`); this holds what only the crate's own tests need.
//!
//! Each test file uses some of it, so unused items are allowed here.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "test-util")]
pub mod channel;
#[cfg(all(feature = "graph", feature = "test-util"))]
pub mod fake_graph;
pub mod faulty_store;
pub mod gated_router;
pub mod generate;
#[cfg(feature = "graph")]
pub mod mock_graph;
pub mod older_store;
#[cfg(feature = "postgres")]
pub mod postgres;
