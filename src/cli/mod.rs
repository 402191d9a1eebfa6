//! Command implementations behind the `jt808-harness` binary. `main.rs` only parses arguments and
//! maps errors to exit codes; each command here is a plain function that tests can call.

pub mod decode;
pub mod decode_capture;
pub mod run;
