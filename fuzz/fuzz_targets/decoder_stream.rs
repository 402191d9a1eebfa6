//! Fuzz target `decoder_stream`: the property is [`checks::decoder_stream`] (shared with tests/fuzz_corpus.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decoder_stream(data));
