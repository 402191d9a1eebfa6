//! Fixtures shared by the test binaries, one sub-module per fixture, so a test file names what it
//! uses (`support::vectors::wire("...")`, `support::gateway::in_memory(...)`).
//!
//! Each test binary compiles this whole module and uses part of it, so the `mod support;` line of
//! every test file carries `#[allow(dead_code)]`: what one binary leaves unused another uses.

pub mod frames;
pub mod gateway;
pub mod vectors;
