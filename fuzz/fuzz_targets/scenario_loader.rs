//! Fuzz target `scenario_loader`: the property is [`checks::scenario_loader`] (shared with tests/fuzz_corpus.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::scenario_loader(data));
