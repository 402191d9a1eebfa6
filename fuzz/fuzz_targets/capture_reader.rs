//! Fuzz target `capture_reader`: the property is [`checks::capture_reader`] (shared with tests/fuzz_corpus.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::capture_reader(data));
